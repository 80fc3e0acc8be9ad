"""The zygote: a Python process that forks sandboxed execution environments (run by the server, as root).

This file is not imported by Lamina; the server runs it with the interpreter environments use
(`python3.X -I -S zygote_main.py`), so it uses the standard library only and works on 3.9+.

Why (shared/PERFORMANCE.md 2b, SOCK/OpenLambda): a fresh interpreter costs ~8 ms and the runtime
client's imports many more; a fork of a process that already holds them costs ~1 ms. The zygote
imports the runtime client once (`preload`), freezes its heap for the GC, and forks. Each
environment is two processes:

- I, pid 1 of a new pid namespace (forked straight into it: the zygote unshares CLONE_NEWPID
  for that one fork and sets its own namespace back): enters the sandbox's cgroups by writing
  "0" to the cgroup.procs fds it was given (so nothing on the request path pays the
  cgroup-attach RCU wait), forks F, then drops to the sandbox's uid and only reaps and reports
  F's exit status to the server (128 + N when F dies of signal N, as bwrap reports).
- F, the function's process: unshares mount, uts, ipc, net and cgroup namespaces, brings up
  loopback, makes the Runtime API listener at 127.0.0.1:9001 (sent to the server over
  SCM_RIGHTS), builds the root on a tmpfs (/usr and /etc entries read-only, a fresh /dev and
  /proc, the private /tmp), pivots into it, and waits for the server's "go" (the function's
  mounts as detached trees, environment, argv). Then it attaches the mounts, drops to the sandbox's
  uid, enters a user namespace mapping it to Lambda's uid 993/gid 990, drops every capability,
  sets no_new_privs and the seccomp deny list, and either calls the preloaded runtime client's
  main() in place (argv equal to `in_place_argv`) or execs argv.

A prepared pair waits on its control socket; the server keeps a few ahead (a pool), so a cold
start on the request path is only the "go" and what F does after it.

Protocol: the fd named by argv[1] is a SOCK_SEQPACKET socket to the server; argv[2] is the read
end of the lifeline pipe. First message: the configuration (JSON). Then one message per
environment: JSON {"uid", "gid", "root", "tmp"} with fds [control socket, output pipe,
cgroup.procs...]. Everything else about an environment goes over its control socket: F sends
{"pid": its host pid} with the listener fd, or I or F send {"error"}; the server sends F
{"mounts", "env", "cwd", "argv", "nofile"} with one open_tree fd per mount; I sends {"status":
F's exit code} at the end.
"""

from __future__ import annotations

import ctypes
import fcntl
import gc
import importlib.util
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import traceback
from types import ModuleType
from typing import Any, NoReturn

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_SECCOMP = 1, 4, 24, 22
PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER, PR_CAP_AMBIENT = 38, 36, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
PR_SET_MM, PR_SET_MM_MAP = 35, 14
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_MOVE_MOUNT = 429  # the same on every architecture (asm-generic numbering)
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
INIT_NAME = "init"  # pid 1 of every environment, as its processes see it
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

_libc = ctypes.CDLL(None, use_errno=True)
_machine = os.uname().machine


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)), f"mount {target}")


def bind(source: str, target: str, *, writable: bool = False, extra: int = MS_NOSUID | MS_NODEV) -> None:
    mount(source, target, None, MS_BIND | MS_REC)
    mount(None, target, None, MS_BIND | MS_REMOUNT | extra | (0 if writable else MS_RDONLY))


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def prctl(option: int, arg: int, what: str) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)), what)


def _placeholder(path: str, directory: bool) -> None:
    """A mount point for a file or directory bind."""
    if directory:
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))


class Zygote:
    def __init__(self, sock: socket.socket, lifeline: int, config: dict[str, Any]) -> None:
        self.sock = sock
        self.lifeline = lifeline  # read end of a pipe whose write end only the server holds
        self.config = config
        self.pid = os.getpid()
        self.in_place_argv: list[str] = config["in_place_argv"]
        self.runtime: ModuleType | None = None
        if config.get("preload"):
            self.runtime = _preload(config["preload"]["host"], config["preload"]["inside"])
        program = bytes.fromhex(config["seccomp"])
        self._seccomp = ctypes.create_string_buffer(program, len(program))
        self._fprog = _SockFprog(len(program) // 8, ctypes.addressof(self._seccomp))

    def serve(self) -> NoReturn:
        prctl(PR_SET_CHILD_SUBREAPER, 1, "subreaper")  # orphans of dead environments come here...
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # ...and the kernel reaps them at once
        self._own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        gc.collect()
        gc.freeze()  # the GC never touches what children share: fewer copy-on-write faults
        self.sock.send(json.dumps({"ready": True, "pid": self.pid}).encode())
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(self.sock, 65536, 16)
            except InterruptedError:
                continue
            if not msg:
                os._exit(0)  # the server is gone
            request = json.loads(msg)
            # The next child is pid 1 of a new pid namespace; the zygote itself stays where it is
            # and forks into its own namespace again right after.
            pid = -1
            try:
                unshare(CLONE_NEWPID)
                pid = os.fork()
            except OSError as exc:
                _send_error(fds[0], f"fork: {exc.strerror}")
            if pid == 0:
                self._init(request, fds)
            _check(_libc.setns(self._own_pid_ns, CLONE_NEWPID), "setns back to the zygote's pid namespace")
            for fd in fds:
                os.close(fd)

    def _build_root(self, root: str, tmp: str) -> None:
        """The sandbox's root on a small tmpfs at `root` (visible in this mount namespace only)."""
        cfg = self.config
        mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")
        for d in cfg["system_dirs"]:
            _placeholder(root + d, True)
            bind(d, root + d, extra=MS_NODEV)
        for target, link in cfg["system_links"]:
            os.symlink(target, root + link)
        for host, inside in cfg["etc"]:
            _placeholder(root + inside, os.path.isdir(host))
            bind(host, root + inside)
        for d in ("/var/task", "/var/runtime", "/var/lang", "/opt", "/proc", "/tmp", "/dev"):
            os.makedirs(root + d, exist_ok=True)
        bind(tmp, root + "/tmp", writable=True)
        dev = root + "/dev"
        mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k")
        for name in DEVICES:
            _placeholder(f"{dev}/{name}", False)
            bind(f"/dev/{name}", f"{dev}/{name}", writable=True, extra=MS_NOSUID | MS_NOEXEC)
        for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                             ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):  # fmt: skip
            os.symlink(target, f"{dev}/{name}")
        os.mkdir(f"{dev}/shm")
        os.chmod(f"{dev}/shm", 0o1777)
        os.mkdir(f"{dev}/pts")
        mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")

    # --- I: pid 1 of the environment --------------------------------------------------------

    def _init(self, req: dict[str, Any], fds: list[int]) -> NoReturn:
        """Enter the cgroups, fork F, then only reap and report F's exit to the server.

        It does as little as it can (its copy-on-write pages are its whole cost) and stays in
        the host's mount and network namespaces, where F's code cannot reach it (another uid's
        non-dumpable process, outside its user namespace; ptrace and setns are filtered). pid 1
        exiting ends every process of the namespace. Two ties to the server: the chain of
        parent-death signals (server → zygote → I, re-armed after the uid change, which clears
        it), which reaches frozen environments too; and the lifeline pipe (its write end lives
        in the server only: EOF means it died), which covers a death inside that re-arm.
        """
        ctl_fd, out_fd, *cgroup_fds = fds
        ctl = socket.socket(fileno=ctl_fd)
        try:
            self.sock.close()
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "pdeathsig")
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.setsid()  # no controlling terminal to push input into
            devnull = os.open("/dev/null", os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            os.dup2(out_fd, 1)
            os.dup2(out_fd, 2)
            os.close(out_fd)
            _close_fds_except({0, 1, 2, ctl.fileno(), self.lifeline, *cgroup_fds})
            for fd in cgroup_fds:
                os.write(fd, b"0")  # "0": the writer itself; F is born inside
                os.close(fd)
            wake_r, wake_w = os.pipe()
            function = os.fork()
            if function == 0:
                os.close(wake_r)
                os.close(wake_w)
                self._function(ctl, req)
            _show_as([INIT_NAME], {})  # what F sees as its pid 1, not the zygote's command line
            _drop_to(req["uid"], req["gid"])
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "pdeathsig")
            os.set_blocking(wake_w, False)
            signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so the wakeup fd is written
            signal.set_wakeup_fd(wake_w)
            poller = select.poll()
            poller.register(self.lifeline, select.POLLIN | select.POLLHUP)
            poller.register(wake_r, select.POLLIN)
        except BaseException as exc:  # noqa: BLE001 - anything reaches the server as a message
            _send_error(ctl.fileno(), f"{type(exc).__name__}: {exc}")
            os._exit(126)
        while True:
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    os._exit(0)
                if pid == 0:
                    break
                if pid == function:
                    code = os.waitstatus_to_exitcode(status)
                    try:
                        ctl.send(json.dumps({"status": 128 - code if code < 0 else code}).encode())
                    except OSError:
                        pass  # the server let go of this environment
                    os._exit(0)
            for fd, _ in poller.poll():
                if fd == self.lifeline:
                    os._exit(128 + signal.SIGKILL)  # the server is gone: so is the environment
                os.read(wake_r, 512)

    # --- F: the function's process -----------------------------------------------------------

    def _function(self, ctl: socket.socket, req: dict[str, Any]) -> NoReturn:
        try:
            os.close(self.lifeline)  # the function has no business with it
            host_pid = int(os.readlink("/proc/self"))  # the host's /proc, until the new one is mounted
            unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP)
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            socket.sethostname(self.config["hostname"])
            listener = _loopback_listener(self.config["port"])
            self._build_root(req["root"], req["tmp"])
            mount("proc", req["root"] + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
            # Into the root now, before the function is known: detaching the host's tree costs
            # O(host mounts) (every other sandbox's /tmp among them). The function's own mounts
            # arrive later as detached trees (open_tree), attached with move_mount.
            os.chdir(req["root"])
            _check(_libc.syscall(SYS_PIVOT_ROOT[_machine], b".", b"."), "pivot_root")
            _check(_libc.umount2(b".", MNT_DETACH), "umount the host's root")
            os.chdir("/")
            socket.send_fds(ctl, [json.dumps({"pid": host_pid}).encode()], [listener.fileno()])
            listener.close()
        except BaseException as exc:  # noqa: BLE001 - anything reaches the server as a message
            _send_error(ctl.fileno(), f"{type(exc).__name__}: {exc}")
            os._exit(126)
        try:
            msg, trees, _, _ = socket.recv_fds(ctl, 1 << 20, 16)
            if not msg:
                os._exit(0)  # the server let this environment go unused
            ctl.close()
            go = json.loads(msg)
            for m, tree in zip(go["mounts"], trees):
                _placeholder(m["inside"], True)
                _check(_libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, m["inside"].encode(), MOVE_MOUNT_F_EMPTY_PATH),
                       f"move_mount {m['inside']}")  # fmt: skip
                os.close(tree)
                flags = MS_NOSUID | MS_NODEV | (0 if m["writable"] else MS_RDONLY)
                mount(None, m["inside"], None, MS_BIND | MS_REMOUNT | flags)
            mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
            n = go["nofile"]
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
            if go["argv"] == self.in_place_argv and self.runtime is not None:
                _show_as(go["argv"], go["env"])
            self._drop_privileges(req["uid"], req["gid"])
            os.chdir(go["cwd"])
        except BaseException as exc:  # noqa: BLE001
            os.write(2, f"lamina: sandbox setup failed: {type(exc).__name__}: {exc}\n".encode())
            os._exit(126)
        argv: list[str] = go["argv"]
        env: dict[str, str] = go["env"]
        if argv == self.in_place_argv and self.runtime is not None:
            self._run_in_place(self.runtime, argv, env)
        for sig in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)  # as a freshly exec'd process has them
        try:
            os.execve(argv[0], argv, env)
        except OSError as exc:
            os.write(2, f"lamina: exec {argv[0]}: {exc.strerror}\n".encode())
            os._exit(127)

    def _drop_privileges(self, uid: int, gid: int) -> None:
        _drop_to(uid, gid)  # from root to all non-zero: every capability goes
        # The uid change made /proc/self root's; the maps below are written by the process itself.
        prctl(PR_SET_DUMPABLE, 1, "dumpable")
        # Lambda's uid and gid inside, through a user namespace owned by the sandbox's uid: it
        # grants nothing over the namespaces root made (mount, net, pid), and seccomp stops nesting.
        unshare(CLONE_NEWUSER)
        for path, text in (("/proc/self/uid_map", f"{self.config['inside_uid']} {uid} 1"),
                           ("/proc/self/setgroups", "deny"),
                           ("/proc/self/gid_map", f"{self.config['inside_gid']} {gid} 1")):  # fmt: skip
            with open(path, "w") as f:
                f.write(text)
        cap = 0
        while _libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0:
            cap += 1
        prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, "clear ambient capabilities")
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        _check(_libc.syscall(SYS_CAPSET[_machine], ctypes.byref(header), ctypes.byref(data)), "capset")
        _check(_libc.prctl(PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(self._fprog),
                           ctypes.c_ulong(0), ctypes.c_ulong(0)), "seccomp")  # fmt: skip

    def _run_in_place(self, runtime: ModuleType, argv: list[str], env: dict[str, str]) -> NoReturn:
        """What `exec argv` would do, minus the interpreter start and the imports: they happened once."""
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(env)
        sys.argv[:] = argv[-1:]  # the script, as `python -I -S script` has it
        code = 0
        try:
            runtime.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - as the interpreter would report it
            traceback.print_exc()
            code = 1
        import atexit

        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


class _MmMap(ctypes.Structure):
    """struct prctl_mm_map (linux/prctl.h)."""

    _fields_ = [
        ("start_code", ctypes.c_uint64), ("end_code", ctypes.c_uint64), ("start_data", ctypes.c_uint64),
        ("end_data", ctypes.c_uint64), ("start_brk", ctypes.c_uint64), ("brk", ctypes.c_uint64),
        ("start_stack", ctypes.c_uint64), ("arg_start", ctypes.c_uint64), ("arg_end", ctypes.c_uint64),
        ("env_start", ctypes.c_uint64), ("env_end", ctypes.c_uint64), ("auxv", ctypes.c_void_p),
        ("auxv_size", ctypes.c_uint32), ("exe_fd", ctypes.c_uint32),
    ]  # fmt: skip


_shown: list[ctypes.Array[ctypes.c_char]] = []  # the buffers /proc/self/{cmdline,environ} point into


def _show_as(argv: list[str], env: dict[str, str]) -> None:
    """Make /proc/self/cmdline and /proc/self/environ say what an exec of argv with env would, so
    tools that read them see the function's process and nothing in the sandbox sees the zygote's
    host paths. PR_SET_MM_MAP (unlike the single-field PR_SET_MM ops) needs no capability."""
    args = b"".join(w.encode() + b"\0" for w in argv)
    envs = b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items())
    abuf, ebuf = ctypes.create_string_buffer(args, len(args)), ctypes.create_string_buffer(envs, len(envs))
    _shown[:] = [abuf, ebuf]
    with open("/proc/self/stat") as f:
        text = f.read()
    fields = text[text.rindex(")") + 2 :].split()  # field 3 onwards (proc(5))

    def field(n: int) -> int:
        return int(fields[n - 3])

    _libc.sbrk.restype = ctypes.c_void_p
    mm = _MmMap(start_code=field(26), end_code=field(27), start_data=field(45), end_data=field(46),
                start_brk=field(47), brk=_libc.sbrk(0) or field(47), start_stack=field(28),
                arg_start=ctypes.addressof(abuf), arg_end=ctypes.addressof(abuf) + len(args),
                env_start=ctypes.addressof(ebuf), env_end=ctypes.addressof(ebuf) + len(envs),
                auxv=None, auxv_size=0, exe_fd=0xFFFFFFFF)  # fmt: skip
    _check(_libc.prctl(PR_SET_MM, ctypes.c_ulong(PR_SET_MM_MAP), ctypes.byref(mm), ctypes.c_ulong(ctypes.sizeof(mm)),
                       ctypes.c_ulong(0)), "PR_SET_MM_MAP")  # fmt: skip


def _drop_to(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    prctl(PR_SET_NO_NEW_PRIVS, 1, "no_new_privs")


def _close_fds_except(keep: set[int]) -> None:
    """Nothing the server or the zygote had open reaches an environment by accident."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass  # the directory's own fd, closed by now


def _preload(host: str, inside: str) -> ModuleType:
    """The runtime client module, compiled under the name it has inside (so tracebacks say
    /var/runtime/bootstrap.py) and executed now, without running its main()."""
    spec = importlib.util.spec_from_loader("bootstrap", loader=None, origin=inside)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = inside
    with open(host, "rb") as f:
        code = compile(f.read(), inside, "exec")
    sys.modules["bootstrap"] = module
    exec(code, module.__dict__)
    return module


def _loopback_listener(port: int) -> socket.socket:
    """Bring up `lo` of this (new) network namespace and listen on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    return listener


def _send_error(ctl_fd: int, text: str) -> None:
    try:
        os.write(ctl_fd, json.dumps({"error": text}).encode())
    except OSError:
        pass


def main() -> NoReturn:
    sock = socket.socket(fileno=int(sys.argv[1]))
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL, "pdeathsig")  # dies with the server (its creds never change)
    msg = sock.recv(1 << 20)
    if not msg:
        os._exit(0)
    Zygote(sock, int(sys.argv[2]), json.loads(msg)).serve()


if __name__ == "__main__":
    main()
