"""The seccomp deny list (lamina/sandbox/seccomp.py): compiled once, loaded by `bwrap --seccomp`.

The probe program below makes each call with arguments that would fail with an error OTHER than
EPERM if no filter were loaded (a missing mount point, a pid that cannot exist, a key that does not
exist, a too-short clone3 struct), and the same probe is also run without the filter as a control:
so an EPERM seen under the filter is the filter's doing, not a missing capability.
"""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lamina.sandbox import rootfs, seccomp

BWRAP = shutil.which("bwrap")
PYTHON = "/usr/bin/python3.11"

pytestmark = [
    pytest.mark.skipif(BWRAP is None, reason="bubblewrap is not installed"),
    pytest.mark.skipif(not Path(PYTHON).exists(), reason=f"{PYTHON} is not installed"),
]

# Every probe returns 0 on success or the errno it failed with. Calls that would change the probe's
# own state if they succeeded (unshare, clone) run in a forked child that exits with the errno.
PROBE = r"""
import ctypes, json, os, socket, subprocess, threading

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
NO_PID = 4194311  # above the largest pid_max (2**22): no such process can exist

def errno_of(result):
    return 0 if result != -1 else ctypes.get_errno()

def in_child(fn):
    pid = os.fork()
    if pid == 0:
        try:
            code = fn()
        finally:
            os._exit(250)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)

def child_errno(call):
    def fn():
        r = call()
        if r == 0:
            os._exit(0)
        os._exit(ctypes.get_errno() if r == -1 else 251)
    return in_child(fn)

def raw_clone(flags):
    def call():
        r = libc.syscall(L(56), L(flags | 17), L(0), L(0), L(0), L(0))
        if r == 0:  # the new process (only if the filter let it through)
            os._exit(0)
        if r > 0:
            os.waitpid(r, 0)
            return 0
        return -1
    return call

out = {}
out["mount"] = errno_of(libc.mount(b"none", b"/nonexistent-lamina-probe", b"tmpfs", L(0), None))
out["ptrace"] = errno_of(libc.ptrace(L(16), L(NO_PID), None, None))  # PTRACE_ATTACH
out["keyctl"] = errno_of(libc.syscall(L(250), L(6), L(0x3FFFFFFF), None, L(0)))  # KEYCTL_DESCRIBE
out["bpf"] = errno_of(libc.syscall(L(321), L(9999), None, L(0)))
out["clone3"] = errno_of(libc.syscall(L(435), None, L(0)))
out["unshare_newuser"] = child_errno(lambda: libc.unshare(0x10000000))
out["unshare_newnet"] = child_errno(lambda: libc.unshare(0x40000000))
out["unshare_newuser_newnet"] = child_errno(lambda: libc.unshare(0x50000000))
out["clone_newuser"] = child_errno(raw_clone(0x10000000))
out["clone_newnet"] = child_errno(raw_clone(0x40000000))

# What ordinary code does keeps working.
with open("/proc/self/status") as f:
    status = dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)
out["seccomp_mode"] = status["Seccomp"].strip()
out["no_new_privs"] = status["NoNewPrivs"].strip()
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.close()
a, b = socket.socketpair()
a.sendall(b"x")
out["socketpair"] = b.recv(1).decode()
a.close(); b.close()
out["fork"] = in_child(lambda: os._exit(7))
out["subprocess"] = subprocess.run(["/usr/bin/true"]).returncode
seen = []
t = threading.Thread(target=lambda: seen.append(1))
t.start(); t.join()
out["thread"] = len(seen)
print(json.dumps(out))
"""


def run_probe(with_filter: bool) -> dict[str, Any]:
    assert BWRAP is not None
    argv = [BWRAP, "--unshare-user", "--unshare-pid", "--die-with-parent", "--ro-bind", "/usr", "/usr"]
    for link in rootfs.SYSTEM_LINKS:
        if os.path.islink(link):
            argv += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            argv += ["--ro-bind", link, link]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    fds: tuple[int, ...] = ()
    fd = -1
    if with_filter:
        fd = seccomp.bpf_fd()
        fds = (fd,)
        argv += ["--seccomp", str(fd)]
    argv += ["--", PYTHON, "-I", "-S", "-c", PROBE]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, pass_fds=fds, cwd="/")
    finally:
        if fd >= 0:
            os.close(fd)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def filtered() -> dict[str, Any]:
    return run_probe(with_filter=True)


@pytest.fixture(scope="module")
def unfiltered() -> dict[str, Any]:
    return run_probe(with_filter=False)


def test_filter_is_nonempty_bpf() -> None:
    bpf = seccomp.deny_list_bpf()
    assert len(bpf) > 0
    assert len(bpf) % 8 == 0  # struct sock_filter is 8 bytes
    assert seccomp.deny_list_bpf() is bpf  # compiled once per process


def test_bpf_fd_is_a_fresh_readable_copy() -> None:
    fds = [seccomp.bpf_fd(), seccomp.bpf_fd()]
    try:
        assert fds[0] != fds[1]
        for fd in fds:
            assert not os.get_inheritable(fd)  # close-on-exec unless passed explicitly
            data = b""
            while chunk := os.read(fd, 4096):
                data += chunk
            assert data == seccomp.deny_list_bpf()
    finally:
        for fd in fds:
            os.close(fd)


DENIED_PROBES = ["mount", "ptrace", "unshare_newuser", "unshare_newnet", "unshare_newuser_newnet", "keyctl", "bpf",
                 "clone_newuser", "clone_newnet"]  # fmt: skip
x86_64_only = pytest.mark.skipif(platform.machine() != "x86_64", reason="raw syscall numbers in the probe are x86_64's")


@x86_64_only
@pytest.mark.parametrize("call", DENIED_PROBES)
def test_denied_calls_fail_with_eperm(filtered: dict[str, Any], call: str) -> None:
    assert filtered[call] == errno.EPERM, errno.errorcode.get(filtered[call], filtered[call])


@x86_64_only
def test_clone3_fails_with_enosys_so_libc_falls_back_to_clone(filtered: dict[str, Any]) -> None:
    assert filtered["clone3"] == errno.ENOSYS


@x86_64_only
@pytest.mark.parametrize("call", [*DENIED_PROBES, "clone3"])
def test_without_the_filter_the_same_call_does_not_fail_with_eperm(unfiltered: dict[str, Any], call: str) -> None:
    """The control: the EPERM (ENOSYS) above comes from the filter, not from missing privileges
    (bwrap run by root keeps the new user namespace's capabilities, so the unshare and clone calls
    even succeed here)."""
    assert unfiltered[call] not in (errno.EPERM, errno.ENOSYS), errno.errorcode.get(unfiltered[call])


@x86_64_only
def test_control_errors_are_the_expected_ones(unfiltered: dict[str, Any]) -> None:
    assert unfiltered["mount"] == errno.ENOENT  # the mount point does not exist
    assert unfiltered["ptrace"] == errno.ESRCH  # nor does the pid
    assert unfiltered["clone3"] == errno.EINVAL  # a NULL struct of size 0
    assert unfiltered["unshare_newuser"] == 0
    assert unfiltered["clone_newuser"] == 0
    assert unfiltered["seccomp_mode"] == "0"


def test_ordinary_calls_still_work(filtered: dict[str, Any]) -> None:
    assert filtered["socketpair"] == "x"
    assert filtered["fork"] == 7
    assert filtered["subprocess"] == 0  # posix_spawn tries clone3 first, then clone
    assert filtered["thread"] == 1  # so does pthread_create
    assert filtered["seccomp_mode"] == "2"
    assert filtered["no_new_privs"] == "1"
