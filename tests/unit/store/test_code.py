"""CodeStore: content-addressed zips, validation, unpack once keeping execute bits."""

from __future__ import annotations

import asyncio
import io
import os
import zipfile
from pathlib import Path

import pytest

from lamina.model.errors import InvalidParameterValueException, RequestEntityTooLargeException
from lamina.store.code import MAX_ZIPPED, CodeStore
from lamina.testing import zip_files

pytestmark = pytest.mark.anyio


async def test_put_is_content_addressed_and_unpacks_once(tmp_path: Path) -> None:
    store = CodeStore(tmp_path)
    data = zip_files({"app.py": "x = 1\n", "bin/bootstrap": "#!/bin/sh\n"}, executable=("bin/bootstrap",))
    a = await store.put(data)
    b = await store.put(data)
    assert a == b and a.size == len(data)
    assert len(list((tmp_path / "zips").iterdir())) == 1
    dirs = await asyncio.gather(*(store.unpack(a) for _ in range(5)))
    assert len(set(dirs)) == 1
    root = dirs[0]
    assert (root / "app.py").read_text() == "x = 1\n"
    assert os.access(root / "bin" / "bootstrap", os.X_OK)
    assert not os.stat(root / "app.py").st_mode & 0o111
    assert [p.name for p in (tmp_path / "unpacked").iterdir()] == [a.sha256_hex]


async def test_rejects_bad_zips(tmp_path: Path) -> None:
    store = CodeStore(tmp_path)
    with pytest.raises(InvalidParameterValueException, match="Could not unzip uploaded file"):
        await store.put(b"definitely not a zip")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../escape.py", "x")
    with pytest.raises(InvalidParameterValueException):
        await store.put(buf.getvalue())
    with pytest.raises(RequestEntityTooLargeException, match="Zipped size must be smaller than 52428800 bytes"):
        await store.put(b"0" * (MAX_ZIPPED + 1))


async def test_rejects_too_large_unzipped(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (262_144_000 + 1))
    with pytest.raises(InvalidParameterValueException, match="Unzipped size must be smaller than 262144000 bytes"):
        await CodeStore(tmp_path).put(buf.getvalue())


async def test_merged_layers_overwrite_in_order_and_are_built_once(tmp_path: Path) -> None:
    store = CodeStore(tmp_path)
    first = await store.put(zip_files({"python/a.py": "1", "python/shared.py": "first", "x": "a file", "bin/t": "#!/bin/sh\n"},
                                      executable=("bin/t",)))  # fmt: skip
    second = await store.put(zip_files({"python/shared.py": "second", "x/inner": "now a directory"}))
    assert await store.merged([first]) == await store.unpack(first)  # one layer: its own tree
    trees = await asyncio.gather(*(store.merged([first, second]) for _ in range(3)))
    assert len(set(trees)) == 1
    root = trees[0]
    assert root.parent == tmp_path / "merged" and len(list((tmp_path / "merged").iterdir())) == 1
    assert (root / "python" / "a.py").read_text() == "1"
    assert (root / "python" / "shared.py").read_text() == "second"
    assert (root / "x" / "inner").read_text() == "now a directory"
    assert os.access(root / "bin" / "t", os.X_OK)
    # Hard links to the unpacked layers: no file data copied.
    assert (root / "python" / "a.py").stat().st_ino == (await store.unpack(first) / "python" / "a.py").stat().st_ino
    # The other order is another tree, where the first layer wins.
    other = await store.merged([second, first])
    assert other != root and (other / "python" / "shared.py").read_text() == "first" and (other / "x").is_file()
    assert await store.unzipped_size(first) == len("1") + len("first") + len("a file") + len("#!/bin/sh\n")


async def test_unpacked_members_are_readable_by_every_uid(tmp_path: Path) -> None:
    # Python's writestr(name, ...) stores 0600, Windows tools store no mode: both run on Lambda.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", "x = 1\n")  # 0600
        private_exec = zipfile.ZipInfo("bootstrap")
        private_exec.external_attr = 0o700 << 16
        zf.writestr(private_exec, "#!/bin/sh\n")
        no_mode = zipfile.ZipInfo("data.txt")
        no_mode.external_attr = 0
        zf.writestr(no_mode, "d")
    store = CodeStore(tmp_path)
    root = await store.unpack(await store.put(buf.getvalue()))
    modes = {name: os.stat(root / name).st_mode & 0o777 for name in ("app.py", "bootstrap", "data.txt")}
    assert modes == {"app.py": 0o644, "bootstrap": 0o755, "data.txt": 0o644}
