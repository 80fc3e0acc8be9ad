"""The dependency cache: installed dependencies kept under a key that hashes what decided them.

An entry is a directory `<root>/deps/<key>/` that exists only once complete: it is filled under a
temporary name and renamed into place, so an interrupted or failed install leaves no entry and two
builds racing for one key both end with a whole one. Nothing expires entries; deleting the
directory is always safe.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Part of every key: bump it when the layout of an entry changes.
_FORMAT = b"lamina-deps-1"


def cache_key(parts: Iterable[bytes]) -> str:
    """sha256 over the parts, each length-prefixed so ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256(_FORMAT)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class DependencyCache:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser() / "deps"

    def get(self, key: str) -> Path | None:
        """The complete entry for `key`, or None."""
        path = self.root / key
        return path if path.is_dir() else None

    @contextmanager
    def filling(self, key: str) -> Iterator[Path]:
        """An empty directory to install into; it becomes the entry for `key` when the block ends
        without an exception, and is removed otherwise."""
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.root))
        scratch.chmod(0o755)  # mkdtemp makes it 0700; the entry is linked into readable builds
        try:
            yield scratch
            try:
                os.rename(scratch, self.root / key)
            except OSError:
                if self.get(key) is None:
                    raise
                # Another build completed the same key first; its entry is as good as ours.
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def link_tree(source: Path, target: Path) -> None:
    """Merge `source` into `target` with hard links (copies across file systems): an entry of
    thousands of files lands in a build directory in milliseconds, taking no extra space."""
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, copy_function=_link_or_copy)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
