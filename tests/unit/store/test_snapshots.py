"""SourceSnapshots: tree hashes, ignored files, changed-file lists, hard links, racy saves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamina.model.errors import InvalidParameterValueException
from lamina.store.code import CodeStore
from lamina.store.snapshots import SourceSnapshots, ignored


def test_snapshot_is_content_addressed_and_only_changes_are_listed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "app.py").write_text("A = 1\n")
    (src / "pkg" / "mod.py").write_text("B = 2\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "run.sh", 0o755)
    for junk in (".git/HEAD", "__pycache__/app.cpython-311.pyc", ".app.py.swp", "app.py~"):
        (src / junk).parent.mkdir(exist_ok=True)
        (src / junk).write_text("junk")
    old = os.stat(src / "pkg" / "mod.py").st_mtime - 60
    os.utime(src / "pkg" / "mod.py", (old, old))  # saved long ago: its stat key is trusted
    snaps = SourceSnapshots(CodeStore(tmp_path / "code"))

    first = snaps.take(src)
    assert first.changed == ("app.py", "pkg/mod.py", "run.sh") and first.files == 3
    assert sorted(p.relative_to(first.path).as_posix() for p in first.path.rglob("*") if p.is_file()) == list(first.changed)
    assert os.stat(first.path / "run.sh").st_mode & 0o777 == 0o755
    assert first.code.source == str(src) and first.code.size == len("A = 1\nB = 2\n#!/bin/sh\n")

    again = snaps.take(src)
    assert again.code == first.code and again.changed == ()

    (src / "app.py").write_text("A = 3\n")  # same size, likely the same mtime tick: read again anyway
    second = snaps.take(src)
    assert second.changed == ("app.py",) and second.code.sha256_hex != first.code.sha256_hex
    assert (second.path / "app.py").read_text() == "A = 3\n"
    assert (first.path / "app.py").read_text() == "A = 1\n"  # the old snapshot is untouched
    assert os.stat(second.path / "pkg" / "mod.py").st_ino == os.stat(first.path / "pkg" / "mod.py").st_ino  # linked

    (src / "pkg" / "mod.py").unlink()
    third = snaps.take(src)
    assert third.changed == ("pkg/mod.py",)

    # Another snapshotter (a restarted server) of the same tree gets the same hash.
    assert SourceSnapshots(CodeStore(tmp_path / "code2")).take(src).code.sha256_hex == third.code.sha256_hex


def test_symlinked_directories_are_followed_once(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "real").mkdir(parents=True)
    (src / "real" / "m.py").write_text("M = 1\n")
    (src / "linked").symlink_to(src / "real", target_is_directory=True)
    (src / "real" / "loop").symlink_to(src, target_is_directory=True)  # a cycle
    snap = SourceSnapshots(CodeStore(tmp_path / "code")).take(src)
    assert snap.changed == ("linked/m.py", "real/m.py")


def test_ignored_paths() -> None:
    assert ignored(("__pycache__", "x.pyc")) and ignored((".git", "config")) and ignored(("a.py.swp",))
    assert ignored(("4913",)) and ignored((".#app.py",))
    assert not ignored(("node_modules", "left-pad", "index.js")) and not ignored(("app.py",))


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterValueException, match="does not exist"):
        SourceSnapshots(CodeStore(tmp_path / "code")).take(tmp_path / "nope")
