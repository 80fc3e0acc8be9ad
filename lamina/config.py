"""Settings: one frozen object built at the edge (CLI flags and LAMINA_* variables), passed down.

No other module reads the environment; constructors take the Settings or the fields they need.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

# "auto": sandbox where the host supports it, else process (said at start, never silent).
IsolationMode = Literal["auto", "sandbox", "process"]
NetworkDefault = Literal["none", "outbound"]
# How sandboxes are launched: "zygote" forks them from a template process (root only), "bwrap"
# execs bubblewrap for each; "auto" takes the zygote where it can run.
SandboxLauncher = Literal["auto", "zygote", "bwrap"]
FunctionUrlStyle = Literal["auto", "host", "path"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 9000
    data_dir: Path = field(default_factory=lambda: Path("data"))
    region: str = "us-east-1"
    account_id: str = "000000000000"
    # Account concurrency limit; 0 = derived from memory: Lambda's 1,000, but no more than the
    # memory budget holds at 128 MB per environment.
    max_concurrency: int = 0
    # MB of MemorySize that live environments may hold together; 0 = 80 % of the host's memory.
    memory_budget: int = 0
    # Seconds an idle environment is kept warm before it is stopped.
    idle_timeout: float = 300.0
    # Lambda's on-demand init limit (spec 5.1).
    init_timeout: float = 10.0
    isolation: IsolationMode = "auto"
    # Network of sandboxed functions: "none" = only their Runtime API (see README, Isolation).
    network: NetworkDefault = "none"
    sandbox_launcher: SandboxLauncher = "auto"
    # Sandboxes the zygote keeps prepared ahead of cold starts (0: make each on demand).
    sandbox_pool: int = 2
    # Test-mode clock of asynchronous invocation: every backoff delay and event age is divided by
    # it (60: Lambda's 1-minute retry takes 1 s, a 60 s MaximumEventAgeInSeconds 1 s). 1 = real.
    async_time_scale: float = 1.0
    # Where `lamina build` keeps installed dependencies, by hash of what decided them.
    cache_dir: Path = field(default_factory=lambda: Path("~/.cache/lamina"))
    # Where the AWS SDK sets of the managed Python runtimes are installed (lamina/runtimes/sdk.py);
    # Path() = the .runtime-sdk directory scripts/setup.sh fills beside the package's checkout.
    sdk_dir: Path = field(default_factory=Path)
    # Test-mode clock of schedules: rate() periods are divided by it (60: rate(1 minute) fires
    # every second). cron() times stay wall-clock minutes. 1 = real.
    schedule_time_scale: float = 1.0
    # The day runtime deprecation dates are judged against (YYYY-MM-DD); "" = today, UTC. Moving it
    # shows what a date will block (spec 10), and lets tests reach it.
    today: str = ""
    # A directory of extra runtime builds, <dir>/<runtime id>/<build>/bin/<interpreter> (e.g. a
    # patched Python beside the host's); "" = only the host's interpreters. See README, Runtimes.
    runtime_builds: str = ""
    # Lamina's credentials: what AWS_IAM function URLs check SigV4 signatures against (unset:
    # such URLs refuse every request, saying so).
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    # The FunctionUrl the API returns: "host" (http://<url-id>.lambda-url.<region>.localhost:<port>/),
    # "path" (http://<host>:<port>/lambda-url/<url-id>/), or "auto": host where *.localhost
    # resolves on this machine, else path. Both forms are always served.
    function_url_style: FunctionUrlStyle = "auto"
    # Strict mode (`lamina up --strict`): CreateFunction and UpdateFunctionConfiguration refuse a
    # property Lamina ignores (lamina/model/parity.py) instead of accepting it without effect.
    strict: bool = False

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from LAMINA_<FIELD> variables, then explicit overrides (flags) on top.

        Overrides whose value is None are ignored, so unset CLI flags keep the lower layer.
        """
        env = os.environ if environ is None else environ
        base = cls()
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"LAMINA_{f.name.upper()}")
            if raw is None:
                continue
            current = getattr(base, f.name)
            if isinstance(current, bool):
                values[f.name] = raw.lower() in ("1", "true", "yes")
            elif isinstance(current, int):
                values[f.name] = int(raw)
            elif isinstance(current, float):
                values[f.name] = float(raw)
            elif isinstance(current, Path):
                values[f.name] = Path(raw)
            else:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "data_dir" in values:
            values["data_dir"] = Path(str(values["data_dir"]))
        return replace(base, **values)  # type: ignore[arg-type]
