"""Builds with dependencies, with the real tools: pip and npm installing into a build directory,
the cache answering a second build without them, and `lamina deploy` shipping the build to a real
server whose function imports what pip installed."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

import lamina
from lamina.build import BuildError, build_function, build_layer
from lamina.cli.client import zip_directory
from lamina.testing import PROBE, RunningServer, make_wheel

RUNTIME = "python3.11"
# A small pure-Python package from PyPI, pinned, installed when the index answers.
PYPI_PACKAGE = ("six", "1.17.0")
CLI_TIMEOUT = 120.0
_ENV = {**os.environ, "PYTHONPATH": str(Path(lamina.__file__).resolve().parents[1])}
_ENV.pop("LAMINA_ENDPOINT", None)


def pypi_reachable() -> bool:
    try:
        with urllib.request.urlopen(f"https://pypi.org/simple/{PYPI_PACKAGE[0]}/", timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def python_function(root: Path, *, from_pypi: bool) -> Path:
    """A function whose requirements.txt names the local wheel (and a PyPI package if reachable)."""
    make_wheel(root / "wheels")
    lines = ["--find-links ./wheels", f"{PROBE}==1.0"]
    if from_pypi:
        lines.append("==".join(PYPI_PACKAGE))
    else:
        lines.insert(0, "--no-index")  # offline: pip must not wait on an index
    (root / "requirements.txt").write_text("\n".join(lines) + "\n")
    uses_six = f"import {PYPI_PACKAGE[0]}\n" if from_pypi else ""
    six_version = f"{PYPI_PACKAGE[0]}.__version__" if from_pypi else "None"
    (root / "app.py").write_text(
        f"import {PROBE}\n{uses_six}\n"
        f"def handler(event, context):\n    return {{'greeting': {PROBE}.greet(event['name']), 'six': {six_version}}}\n"
    )
    return root


def lamina_cli(endpoint: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lamina", "--endpoint", endpoint, *args], capture_output=True,
                          text=True, timeout=CLI_TIMEOUT, env={**_ENV, **env})  # fmt: skip


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


# --- Python ----------------------------------------------------------------------------------


def test_python_build_installs_with_pip_then_reuses_the_cache_without_it(tmp_path: Path) -> None:
    src = python_function(tmp_path / "fn", from_pypi=False)
    cache = tmp_path / "cache"
    lines: list[str] = []
    first = build_function(src, RUNTIME, cache_dir=cache, on_output=lines.append)
    assert not first.cached and first.output == src / ".lamina-build" / "function"
    assert any(PROBE in line for line in lines), lines  # pip's own output reached the sink
    assert (first.output / f"{PROBE}.py").is_file() and (first.output / "app.py").is_file()
    check = [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, '.'); import {PROBE}; print({PROBE}.greet('x'))"]
    assert subprocess.run(check, cwd=first.output, capture_output=True, text=True, timeout=30).stdout == "probe 1.0 greets x\n"

    # The marker that pip does not run again: its only source of the package is gone, yet the
    # second build succeeds (and a source edit still lands in it).
    shutil.rmtree(src / "wheels")
    (src / "app.py").write_text((src / "app.py").read_text() + "# edited\n")
    started = time.monotonic()
    second = build_function(src, RUNTIME, cache_dir=cache, on_output=lines.append)
    elapsed = time.monotonic() - started
    assert second.cached and second.cache_key == first.cache_key
    assert elapsed < 1.0, elapsed
    assert (second.output / f"{PROBE}.py").is_file()
    assert (second.output / "app.py").read_text().endswith("# edited\n")
    assert not (second.output / "wheels").exists()
    # Zipping the source as it is (deploy --no-build) leaves the build directory out.
    with zipfile.ZipFile(io.BytesIO(zip_directory(src))) as zf:
        assert sorted(zf.namelist()) == ["app.py", "requirements.txt"]

    # Changed requirements are a new key: pip runs, fails (no wheel any more), and says why.
    (src / "requirements.txt").write_text("--no-index\n--find-links ./wheels\nlamina_build_probe==2.0\n")
    with pytest.raises(BuildError, match=r"pip failed \(exit 1\)") as failure:
        build_function(src, RUNTIME, cache_dir=cache)
    assert any("lamina_build_probe==2.0" in line for line in failure.value.tail), failure.value.tail


def test_another_python_version_gets_wheels_for_that_version(tmp_path: Path) -> None:
    # Not this interpreter's version: pip is asked for wheels of 3.13 on this platform.
    other = "python3.13" if sys.version_info[:2] != (3, 13) else "python3.12"
    src = python_function(tmp_path / "fn", from_pypi=False)
    result = build_function(src, other, cache_dir=tmp_path / "cache")
    assert (result.output / f"{PROBE}.py").is_file()
    native = build_function(src, RUNTIME, cache_dir=tmp_path / "cache")
    assert native.cache_key != result.cache_key and not native.cached


def test_python_layer_puts_dependencies_under_python(tmp_path: Path) -> None:
    src = python_function(tmp_path / "layer", from_pypi=False)
    out = build_layer(src, RUNTIME, cache_dir=tmp_path / "cache")
    assert (out / "python" / f"{PROBE}.py").is_file()
    assert not (out / f"{PROBE}.py").exists()


def test_deploy_builds_and_the_function_imports_its_dependencies(server: RunningServer, tmp_path: Path, fname: str) -> None:
    from_pypi = pypi_reachable()
    src = python_function(tmp_path / "fn", from_pypi=from_pypi)
    env = {"LAMINA_CACHE_DIR": str(tmp_path / "cache")}
    deployed = ok(lamina_cli(server.endpoint, "deploy", str(src), "--name", fname, "--runtime", RUNTIME,
                             "--handler", "app.handler", env=env))  # fmt: skip
    assert "dependencies installed with pip" in deployed.stderr, deployed.stderr
    invoked = ok(lamina_cli(server.endpoint, "invoke", fname, "--payload", '{"name": "lamina"}', env=env))
    result = json.loads(invoked.stdout)
    assert result == {"greeting": "probe 1.0 greets lamina", "six": PYPI_PACKAGE[1] if from_pypi else None}

    rebuilt = ok(lamina_cli(server.endpoint, "build", str(src), "--runtime", RUNTIME, env=env))
    assert "dependencies from cache" in rebuilt.stderr, rebuilt.stderr

    # --no-build deploys the directory as it is: the import fails in the function's init.
    ok(lamina_cli(server.endpoint, "deploy", str(src), "--name", fname, "--runtime", RUNTIME, "--handler", "app.handler",
                  "--no-build", env=env))  # fmt: skip
    failed = lamina_cli(server.endpoint, "invoke", fname, "--payload", '{"name": "x"}', env=env)
    assert failed.returncode == 1 and "Runtime.ImportModuleError" in failed.stdout, failed.stdout


def test_layer_publish_with_requirements_serves_its_dependencies(server: RunningServer, tmp_path: Path, fname: str) -> None:
    layer_src = python_function(tmp_path / "layer", from_pypi=False)
    (layer_src / "app.py").unlink()  # a layer of dependencies only
    env = {"LAMINA_CACHE_DIR": str(tmp_path / "cache")}
    published = ok(lamina_cli(server.endpoint, "layer", "publish", str(layer_src), "--name", fname + "-deps",
                              "--runtime", RUNTIME, "--requirements", env=env))  # fmt: skip
    assert "dependencies installed with pip" in published.stderr, published.stderr
    arn = next(w for w in published.stdout.split() if w.startswith("arn:aws:lambda:") and ":layer:" in w)
    fn = tmp_path / "fn"
    fn.mkdir()
    (fn / "app.py").write_text(f"import {PROBE}\n\ndef handler(event, context):\n    return {PROBE}.greet('layer')\n")
    ok(lamina_cli(server.endpoint, "deploy", str(fn), "--name", fname, "--runtime", RUNTIME, "--handler", "app.handler",
                  "--layer", arn, env=env))  # fmt: skip
    invoked = ok(lamina_cli(server.endpoint, "invoke", fname, env=env))
    assert json.loads(invoked.stdout) == "probe 1.0 greets layer"
    # Without --runtime there is no platform to install for: a one-line error, nothing published.
    refused = lamina_cli(server.endpoint, "layer", "publish", str(layer_src), "--name", fname + "-x", "--requirements", env=env)
    assert refused.returncode == 1 and "--requirements needs --runtime" in refused.stderr, refused.stderr


def test_build_errors_are_one_line_after_the_tool_output(server: RunningServer, tmp_path: Path) -> None:
    src = tmp_path / "fn"
    src.mkdir()
    (src / "app.py").write_text("def handler(e, c):\n    return 1\n")
    (src / "requirements.txt").write_text("--no-index\nno-such-package-for-lamina==9.9\n")
    result = lamina_cli(server.endpoint, "build", str(src), "--runtime", RUNTIME, env={"LAMINA_CACHE_DIR": str(tmp_path / "c")})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: build of") and "pip failed" in last, result.stderr
    assert "no-such-package-for-lamina" in result.stderr  # pip's own explanation, shown above
    assert "Traceback" not in result.stderr


# --- Node ------------------------------------------------------------------------------------


def node_function(root: Path) -> Path:
    """A Node function depending on a local package through a `file:` path."""
    greet = root / "vendor" / "greet"
    greet.mkdir(parents=True)
    (greet / "package.json").write_text(json.dumps({"name": "greet", "version": "1.0.0", "main": "index.js"}))
    (greet / "index.js").write_text('module.exports = (n) => "greet " + n;\n')
    package = {"name": "fn", "version": "1.0.0", "dependencies": {"greet": "file:./vendor/greet"}}
    (root / "package.json").write_text(json.dumps(package))
    (root / "index.js").write_text('exports.handler = async (e) => require("greet")(e.name);\n')
    return root


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed (scripts/setup.sh installs it)")
def test_node_build_copies_local_packages_and_reuses_the_cache(tmp_path: Path) -> None:
    src = node_function(tmp_path / "fn")
    cache = tmp_path / "cache"
    first = build_function(src, "nodejs20.x", cache_dir=cache)
    greet = first.output / "node_modules" / "greet"
    assert not first.cached and greet.is_dir() and not greet.is_symlink()
    run = [shutil.which("node") or "node", "-e", 'require("./index.js").handler({name: "n"}).then(console.log)']
    assert subprocess.run(run, cwd=first.output, capture_output=True, text=True, timeout=30).stdout == "greet n\n"

    # npm cannot run again: the file: package it would install is gone. The cache still serves.
    shutil.rmtree(src / "vendor")
    second = build_function(src, "nodejs20.x", cache_dir=cache)
    assert second.cached and (second.output / "node_modules" / "greet" / "index.js").is_file()
    assert subprocess.run(run, cwd=second.output, capture_output=True, text=True, timeout=30).stdout == "greet n\n"

    layer = build_layer(node_function(tmp_path / "layer"), "nodejs20.x", cache_dir=cache)
    assert (layer / "nodejs" / "node_modules" / "greet" / "index.js").is_file()


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed (scripts/setup.sh installs it)")
def test_npm_failures_are_build_errors_and_leave_no_cache_entry(tmp_path: Path) -> None:
    src = tmp_path / "fn"
    src.mkdir()
    (src / "package.json").write_text('{"name": "fn", "dependencies": {')
    with pytest.raises(BuildError, match=r"npm failed") as failure:
        build_function(src, "nodejs20.x", cache_dir=tmp_path / "cache")
    assert any("JSON" in line for line in failure.value.tail), failure.value.tail
    (src / "package.json").write_text(json.dumps({"name": "fn", "dependencies": {"gone": "file:./nowhere"}}))
    with pytest.raises(BuildError, match="gone points to"):
        build_function(src, "nodejs20.x", cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache" / "deps").iterdir()) == []  # no half entry


def test_nothing_to_build_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="has no requirements.txt"):
        build_function(tmp_path, RUNTIME, cache_dir=tmp_path / "cache")
    with pytest.raises(BuildError, match="builds are for python"):
        build_function(tmp_path, "provided.al2023", cache_dir=tmp_path / "cache")
