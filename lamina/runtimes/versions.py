"""Runtime versions (spec 10): which builds of each managed runtime are installed, and which one an
environment of a function runs.

A runtime version is one exact build: for a managed runtime, the interpreter binary, Lamina's
runtime client for that language and the AWS SDK the runtime carries; for an OS-only runtime (`provided*`), the host OS release. Its
ARN is `arn:aws:lambda:<region>::runtime:<sha256>` of those contents, so a patched interpreter
(new bytes) is a new version and an untouched one keeps its ARN across restarts.

Builds come from the host (the interpreter the catalog found) and, optionally, from a directory of
extra builds laid out as `<dir>/<runtime id>/<build name>/bin/<interpreter>` (LAMINA_RUNTIME_BUILDS):
that is how a patch is installed beside the old build, and how tests simulate one. The newest
build (latest modification time) is the runtime's current version.

`refresh()` looks again (a few stat calls; contents are hashed only for builds not seen before)
and runs before every cold start, so a build installed while the server runs is picked up by the
next cold start of an Auto function, and a removed one is gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lamina.model.errors import InvalidRuntimeException
from lamina.model.function import FunctionConfig, UpdateRuntimeOn
from lamina.runtimes.catalog import (
    BOOTSTRAP_DIR, NODEJS_SDK, NODEJS_SDK_LOCK, RuntimeCatalog, RuntimeInfo, reachable_by_others,
)  # fmt: skip
from lamina.runtimes.sdk import SdkCatalog

log = logging.getLogger("lamina.runtimes")

OS_RELEASE = Path("/etc/os-release")
_LABEL = re.compile(r"^([a-z]+)(.*)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeVersion:
    identifier: str
    interpreter: Path | None  # None for OS-only runtimes (the function's own bootstrap runs)
    name: str  # INIT_START's "Runtime Version", e.g. python:3.11.2-5d0c9e1a
    arn: str
    installed: float  # the build's modification time: the newest is the runtime's current version

    @property
    def info(self) -> RuntimeInfo:
        return RuntimeInfo(identifier=self.identifier, interpreter=self.interpreter)


@dataclass(frozen=True, slots=True)
class _Fingerprint:
    """What identifies a file's contents without reading them (for the hash cache)."""

    path: Path
    inode: int
    size: int
    mtime_ns: int


class RuntimeVersions:
    """Installed versions per runtime. Call `refresh` (or `look`, from the loop) one at a time; reads
    may run while one refresh runs (it swaps in a new table at the end)."""

    def __init__(
        self,
        catalog: RuntimeCatalog,
        *,
        region: str,
        builds_dir: Path | None = None,
        shared_paths_only: bool = False,
        python_sdks: SdkCatalog | None = None,
    ) -> None:
        self._catalog = catalog
        self._python_sdks = python_sdks
        self._region = region
        self._builds_dir = builds_dir
        self._shared_only = shared_paths_only
        # Builds already looked at, by runtime and file fingerprint: a refresh that finds nothing
        # new costs a stat per build.
        self._seen: dict[tuple[str, _Fingerprint], RuntimeVersion] = {}
        self._clients: dict[str, str] = {}  # language family → sha256 of its runtime client's files
        self._skipped: set[Path] = set()  # builds refused once (said once in the log)
        self._table: dict[str, list[RuntimeVersion]] = {}
        self._looking: asyncio.Lock | None = None  # made in the loop, on first use
        self.refresh()

    # --- lookups -----------------------------------------------------------------------------

    def installed(self, identifier: str) -> list[RuntimeVersion]:
        """Installed versions of a runtime, newest first."""
        return list(self._table.get(identifier, ()))

    def runtimes(self) -> list[str]:
        """Identifiers with at least one installed version."""
        return sorted(self._table)

    def current(self, identifier: str) -> RuntimeVersion | None:
        versions = self._table.get(identifier)
        return versions[0] if versions else None

    def find(self, identifier: str, arn: str) -> RuntimeVersion | None:
        return next((v for v in self._table.get(identifier, ()) if v.arn == arn), None)

    def select(self, config: FunctionConfig) -> RuntimeVersion:
        """The version a new environment of `config` runs (spec 10): Auto the newest;
        FunctionUpdate the one recorded at its last update (the newest if that build is gone);
        Manual its pinned one. Raises InvalidRuntimeException when there is none to run."""
        rid = config.runtime
        current = self.current(rid)
        if current is None:
            raise InvalidRuntimeException(f"The runtime {rid} is not available on this Lamina host.")
        rm = config.runtime_management
        if rm.update_on is UpdateRuntimeOn.AUTO or rm.version_arn is None:
            return current
        pinned = self.find(rid, rm.version_arn)
        if pinned is not None:
            return pinned
        if rm.update_on is UpdateRuntimeOn.FUNCTION_UPDATE:
            log.warning("%s: runtime version %s is no longer installed; using %s", config.name, rm.version_arn, current.arn)
            return current
        raise InvalidRuntimeException(
            f"The runtime version {rm.version_arn} that function {config.name} is pinned to (UpdateRuntimeOn "
            f"Manual) is no longer installed on this Lamina host. Installed versions of {rid}: "
            f"{', '.join(v.arn for v in self.installed(rid))}. Pin one of them with PutRuntimeManagementConfig, "
            "or set UpdateRuntimeOn to Auto."
        )

    # --- discovery ---------------------------------------------------------------------------

    async def look(self, rid: str | None = None) -> None:
        """`refresh` off the event loop (hashing a new build reads its whole binary), one at a time."""
        if self._looking is None:
            self._looking = asyncio.Lock()
        async with self._looking:
            await asyncio.to_thread(self.refresh, rid)

    def refresh(self, rid: str | None = None) -> None:
        """Look at the installed builds again (blocking: stat calls, and hashing of new builds): of
        every runtime, or of `rid` alone (a cold start needs only its own runtime's)."""
        if rid is not None:
            table = dict(self._table)
            found = self._scan(rid)
            if found or self._catalog.get(rid) is not None:
                table[rid] = found
            else:
                table.pop(rid, None)
            self._table = table
            return
        table = {}
        for r in [*self._catalog.available, *sorted(self._extra_runtimes() - set(self._catalog.available))]:
            found = self._scan(r)
            if found or self._catalog.get(r) is not None:
                table[r] = found
        self._table = table

    def _scan(self, rid: str) -> list[RuntimeVersion]:
        """`rid`'s installed versions, newest first: the host's build (or OS) and the extra builds."""
        info = self._catalog.get(rid)
        found: list[RuntimeVersion | None] = []
        if info is not None:
            found.append(self._version(rid, info.interpreter) if info.interpreter is not None else self._os_version(rid))
        found += [self._version(rid, path) for path in self._extra_builds(rid)]
        versions = {v.arn: v for v in found if v is not None}  # a copy identical to another is one version
        return sorted(versions.values(), key=lambda v: v.installed, reverse=True)

    def _extra_runtimes(self) -> set[str]:
        if self._builds_dir is None or not self._builds_dir.is_dir():
            return set()
        return {p.name for p in self._builds_dir.iterdir() if p.is_dir()}

    def _extra_builds(self, rid: str) -> list[Path]:
        """Interpreters under <builds>/<rid>/<build>/bin/: the one named like the host's, else the
        first executable file."""
        if self._builds_dir is None:
            return []
        root = self._builds_dir / rid
        if not root.is_dir():
            return []
        host = self._catalog.get(rid)
        wanted = host.interpreter.name if host is not None and host.interpreter is not None else None
        found = []
        for build in sorted(p for p in root.iterdir() if p.is_dir()):
            bindir = build / "bin"
            candidates = sorted(bindir.iterdir()) if bindir.is_dir() else []
            exes = [c for c in candidates if c.is_file() and os.access(c, os.X_OK)]
            pick = next((c for c in exes if c.name == wanted), exes[0] if exes else None)
            if pick is not None:
                found.append(pick)
        return found

    def _version(self, rid: str, interpreter: Path) -> RuntimeVersion | None:
        key = _fingerprint(interpreter)
        if key is None:
            return None  # removed since it was listed
        known = self._seen.get((rid, key))
        if known is not None:
            return known
        if self._shared_only and not reachable_by_others(interpreter):
            if interpreter not in self._skipped:
                self._skipped.add(interpreter)
                log.warning("runtime build %s is not readable by sandbox uids (see README, Isolation); ignored", interpreter)
            return None
        version = self._make(rid, interpreter, _file_sha256(interpreter), _language_version(interpreter), key.mtime_ns)
        self._seen[(rid, key)] = version
        return version

    def _os_version(self, rid: str) -> RuntimeVersion:
        """OS-only runtimes: the version follows the host's OS release (what Lambda patches there)."""
        key = _fingerprint(OS_RELEASE) or _Fingerprint(OS_RELEASE, 0, 0, 0)
        known = self._seen.get((rid, key))
        if known is not None:
            return known
        try:
            text = OS_RELEASE.read_text()
        except OSError:
            text = ""
        fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        release = (fields.get("ID", "linux") + fields.get("VERSION_ID", "")).replace('"', "")
        version = self._make(rid, None, hashlib.sha256(text.encode()).hexdigest(), release, key.mtime_ns)
        self._seen[(rid, key)] = version
        return version

    def _make(self, rid: str, interpreter: Path | None, binary: str, language: str, mtime_ns: int) -> RuntimeVersion:
        family, rest = _label(rid)
        client = self._client_hash(family)
        digest = hashlib.sha256(f"{rid}\0{binary}\0{client}\0{self._sdk_hash(rid)}".encode()).hexdigest()
        # python3.11 + 3.11.2 → python:3.11.2-…; nodejs20.x + 20.11.1 → nodejs:20.11.1-…;
        # provided.al2023 + debian12 → provided:al2023.debian12-…
        detail = language if language.startswith(rest) and rest else f"{rest}.{language}"
        return RuntimeVersion(
            identifier=rid,
            interpreter=interpreter,
            name=f"{family}:{detail}-{digest[:8]}",
            arn=f"arn:aws:lambda:{self._region}::runtime:{digest}",
            installed=mtime_ns / 1e9,
        )

    def _sdk_hash(self, rid: str) -> str:
        """The AWS SDK a managed runtime carries is part of its version (issue #6): boto3's set for
        Python, the npm lock file of the JavaScript SDK for Node.js; "" for none."""
        if rid.startswith("python") and self._python_sdks is not None:
            sdk = self._python_sdks.for_runtime(rid)
            return sdk.digest if sdk is not None else ""
        if rid.startswith("nodejs") and NODEJS_SDK.is_dir() and NODEJS_SDK_LOCK.is_file():
            return hashlib.sha256(NODEJS_SDK_LOCK.read_bytes()).hexdigest()
        return ""

    def _client_hash(self, family: str) -> str:
        """Lamina's runtime client for a language is part of the runtime version (Lambda's is too)."""
        if family not in self._clients:
            h = hashlib.sha256()
            root = BOOTSTRAP_DIR / family
            if root.is_dir():
                for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
                    h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
            self._clients[family] = h.hexdigest()
        return self._clients[family]


def _label(rid: str) -> tuple[str, str]:
    """python3.11 → (python, 3.11); nodejs20.x → (nodejs, 20); provided.al2023 → (provided, al2023)."""
    m = _LABEL.match(rid)
    family, rest = (m.group(1), m.group(2)) if m else (rid, "")
    rest = rest.lstrip(".").removesuffix(".x")
    return family, rest or "al1"


def _fingerprint(path: Path) -> _Fingerprint | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return _Fingerprint(path, st.st_ino, st.st_size, st.st_mtime_ns)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _language_version(interpreter: Path) -> str:
    """`3.11.2` from `Python 3.11.2`, `20.11.1` from node's `v20.11.1`; "unknown" if it will not say."""
    try:
        out = subprocess.run([str(interpreter), "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    words = (out.stdout or out.stderr).split()
    return words[-1].lstrip("v") if words else "unknown"
