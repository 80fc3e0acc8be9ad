"""The seccomp deny list every sandboxed process runs under, compiled to BPF once per server.

Built with libseccomp through `pyseccomp` (a maintained ctypes binding) and handed to bwrap as
`--seccomp FD`, which loads it (with no_new_privs) right before exec. Denied calls fail with
EPERM, so well-behaved code sees an ordinary permission error rather than being killed.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile

import pyseccomp as sc

# What a Lambda function has no business calling (docker's default profile and Lambda's
# documented restrictions: mounts, tracing, kernel modules and images, BPF, keys, swap, time,
# namespaces, perf).
DENIED = (
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig", "fspick", "move_mount",
    "open_tree", "mount_setattr",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "bpf", "perf_event_open", "userfaultfd",
    "reboot", "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup", "uselib",
    "keyctl", "add_key", "request_key",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "iopl", "ioperm", "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
    "unshare", "setns",
)  # fmt: skip

# clone() flags that create namespaces: NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
CLONE_NAMESPACE_FLAGS = (0x80, 0x20000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)


@functools.cache
def deny_list_bpf() -> bytes:
    """The compiled filter as raw BPF, ready for `bwrap --seccomp`."""
    f = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED:
        try:
            f.add_rule(sc.ERRNO(errno.EPERM), name)
        except (OSError, ValueError):
            continue  # not a syscall on this architecture
    # New namespaces through clone(): one rule per flag (rules on one syscall are OR'ed).
    for flag in CLONE_NAMESPACE_FLAGS:
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3 passes its flags in a struct seccomp cannot read: ENOSYS makes libc fall back to
    # clone(), which the rule above checks (as docker and Chromium do).
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        return out.read()


def bpf_fd() -> int:
    """A fresh readable fd holding the filter (bwrap reads it to the end); the caller closes it."""
    fd = os.memfd_create("lamina-seccomp", os.MFD_CLOEXEC)
    os.write(fd, deny_list_bpf())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
