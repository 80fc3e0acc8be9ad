"""The pieces of a sandbox's root that Lamina provides: the private /tmp, and the host paths the
runtime needs read-only.

/tmp is a sparse ext4 image of EphemeralStorage size, loop-mounted on the host in the sandbox's
work directory (shared/ISOLATION.md: ~15 ms to make, a hard size limit, not charged to memory,
and it survives resets because it lives outside any one bwrap). Where that cannot work (not
root, no mkfs.ext4 or loop devices) a plain directory stands in, without a size limit; `lamina
doctor` reports which one the host gets.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import struct
import subprocess
import threading
from pathlib import Path

# Host paths every sandbox sees read-only (the OS the runtimes run on); Debian's merged /usr
# makes /bin, /lib, /lib64 and /sbin symlinks into it, which sandboxes get as symlinks too.
SYSTEM_DIRS = ("/usr",)
SYSTEM_LINKS = ("/bin", "/lib", "/lib64", "/sbin")

# What of the host's /etc a runtime needs (the dynamic linker, TLS roots, time zones, name
# service and MIME tables, Debian's alternatives and Python configuration); nothing else of it
# (no host accounts, services' configuration, machine-id, ...) is visible in a sandbox.
ETC_FROM_HOST = (
    "alternatives", "ca-certificates", "ca-certificates.conf", "crypto-policies", "debian_version",
    "gai.conf", "host.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types",
    "nsswitch.conf", "os-release", "pki", "protocols", "python3", "python3.11", "python3.12",
    "python3.13", "services", "ssl", "timezone",
)  # fmt: skip

# Files Lamina writes for every sandbox: its own accounts (Lambda's sbx_user1051), hosts and an
# empty resolver configuration (sandboxes have no network but their Runtime API).
GENERATED_ETC = {
    "passwd": "root:x:0:0:root:/root:/sbin/nologin\nsbx_user1051:x:993:990::/tmp:/sbin/nologin\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
    "group": "root:x:0:\nsbx_user1051:x:990:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1\tlocalhost sandbox sandbox.localdomain\n::1\tlocalhost ip6-localhost\n",
    "hostname": "sandbox\n",
    "resolv.conf": "",
}  # fmt: skip


def write_generated_etc(directory: Path, nameservers: list[str]) -> Path:
    """Write GENERATED_ETC into `directory` (world-readable: sandboxes bind these files); the
    resolver configuration lists `nameservers` (used only by sandboxes with outbound network)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    files = dict(GENERATED_ETC, **{"resolv.conf": "".join(f"nameserver {n}\n" for n in nameservers)})
    for name, text in files.items():
        path = directory / name
        path.write_text(text)
        os.chmod(path, 0o644)
    return directory


def etc_sources(generated: Path) -> list[tuple[str, str]]:
    """(host path, path inside) of every file or directory bound read-only into a sandbox's /etc."""
    pairs = [(str(Path("/etc") / name), f"/etc/{name}") for name in ETC_FROM_HOST if (Path("/etc") / name).exists()]
    return pairs + [(str(generated / name), f"/etc/{name}") for name in GENERATED_ETC]


def etc_binds(generated: Path) -> list[str]:
    """bwrap arguments that build the sandbox's /etc."""
    args = ["--dir", "/etc"]
    for host, inside in etc_sources(generated):
        args += ["--ro-bind", host, inside]
    return args


def loop_tmp_supported() -> bool:
    return os.geteuid() == 0 and shutil.which("mkfs.ext4") is not None and Path("/dev/loop-control").exists()


_LOOP_CTL_GET_FREE, _LOOP_CONFIGURE, _LO_FLAGS_AUTOCLEAR = 0x4C82, 0x4C0A, 4
_MS_NOSUID, _MS_NODEV, _MNT_DETACH = 2, 4, 2
_libc = ctypes.CDLL(None, use_errno=True)
_templates_lock = threading.Lock()


def make_tmp(work_dir: Path, size_mb: int, uid: int | None, gid: int | None) -> tuple[Path, bool]:
    """Create the /tmp for a sandbox; returns its host path and whether it is a mounted image.

    The image is a copy of a template made once per size (mkfs.ext4 is ~6 ms; copying the few
    hundred KB it wrote into a sparse file is ~0.3 ms), attached to a loop device and mounted
    with direct system calls (the `mount` command took ~12 ms): ~2.5 ms in all.
    """
    mount_point = work_dir / "tmp"
    mount_point.mkdir(parents=True, exist_ok=True)
    if loop_tmp_supported():
        image = work_dir / "tmp.img"
        template = _template(work_dir.parent / ".tmp-templates", size_mb)
        _copy_sparse(template, image, size_mb * 1024 * 1024)
        try:
            _mount_image(image, mount_point)
        except OSError:
            # Kernels without LOOP_CONFIGURE (before 5.8): let mount(8) set the loop device up.
            subprocess.run(
                ["mount", "-o", "loop,nosuid,nodev", str(image), str(mount_point)], check=True, capture_output=True
            )
        os.chown(mount_point, uid if uid is not None else 0, gid if gid is not None else 0)
        os.chmod(mount_point, 0o1777 if uid is None else 0o700)
        lost = mount_point / "lost+found"
        if lost.exists():
            lost.rmdir()
        return mount_point, True
    if uid is not None and gid is not None:
        os.chown(mount_point, uid, gid)
    os.chmod(mount_point, 0o700 if uid is not None else 0o1777)
    return mount_point, False


def _template(directory: Path, size_mb: int) -> Path:
    """An empty ext4 image of `size_mb` (sparse; only root reads it), made on first use."""
    path = directory / f"{size_mb}.img"
    with _templates_lock:
        if not path.exists():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            part = directory / f".{size_mb}.img.{os.getpid()}"
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.truncate(size_mb * 1024 * 1024)
            subprocess.run(
                ["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", str(part)], check=True, capture_output=True
            )
            part.rename(path)
    return path


def _copy_sparse(source: Path, target: Path, size: int) -> None:
    """Copy only the data extents of `source` (SEEK_DATA/SEEK_HOLE): holes stay holes."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(dst, size)
            offset = 0
            while offset < size:
                try:
                    data = os.lseek(src, offset, os.SEEK_DATA)
                except OSError:
                    break  # nothing but a hole to the end
                hole = os.lseek(src, data, os.SEEK_HOLE)
                while data < hole:
                    data += os.copy_file_range(src, dst, hole - data, data, data)
                offset = hole
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _mount_image(image: Path, mount_point: Path) -> None:
    """Attach `image` to a free loop device (auto-cleared on unmount) and mount it nosuid, nodev."""
    for _ in range(20):  # another process may take the free device between the two calls
        ctl = os.open("/dev/loop-control", os.O_RDWR | os.O_CLOEXEC)
        try:
            number = fcntl.ioctl(ctl, _LOOP_CTL_GET_FREE)
        finally:
            os.close(ctl)
        device = f"/dev/loop{number}"
        loop = os.open(device, os.O_RDWR | os.O_CLOEXEC)
        try:
            backing = os.open(image, os.O_RDWR | os.O_CLOEXEC)
            try:
                # struct loop_config: fd, block_size, struct loop_info64 (lo_flags), reserved.
                info = struct.pack("=5Q4I64s64s32s2Q", 0, 0, 0, 0, 0, 0, 0, 0, _LO_FLAGS_AUTOCLEAR, b"", b"", b"", 0, 0)
                fcntl.ioctl(loop, _LOOP_CONFIGURE, struct.pack("=II", backing, 0) + info + bytes(64))
            except OSError as exc:
                if exc.errno == errno.EBUSY:
                    continue
                raise
            finally:
                os.close(backing)
            if _libc.mount(device.encode(), str(mount_point).encode(), b"ext4", ctypes.c_ulong(_MS_NOSUID | _MS_NODEV), None) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mount {device} on {mount_point}: {os.strerror(err)}")
            return
        finally:
            os.close(loop)  # with AUTOCLEAR the device frees itself once unmounted
    raise OSError(errno.EBUSY, "no free loop device")


def remove_tmp(work_dir: Path, mounted: bool) -> None:
    if mounted:
        _libc.umount2(str(work_dir / "tmp").encode(), _MNT_DETACH)
    shutil.rmtree(work_dir, ignore_errors=True)


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below `root`, deepest first (from /proc/self/mounts)."""
    prefix = str(root.resolve())
    found = []
    with open("/proc/self/mounts") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def remove_stale(envs_dir: Path) -> int:
    """Remove what a server that died without cleaning up left in `envs_dir`: unmount its /tmp
    images and delete the directories. Returns how many environments were removed."""
    if not envs_dir.is_dir():
        return 0
    for point in mounts_under(envs_dir):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
    stale = [p for p in envs_dir.iterdir() if p.is_dir()]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return sum(1 for p in stale if not p.name.startswith("."))  # not the /tmp templates
