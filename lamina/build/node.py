"""Node dependencies: `npm ci` (with a lock file) or `npm install`, production dependencies only.

npm runs in a copy of the function's directory (its own node_modules left out), so the user's
tree is never written to and `file:` dependencies inside it resolve as they do there. npm links
such packages (node_modules/x -> ../vendor/x), even with --install-links, which only packs those
outside the project; the links are replaced with copies, so the cached node_modules stands alone.
`file:` paths that leave the function's directory are not supported.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from lamina.build.tool import BuildError, OutputSink, run_tool

PACKAGE_JSON = "package.json"
LOCK_FILES = ("package-lock.json", "npm-shrinkwrap.json")
NODE_MODULES = "node_modules"
_NPM_HINT = "install Node.js and npm (Debian: apt-get install nodejs npm)"


def node_major() -> str:
    """The host's Node major version ("20"): native addons are built for it."""
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BuildError(f"node is not installed or does not run: {_NPM_HINT}") from exc
    return out.strip().lstrip("v").split(".")[0]


def key_parts(source: Path) -> list[bytes]:
    parts = [b"node", node_major().encode(), platform.machine().encode(), (source / PACKAGE_JSON).read_bytes()]
    for name in LOCK_FILES:
        lock = source / name
        parts.append(lock.read_bytes() if lock.is_file() else b"")
    return parts


def install(source: Path, target: Path, on_output: OutputSink, *, skip: tuple[str, ...] = ()) -> None:
    """Leave the installed packages in `target`/node_modules; `skip`: names not copied for npm."""
    work = target / ".work"
    shutil.copytree(source, work, symlinks=True, ignore=shutil.ignore_patterns(NODE_MODULES, *skip))
    has_lock = any((work / name).is_file() for name in LOCK_FILES)
    argv = ["npm", "ci" if has_lock else "install", "--omit=dev", "--no-audit", "--no-fund", "--no-progress"]
    run_tool("npm", argv, cwd=work, on_output=on_output, missing_hint=_NPM_HINT)
    modules = work / NODE_MODULES
    if modules.is_dir():
        _copy_linked_packages(modules)
        modules.rename(target / NODE_MODULES)
    else:  # no dependencies at all: npm makes no directory
        (target / NODE_MODULES).mkdir()
    shutil.rmtree(work)


def _copy_linked_packages(modules: Path) -> None:
    """Replace each package that npm symlinked (`file:` directories) by a copy of its target."""
    entries = [p for p in modules.iterdir() if not p.name.startswith(".")]
    entries += [p for scope in entries if scope.name.startswith("@") and scope.is_dir() and not scope.is_symlink()
                for p in scope.iterdir()]  # fmt: skip
    for entry in entries:
        if not entry.is_symlink():
            continue
        if not entry.is_dir():  # npm links a missing `file:` directory without complaint
            raise BuildError(f"package {entry.name} points to {os.readlink(entry)}, which is not a directory")
        real = entry.resolve()
        entry.unlink()
        shutil.copytree(real, entry, symlinks=True)
