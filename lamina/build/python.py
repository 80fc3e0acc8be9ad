"""Python dependencies: `pip install -r requirements.txt --target DIR`, for the function's runtime.

Which pip: the one of the interpreter running Lamina (`sys.executable -m pip`). Debian's
python3.X ships without pip (python3-pip is a separate package), while Lamina's own environment
always has one. When the runtime's version is this interpreter's, pip installs natively, so
packages that only publish an sdist still build. For another version, pip is told the target
(`--python-version`, `--implementation cp`, `--abi`, the host's manylinux platforms) and can only
take wheels (`--only-binary=:all:`, which pip requires with those flags): the same way AWS
documents building Lambda packages on a machine that is not Lambda's.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from pathlib import Path

from lamina.build.tool import BuildError, OutputSink, run_tool

REQUIREMENTS = "requirements.txt"
# The oldest glibc that manylinux_2_X wheels name (manylinux2014 = manylinux_2_17).
_OLDEST_GLIBC_MINOR = 17


def runtime_version(runtime: str) -> tuple[int, int]:
    """(3, 12) for "python3.12"; BuildError for anything else."""
    major, _, minor = runtime.removeprefix("python").partition(".")
    if not runtime.startswith("python") or not major.isdigit() or not minor.isdigit():
        raise BuildError(f"{runtime!r} is not a Python runtime (expected e.g. python3.12)")
    return int(major), int(minor)


def host_platforms() -> list[str]:
    """pip --platform tags for wheels this host can load, newest glibc first."""
    machine = platform.machine()
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""  # "glibc 2.36"
    name, _, version = libc.partition(" ")
    glibc_minor = int(version.split(".")[1]) if name == "glibc" and version.count(".") >= 1 else _OLDEST_GLIBC_MINOR
    tags = [f"manylinux_2_{m}_{machine}" for m in range(glibc_minor, _OLDEST_GLIBC_MINOR - 1, -1)]
    return tags + [f"manylinux2014_{machine}", f"linux_{machine}"]


def key_parts(source: Path, runtime: str) -> list[bytes]:
    """What decides the installed result: requirements, target version, host platform."""
    major, minor = runtime_version(runtime)
    return [b"python", f"{major}.{minor}".encode(), " ".join(host_platforms()).encode(), (source / REQUIREMENTS).read_bytes()]


def pip_argv(requirements: Path, target: Path, runtime: str) -> list[str]:
    major, minor = runtime_version(runtime)
    argv = [sys.executable, "-m", "pip", "install", "--requirement", str(requirements), "--target", str(target),
            "--no-compile", "--no-input", "--disable-pip-version-check", "--progress-bar", "off"]  # fmt: skip
    if (major, minor) != sys.version_info[:2]:
        argv += ["--python-version", f"{major}.{minor}", "--implementation", "cp", "--abi", f"cp{major}{minor}",
                 "--only-binary=:all:"]  # fmt: skip
        for tag in host_platforms():
            argv += ["--platform", tag]
    return argv


def install(source: Path, target: Path, runtime: str, on_output: OutputSink) -> None:
    """Install `source`/requirements.txt into `target`. pip runs in `source`, so relative paths
    in the file (local wheels, `--find-links ./wheels`) mean what they say."""
    if importlib.util.find_spec("pip") is None:
        raise BuildError(f"{sys.executable} has no pip: install it into Lamina's environment (python -m ensurepip)")
    run_tool("pip", pip_argv(source / REQUIREMENTS, target, runtime), cwd=source, on_output=on_output)
