"""The dependency cache: keys, and entries that exist only when complete."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.build.cache import DependencyCache, cache_key, link_tree


def test_key_depends_on_every_part_and_their_boundaries() -> None:
    assert cache_key([b"ab", b"c"]) != cache_key([b"a", b"bc"])
    assert cache_key([b"x"]) == cache_key([b"x"])
    assert cache_key([b"x"]) != cache_key([b"x", b""])


def test_entry_appears_only_after_a_complete_fill(tmp_path: Path) -> None:
    cache = DependencyCache(tmp_path)
    with pytest.raises(RuntimeError), cache.filling("k1") as scratch:
        (scratch / "half.py").write_text("x = 1\n")
        raise RuntimeError("installer died")
    assert cache.get("k1") is None
    assert list(cache.root.iterdir()) == []  # no scratch left behind

    with cache.filling("k1") as scratch:
        (scratch / "pkg.py").write_text("x = 2\n")
    entry = cache.get("k1")
    assert entry is not None and (entry / "pkg.py").read_text() == "x = 2\n"
    assert entry.stat().st_mode & 0o755 == 0o755


def test_a_racing_fill_of_the_same_key_keeps_the_first_entry(tmp_path: Path) -> None:
    cache = DependencyCache(tmp_path)
    with cache.filling("k") as first, cache.filling("k") as second:
        (first / "a").write_text("first")
        (second / "a").write_text("second")
    entry = cache.get("k")
    assert entry is not None and (entry / "a").read_text() == "second"  # inner block ended first
    assert [p.name for p in cache.root.iterdir()] == ["k"]


def test_link_tree_merges_with_hard_links(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text("y = 3\n")
    dst = tmp_path / "dst"
    (dst / "pkg").mkdir(parents=True)
    (dst / "app.py").write_text("")
    link_tree(src, dst)
    assert (dst / "pkg" / "m.py").read_text() == "y = 3\n"
    assert (dst / "pkg" / "m.py").stat().st_ino == (src / "pkg" / "m.py").stat().st_ino
    assert (dst / "app.py").exists()
