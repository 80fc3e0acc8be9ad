"""SourceSnapshots: immutable copies of a host source directory, addressed by a hash of the tree.

A source-directory function (`lamina dev`, issue #7) never runs the live directory: each change
is frozen into `<code>/unpacked/<tree hash>/`, beside unpacked zips, and the function's code
becomes that snapshot. So the code an environment runs is exactly the code its hash names (an
editor's half-written file cannot leak into a running environment), sandboxes mount it read-only
at /var/task as they mount any code, and environments still on the old code keep theirs.

Cost: only changed files are read. A file whose (mtime, size, inode, mode) is unchanged since the
last snapshot keeps its digest and is hard-linked from that snapshot (snapshots are never written
to); a changed file is read once, and the very bytes hashed are the bytes written, so a file
rewritten during the snapshot cannot make the content differ from the hash.

The tree hash is SHA-256 over every file's relative path, executable bit and SHA-256, in path
order: the same tree gives the same hash on any host, whatever the files' dates.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lamina.model.errors import InvalidParameterValueException
from lamina.model.function import CodeRef
from lamina.store.code import MAX_UNZIPPED, CodeStore

# Never part of a snapshot, and changes under them trigger no reload: VCS data, caches,
# editor and tool state. (node_modules is code for Node functions: it is kept.)
IGNORED_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".venv", ".idea", ".vscode"}
)
# Editor swap, backup and probe files (vim writes `4913` to test a directory), and bytecode.
_RACY_NS = 2_000_000_000
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".swx", ".swo", "~", ".tmp")


def ignored(rel_parts: tuple[str, ...]) -> bool:
    """True for a path (relative to the source root) that snapshots leave out."""
    if any(part in IGNORED_DIRS for part in rel_parts[:-1]):
        return True
    name = rel_parts[-1] if rel_parts else ""
    return name in IGNORED_DIRS or name.endswith(_IGNORED_SUFFIXES) or name.startswith(".#") or name == "4913"


@dataclass(frozen=True, slots=True)
class _File:
    key: tuple[int, int, int, int]  # mtime_ns (-1: too recent to trust), size, inode, mode when read
    mtime_ns: int
    digest: str
    size: int
    executable: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """One snapshot: its code reference, where it is, and what changed since the previous one."""

    code: CodeRef
    path: Path
    files: int
    changed: tuple[str, ...]  # relative paths added, changed or removed (all of them the first time)
    newest_write: float  # epoch seconds of the newest modification among the changed files
    took_ms: float


@dataclass(slots=True)
class _Tree:
    files: dict[str, _File]
    path: Path


class SourceSnapshots:
    """Takes snapshots of source directories into the code store. Blocking: call `take` from
    a worker thread (the caller owns that: `functions.sources` uses `asyncio.to_thread`)."""

    def __init__(self, code: CodeStore) -> None:
        self._code = code
        self._last: dict[Path, _Tree] = {}  # the previous snapshot of each source directory

    def take(self, source: Path) -> Snapshot:
        """Snapshot `source` (an absolute directory). Raises InvalidParameterValueException if it is
        not a readable directory or holds more than Lambda's unzipped limit."""
        t0 = time.perf_counter()
        # Files modified this recently may be written again within the same mtime tick (a few ms,
        # same size, same inode): their stat key is not trusted next time ("racily clean", as git
        # calls it); they are read again and compared by content.
        racy_after = time.time_ns() - _RACY_NS
        if not source.is_dir():
            raise InvalidParameterValueException(f"The source directory {source} does not exist or is not a directory.")
        previous = self._last.get(source)
        if previous is not None and not previous.path.is_dir():
            previous = None  # its snapshot was removed: read every file again
        old = previous.files if previous is not None else {}
        current: dict[str, _File] = {}
        fresh: dict[str, bytes] = {}  # the bytes read this time, by relative path
        newest = 0.0
        total = 0
        for rel, full in _walk(source):
            try:
                st = os.stat(full)  # a symlink counts as the file it points to
            except FileNotFoundError:
                continue  # removed while walking
            if not stat.S_ISREG(st.st_mode):
                continue
            key = (st.st_mtime_ns if st.st_mtime_ns < racy_after else -1, st.st_size, st.st_ino, st.st_mode)
            known = old.get(rel)
            if known is not None and known.key == key and key[0] >= 0:
                current[rel] = known
            else:
                try:
                    data = Path(full).read_bytes()
                except FileNotFoundError:
                    continue
                current[rel] = _File(key=key, mtime_ns=st.st_mtime_ns, digest=hashlib.sha256(data).hexdigest(),
                                     size=len(data), executable=bool(st.st_mode & 0o111))  # fmt: skip
                fresh[rel] = data
            total += current[rel].size
            if total > MAX_UNZIPPED:
                raise InvalidParameterValueException(f"Unzipped size must be smaller than {MAX_UNZIPPED} bytes")
        changed = sorted(
            {rel for rel, f in current.items() if old.get(rel) is None or old[rel].digest != f.digest} | (old.keys() - current.keys())
        )
        for rel in changed:
            if rel in current:
                newest = max(newest, current[rel].mtime_ns / 1e9)
        tree = hashlib.sha256()
        for rel in sorted(current):
            f = current[rel]
            tree.update(f"{rel}\0{'x' if f.executable else '-'}\0{f.digest}\n".encode())
        sha = tree.hexdigest()
        code = CodeRef(sha256_hex=sha, size=total, source=str(source))
        target = self._code.unpacked_path(code)
        if not target.exists():
            self._write(target, current, fresh, previous)
        self._last[source] = _Tree(files=current, path=target)
        return Snapshot(code=code, path=target, files=len(current), changed=tuple(changed), newest_write=newest,
                        took_ms=(time.perf_counter() - t0) * 1000)  # fmt: skip

    def _write(self, target: Path, files: dict[str, _File], fresh: dict[str, bytes], previous: _Tree | None) -> None:
        """Build the tree under a temporary name, then rename it into place (never half-built)."""
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".snap-"))
        try:
            for rel, f in files.items():
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                data = fresh.get(rel)
                if data is None:
                    assert previous is not None  # an unread file is one the previous snapshot holds
                    os.link(previous.path / rel, dest)
                    continue
                with open(dest, "wb") as out:
                    out.write(data)
                os.chmod(dest, 0o755 if f.executable else 0o644)
            for d, _, _ in os.walk(tmp):
                os.chmod(d, 0o755)  # sandbox uids read it (mkdtemp made the root 0700)
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not target.exists():  # else the same tree was written meanwhile
                raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def remove(self, code: CodeRef) -> None:
        """Delete a snapshot no function runs any more (the caller knows; blocking)."""
        shutil.rmtree(self._code.unpacked_path(code), ignore_errors=True)

    def forget(self, source: Path) -> None:
        """Drop what is remembered of `source` (its next snapshot reads every file)."""
        self._last.pop(source, None)


def _walk(root: Path) -> list[tuple[str, str]]:
    """(relative posix path, full path) of every file under `root` that snapshots keep."""
    out: list[tuple[str, str]] = []
    base = len(str(root)) + 1
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = os.path.realpath(dirpath)
        # Symlinked directories are code too (pnpm's node_modules), except a link to an ancestor:
        # that is a cycle.
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS and not _ancestor(os.path.join(dirpath, d), here))
        for name in filenames:
            full = os.path.join(dirpath, name)
            rel = full[base:]
            if not ignored(tuple(rel.split(os.sep))):
                out.append((rel.replace(os.sep, "/"), full))
    return out


def _ancestor(path: str, here: str) -> bool:
    """True if `path` is a symlink to `here` or to a directory above it."""
    if not os.path.islink(path):
        return False
    target = os.path.realpath(path)
    return here == target or here.startswith(target + os.sep)
