"""CodeStore: deployment zips stored once by SHA-256, unpacked once per hash.

Layout under <data>/code: `zips/<sha256>.zip`, `unpacked/<sha256>/`, and `merged/<key>/` (the
/opt of an ordered list of two or more layers). All are written to a temporary name and renamed
into place, so a crash never leaves a half-written blob or tree that later looks complete.

Layers share this store with function code: a layer's zip is one more blob, so two layer
versions (or a layer and a function) with the same zip are stored and unpacked once.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from lamina.model.errors import InvalidParameterValueException, RequestEntityTooLargeException
from lamina.model.function import CodeRef

MAX_ZIPPED = 52_428_800
MAX_UNZIPPED = 262_144_000


class CodeStore:
    def __init__(self, root: Path) -> None:
        self._zips = root / "zips"
        self._unpacked = root / "unpacked"
        self._merged = root / "merged"
        for d in (self._zips, self._unpacked, self._merged):
            d.mkdir(parents=True, exist_ok=True)
        self._unpack_locks: dict[str, asyncio.Lock] = {}

    def zip_path(self, code: CodeRef | str) -> Path:
        sha = code if isinstance(code, str) else code.sha256_hex
        return self._zips / f"{sha}.zip"

    def unpacked_path(self, code: CodeRef) -> Path:
        return self._unpacked / code.sha256_hex

    async def put(self, data: bytes) -> CodeRef:
        """Validate and store a zip. Raises Lambda's errors for oversize or invalid zips (spec 2.3)."""
        if len(data) > MAX_ZIPPED:
            raise RequestEntityTooLargeException(f"Zipped size must be smaller than {MAX_ZIPPED} bytes")
        return await asyncio.to_thread(self._put, data)

    def _put(self, data: bytes) -> CodeRef:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                total = sum(i.file_size for i in zf.infolist())
                for info in zf.infolist():
                    _safe_member(info.filename)
        except (zipfile.BadZipFile, ValueError, EOFError) as exc:
            raise InvalidParameterValueException(
                "Could not unzip uploaded file. Please check your file, then try to upload again."
            ) from exc
        if total > MAX_UNZIPPED:
            raise InvalidParameterValueException(f"Unzipped size must be smaller than {MAX_UNZIPPED} bytes")
        sha = hashlib.sha256(data).hexdigest()
        path = self.zip_path(sha)
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=self._zips, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        return CodeRef(sha256_hex=sha, size=len(data))

    async def unpack(self, code: CodeRef) -> Path:
        """The unpacked tree for `code`, extracting it the first time (once, even if called concurrently)."""
        target = self.unpacked_path(code)
        if target.exists():
            return target
        lock = self._unpack_locks.setdefault(code.sha256_hex, asyncio.Lock())
        async with lock:
            if not target.exists():
                await asyncio.to_thread(self._unpack, code, target)
        return target

    def _unpack(self, code: CodeRef, target: Path) -> None:
        tmp = Path(tempfile.mkdtemp(dir=self._unpacked, prefix=".tmp-"))
        try:
            with zipfile.ZipFile(self.zip_path(code)) as zf:
                for info in zf.infolist():
                    dest = tmp / _safe_member(info.filename)
                    if info.is_dir():
                        dest.mkdir(parents=True, exist_ok=True)
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out)
                    os.chmod(dest, _member_mode(info))
            # Readable by sandbox uids (they see it read-only at /var/task); mkdtemp made it 0700.
            os.chmod(tmp, 0o755)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    async def unzipped_size(self, code: CodeRef) -> int:
        """Bytes the zip's members take unpacked (read from its central directory only); for a
        source directory's snapshot, the bytes of its files."""

        def measure() -> int:
            if code.source is not None:
                return code.size  # a snapshot's size is its files' (store/snapshots.py)
            with zipfile.ZipFile(self.zip_path(code)) as zf:
                return sum(i.file_size for i in zf.infolist())

        return await asyncio.to_thread(measure)

    async def merged(self, layers: Sequence[CodeRef]) -> Path:
        """The /opt tree of `layers` in order (later ones overwrite earlier files), built once per
        distinct ordered list. One layer is its own unpacked tree; more are merged into a tree of
        hard links to their unpacked files (no file data is copied), cached by the list's hash."""
        if len(layers) == 1:
            return await self.unpack(layers[0])
        key = hashlib.sha256(" ".join(code.sha256_hex for code in layers).encode()).hexdigest()
        target = self._merged / key
        if target.exists():  # built before: no need to look at the layers' own trees
            return target
        trees = [await self.unpack(code) for code in layers]
        lock = self._unpack_locks.setdefault(f"merged-{key}", asyncio.Lock())
        async with lock:
            if not target.exists():
                await asyncio.to_thread(_merge, trees, target)
        return target

    def has(self, sha256_hex: str) -> bool:
        return self.zip_path(sha256_hex).exists()

    async def zip_tree(self, sha256_hex: str) -> bytes | None:
        """A zip of unpacked code that was never a zip (a source snapshot, store/snapshots.py), for
        GetFunction's Code.Location; None if there is no such tree. Built on demand, not kept."""
        root = self._unpacked / sha256_hex
        if not root.is_dir():
            return None
        return await asyncio.to_thread(_zip_tree, root)


def _zip_tree(root: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_dir() or "__pycache__" in rel.parts:
                continue
            info = zipfile.ZipInfo(rel.as_posix(), date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | (path.stat().st_mode & 0o777)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def _merge(trees: list[Path], target: Path) -> None:
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        for tree in trees:
            for here, dirs, files in os.walk(tree):
                rel = Path(here).relative_to(tree)
                for d in dirs:
                    dest = tmp / rel / d
                    if dest.exists() and not dest.is_dir():
                        dest.unlink()  # a later layer's directory replaces an earlier file
                    dest.mkdir(mode=0o755, exist_ok=True)
                for f in files:
                    src, dest = Path(here) / f, tmp / rel / f
                    if dest.is_dir():
                        shutil.rmtree(dest)
                    elif dest.exists():
                        dest.unlink()
                    try:
                        os.link(src, dest)
                    except OSError:
                        shutil.copy2(src, dest)  # a store spread over file systems
        os.chmod(tmp, 0o755)  # readable by sandbox uids, as unpacked trees are
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _member_mode(info: zipfile.ZipInfo) -> int:
    """A member's mode once unpacked: readable by all (the function runs as another uid than the
    owner), executable by all if it was executable at all (a custom runtime's bootstrap). Zips made
    with Python's `ZipFile.writestr(name, ...)` hold 0600 members and zips made on Windows none;
    both run on Lambda, so both must run here."""
    mode = (info.external_attr >> 16) & 0o777 or 0o644
    if mode & 0o111:
        mode |= 0o555
    return mode | 0o444


def _safe_member(name: str) -> str:
    """Refuse absolute paths and `..` (zip slip)."""
    parts = Path(name).parts
    if name.startswith("/") or ".." in parts:
        raise ValueError(f"unsafe path in zip: {name}")
    return name
