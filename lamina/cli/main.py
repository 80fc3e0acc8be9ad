"""The `lamina` command tree: up, build, deploy, invoke, tune, parity, ls, runtimes, logs, rm, events, schedule.

`build` runs pip or npm on this machine through `lamina.build`; `tune` drives a function through
the Lambda API with `lamina.tune`. Only `up` touches the server's code (`lamina.server`, imported
inside the command). Every other command goes over HTTP, through `lamina.cli.client`, exactly as
a user's own tools would (ARCHITECTURE.md 3.5). Heavy imports (boto3, rich tables, the server)
happen inside the command that needs them, so `lamina --help` and `lamina up` do not pay for them.

Errors: anything the user should act on is a `CliError`; `main()` prints it as one red line on
stderr and exits 1. Usage errors are typer's (exit 2). No traceback reaches the user for either.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    import subprocess

    from lamina.build import BuildResult
    from lamina.cli.client import AdminClient, DebugInfo, FailedEvent, LambdaClient, LogPage
    from lamina.config import Settings

DEFAULT_ENDPOINT = "http://127.0.0.1:9000"
# How long one `logs --follow` request may be held open by the server (its long-poll).
FOLLOW_WAIT_S = 20
# While a followed function has no log stream yet, ask again this often (the server's
# long-poll needs a stream to wait on).
NO_LOGS_RETRY_S = 1.0

app = typer.Typer(
    name="lamina",
    help="Lamina: a self-hosted platform compatible with AWS Lambda.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# `invoke` and `tune` take the event the same way.
PayloadOption = Annotated[
    str | None, typer.Option("--payload", "-p", help="Event JSON, or @path to read it from a file.")
]


@dataclass(frozen=True, slots=True)
class _Context:
    endpoint: str


@app.callback()
def _root(
    ctx: typer.Context,
    endpoint: Annotated[
        str,
        typer.Option(
            envvar="LAMINA_ENDPOINT",
            help="URL of a running Lamina server.",
            show_default=True,
        ),
    ] = DEFAULT_ENDPOINT,
) -> None:
    ctx.obj = _Context(endpoint=endpoint.rstrip("/"))


# --- up -------------------------------------------------------------------------------------


@app.command()
def up(
    host: Annotated[str | None, typer.Option(help="Address to listen on. \\[default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on. \\[default: 9000]")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Where functions, code and logs are kept. \\[default: ./data]"),
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option("--idle-timeout", help="Seconds an idle environment stays warm. \\[default: 300]"),
    ] = None,
    max_concurrency: Annotated[
        int | None,
        typer.Option(
            "--max-concurrency",
            help="Account concurrency limit. \\[default: 1000, or fewer if the memory budget holds fewer 128 MB environments]",
        ),
    ] = None,
    memory_budget: Annotated[
        int | None,
        typer.Option(
            "--memory-budget",
            help="MB of MemorySize that environments may hold together; past it idle ones are evicted "
            "(least recently used), then invokes throttled. \\[default: 80% of the host's memory]",
        ),
    ] = None,
    isolation: Annotated[
        str | None,
        typer.Option(
            "--isolation",
            help="sandbox, process (trusted code only) or auto (sandbox where the host supports it). \\[default: auto]",
        ),
    ] = None,
    network: Annotated[
        str | None,
        typer.Option(
            "--network",
            help="Sandboxed functions' default network: none (only their Runtime API) or outbound "
            "(egress through the host; never to the host itself or other functions). A function's "
            "tag lamina:network overrides it. \\[default: none]",
        ),
    ] = None,
    today: Annotated[
        str | None,
        typer.Option(
            "--today",
            help="The date (YYYY-MM-DD) runtime deprecation dates are judged against, to see what a "
            "future date blocks (`lamina runtimes`). \\[default: today, UTC]",
        ),
    ] = None,
    function_url_style: Annotated[
        str | None,
        typer.Option(
            "--function-url-style",
            help="How the API writes FunctionUrl: host (http://<url-id>.lambda-url.<region>.localhost:<port>/), "
            "path (http://<host>:<port>/lambda-url/<url-id>/) or auto (host where *.localhost resolves here). "
            "Both forms are always served. \\[default: auto]",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Refuse creates and updates that set a property Lamina does not emulate "
                     "(VpcConfig, KMSKeyArn, ...; see `lamina parity`). Also LAMINA_STRICT=1."),
    ] = False,
) -> None:
    """Run the Lamina server in the foreground (Ctrl-C stops it).

    Flags override LAMINA_* environment variables, which override the defaults.
    """
    from lamina.cli.client import CliError

    if isolation is not None and isolation not in ("auto", "sandbox", "process"):
        raise CliError(f"--isolation must be auto, sandbox or process, not {isolation!r}")
    if network is not None and network not in ("none", "outbound"):
        raise CliError(f"--network must be none or outbound, not {network!r}")
    if function_url_style is not None and function_url_style not in ("auto", "host", "path"):
        raise CliError(f"--function-url-style must be auto, host or path, not {function_url_style!r}")
    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        idle_timeout=idle_timeout,
        max_concurrency=max_concurrency,
        memory_budget=memory_budget,
        isolation=isolation,
        network=network,
        today=today,
        function_url_style=function_url_style,
        strict=True if strict else None,
    )
    from lamina import server

    server.serve(settings)


# --- doctor ---------------------------------------------------------------------------------


@app.command()
def doctor(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="The data directory `lamina up` would use. \\[default: ./data]"),
    ] = None,
    isolation: Annotated[str | None, typer.Option("--isolation", help="The mode `lamina up` would be asked for.")] = None,
) -> None:
    """Show what this host supports for sandboxing, and which isolation mode `lamina up` will run."""
    from rich.table import Table

    from lamina import server

    settings = _settings(data_dir=data_dir, isolation=isolation)
    report, outcome = server.diagnose(settings)
    table = Table(title="Sandboxing on this host", title_justify="left")
    table.add_column("check")
    table.add_column("")
    table.add_column("detail", overflow="fold")
    for check in report.checks:
        mark = "[green]ok[/green]" if check.ok else ("[red]missing[/red]" if check.required else "[yellow]degraded[/yellow]")
        table.add_row(check.name, mark, check.detail)
    console = _stdout()
    console.print(table)
    console.print(outcome)


# --- build ---------------------------------------------------------------------------------


@app.command()
def build(
    directory: Annotated[
        Path,
        typer.Argument(exists=True, file_okay=False, dir_okay=True, resolve_path=True, help="Function code."),
    ],
    runtime: Annotated[str, typer.Option(help="Runtime id, e.g. python3.12 or nodejs20.x.")],
) -> None:
    """Install DIRECTORY's requirements.txt (pip) or package.json (npm) into DIRECTORY/.lamina-build/function.

    Dependencies are cached by the hash of the requirements, lock file, runtime and platform.

    The cache is LAMINA_CACHE_DIR (default ~/.cache/lamina); unchanged requirements run neither pip nor npm.

    `lamina deploy` builds by itself; this shows what it would deploy.
    """
    _build_with_progress(directory, runtime, _settings())


def _build_with_progress(directory: Path, runtime: str, settings: Settings, *, layer: bool = False) -> BuildResult:
    """Build (a function's package, or a layer's content) with a spinner showing the installer's
    latest line and the time so far; on failure, the installer's last lines on stderr and a
    one-line error."""
    from rich.text import Text

    from lamina.build import BuildError, build_function, build_layer_result, ecosystem_of
    from lamina.cli.client import CliError
    from lamina.cli.render import build_summary

    err = _stderr()
    ecosystem = ecosystem_of(directory, runtime)
    head = f"installing {ecosystem.manifest} with {ecosystem.installer}" if ecosystem else "building"
    started = time.monotonic()
    try:
        with err.status(head) as status:

            def show(line: str) -> None:
                status.update(Text(f"{head} ({time.monotonic() - started:.0f} s)  {line[:100]}"))

            build = build_layer_result if layer else build_function
            result = build(directory, runtime, cache_dir=settings.cache_dir, on_output=show)
    except BuildError as exc:
        for line in exc.tail:
            err.print(Text(line, style="dim"))
        raise CliError(f"build of {directory} failed: {exc}") from exc
    err.print(build_summary(result))
    return result


# --- deploy ---------------------------------------------------------------------------------


@app.command()
def deploy(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Argument(exists=True, file_okay=False, dir_okay=True, resolve_path=True, help="Code to deploy."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Function name.")] = None,
    runtime: Annotated[str | None, typer.Option(help="Runtime id, e.g. python3.12.")] = None,
    handler: Annotated[str | None, typer.Option(help="Handler, e.g. app.handler.")] = None,
    memory: Annotated[int | None, typer.Option(help="Memory in MB. \\[default: 128 on create]")] = None,
    timeout: Annotated[int | None, typer.Option(help="Timeout in seconds. \\[default: 3 on create]")] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="Environment variable K=V; repeat for more.", metavar="K=V"),
    ] = None,
    description: Annotated[str | None, typer.Option(help="Function description.")] = None,
    no_build: Annotated[
        bool, typer.Option("--no-build", help="Zip DIRECTORY as it is, even with a requirements.txt or package.json.")
    ] = False,
    layer: Annotated[
        list[str] | None,
        typer.Option("--layer", "-l", help="Layer version ARN, merged into /opt in order; repeat for more.", metavar="ARN"),
    ] = None,
    template: Annotated[
        Path | None,
        typer.Option("--template", "-t", exists=True, dir_okay=False, resolve_path=True,
                     help="A SAM/CloudFormation template: deploy its functions and layers instead of DIRECTORY."),
    ] = None,  # fmt: skip
    stack_name: Annotated[
        str | None,
        typer.Option("--stack-name", help="With --template: name functions <stack>-<LogicalId> (and AWS::StackName). "
                     "\\[default: functions are named for their logical id]"),
    ] = None,  # fmt: skip
    parameter_overrides: Annotated[
        list[str] | None,
        typer.Option("--parameter-overrides", help="With --template: parameter values K=V (repeat, or space-separated).",
                     metavar="K=V"),
    ] = None,  # fmt: skip
) -> None:
    """Zip DIRECTORY and create the function, or update its code and configuration; or, with
    --template, deploy a SAM template's functions, layers, schedules and function URLs.

    With a requirements.txt (python*) or package.json (nodejs*), code is built first, as by `lamina build`.

    On update, options left out keep their current values. Properties Lamina emulates only
    approximately, or ignores, are listed after the deploy.
    """
    from lamina.cli.client import CliError, DeploySpec, zip_directory
    from lamina.cli.render import deploy_summary
    from lamina.cli.stack import put_function

    settings = _settings()
    if template is not None:
        if directory is not None or name or runtime or handler:
            raise CliError("--template deploys what the template says: leave out DIRECTORY, --name, --runtime and --handler")
        _deploy_template(ctx, settings, template, stack_name, parameter_overrides or [], build=not no_build)
        return
    if directory is None or not name or not runtime or not handler:
        raise CliError("give DIRECTORY with --name, --runtime and --handler, or --template")
    spec = DeploySpec(
        name=name,
        runtime=runtime,
        handler=handler,
        role=f"arn:aws:iam::{settings.account_id}:role/lamina",
        memory_mb=memory,
        timeout_s=timeout,
        environment=_parse_env(env) if env is not None else None,
        description=description,
        layers=tuple(layer) if layer is not None else None,
    )
    from lamina.build import ecosystem_of

    source = directory
    if not no_build and ecosystem_of(directory, runtime) is not None:
        source = _build_with_progress(directory, runtime, settings).output
    code = zip_directory(source)
    client = _lambda(ctx, settings)
    with _stderr().status(f"deploying {name}…") as status:
        action = put_function(client, spec, code, status.update)
    final = client.get(name)
    if final is None:
        _fail(f"ResourceNotFoundException: {name} disappeared during the deploy")
    _stdout().print(deploy_summary(final, created=action == "created"))
    _print_parity_lines(client.function_document(name), name)


def _print_parity_lines(document: dict[str, object], resource: str) -> None:
    from lamina.cli import parity

    for row in parity.notable(document):
        _stderr().print(parity.line(resource, row.property, row.support, row.note))


def _deploy_template(ctx: typer.Context, settings: Settings, path: Path, stack_name: str | None, overrides: list[str],
                     *, build: bool) -> None:  # fmt: skip
    from rich.text import Text

    from lamina.build import ecosystem_of
    from lamina.cli import parity
    from lamina.cli import stack
    from lamina.cli import template as tmpl
    from lamina.cli.client import CliError
    from lamina.cli.intrinsics import TemplateError
    from lamina.model.parity import Support

    def build_dir(directory: Path, runtime: str) -> Path:
        if not build or ecosystem_of(directory, runtime) is None:
            return directory
        return _build_with_progress(directory, runtime, settings).output

    err, out = _stderr(), _stdout()
    try:
        t = tmpl.read(path, stack_name=stack_name, overrides=tmpl.parse_overrides(overrides))
        target = stack.Target(client=_lambda(ctx, settings), admin=_admin(ctx), region=settings.region,
                              account_id=settings.account_id)  # fmt: skip

        def done(o: stack.Outcome) -> None:
            out.print(Text.assemble(("✓ ", "green"), f"{o.kind} ", (o.name, "cyan"), f" {o.action}",
                                    (f"  {o.detail}" if o.detail else "", "dim")))  # fmt: skip

        with err.status(f"deploying {path.name}…") as status:
            stack.deploy(t, target, build=build_dir, progress=status.update, done=done)
    except TemplateError as exc:
        raise CliError(f"template {path.name}: {exc}") from exc
    lines = [line for r in t.resources for line in tmpl.report(r)]
    if lines or t.skipped:
        err.print(Text("Not emulated exactly (see `lamina parity NAME`):", style="bold"))
    for rl in lines:
        err.print(parity.line(rl.resource, rl.property, rl.support, rl.note))
    for logical_id, kind in t.skipped:
        err.print(parity.line(logical_id, kind or "(no Type)", Support.IGNORED, tmpl.skipped_note(kind)))


def _parse_env(pairs: list[str]) -> dict[str, str]:
    variables: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected K=V, got {pair!r}", param_hint="'--env'")
        variables[key] = value
    return variables


# --- invoke ---------------------------------------------------------------------------------


@app.command()
def invoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Function name or ARN.")],
    payload: PayloadOption = None,
    event: Annotated[bool, typer.Option("--event", help="Invoke asynchronously; print the request id.")] = False,
    qualifier: Annotated[str | None, typer.Option("--qualifier", "-q", help="Version or alias.")] = None,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Run the handler under debugpy (Python) or the Node inspector: print the port and a VS Code launch.json, "
                     "wait for the debugger to attach; the function timeout is suspended."),
    ] = False,
    debug_port: Annotated[int, typer.Option("--debug-port", help="Port the debugger listens on (0: any free one).")] = 0,
    local_root: Annotated[
        Path | None,
        typer.Option("--local-root", help="Your copy of the code, for the debugger's path mapping. \\[default: the "
                     "function's source directory, else the current directory]"),
    ] = None,
) -> None:
    """Invoke a function: the result goes to stdout, its log tail to stderr.

    Exits 1 if the function returned an error (the error JSON is still printed).
    """
    from rich.text import Text

    from lamina.cli.render import payload as render_payload

    body = _read_payload(payload)
    settings = _settings()
    if debug:
        from lamina.cli.client import LambdaClient

        if event:
            raise typer.BadParameter("--debug runs the invoke synchronously; leave out --event", param_hint="'--debug'")
        admin = _admin(ctx)
        info = admin.start_debug(name, debug_port)
        _print_debug(info, local_root)
        try:
            # Paused in a debugger for as long as the session allows: no client-side timeout first.
            result = LambdaClient(_endpoint(ctx), region=settings.region, read_timeout=info.timeout_s + 60.0).invoke(
                name, body, qualifier=qualifier, event=False
            )
        finally:
            admin.stop_debug(name)
    else:
        result = _lambda(ctx, settings).invoke(name, body, qualifier=qualifier, event=event)
    if event:
        print(result.request_id, flush=True)
        _stderr().print(Text(f"queued (HTTP {result.status})", style="dim"))
        return
    if result.log_tail:
        _stderr().print(Text(result.log_tail.rstrip("\n"), style="dim"))
    print(render_payload(result.payload), flush=True)
    if result.function_error is not None:
        _fail(f"FunctionError: {result.function_error} (request {result.request_id})")


def _read_payload(raw: str | None) -> bytes | None:
    from lamina.cli.client import CliError

    if raw is None:
        return None
    if not raw.startswith("@"):
        return raw.encode()
    path = Path(raw[1:]).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read payload file {path}: {exc.strerror or exc}") from exc


# --- tune -----------------------------------------------------------------------------------

DEFAULT_TUNE_SIZES = "128,256,512,1024,1769,3008"


@app.command()
def tune(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Function name.")],
    payload: PayloadOption = None,
    memory: Annotated[
        str, typer.Option("--memory", "-m", help="Memory sizes in MB, comma-separated.", show_default=True)
    ] = DEFAULT_TUNE_SIZES,
    invocations: Annotated[
        int, typer.Option("--invocations", "-n", help="Invocations per size; the first is a cold start.", show_default=True)
    ] = 10,
    plot: Annotated[Path | None, typer.Option("--plot", help="PNG to write. \\[default: tune-NAME.png]")] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="Write no PNG.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of a table.")] = False,
) -> None:
    """Run NAME at each memory size and report duration and cost per size (power tuning).

    Each size runs in a temporary version and alias; NAME is as before afterwards, even on Ctrl-C.

    In sandbox isolation CPU scales with memory as on Lambda (1,769 MB = one vCPU).

    Cost is an estimate at Lambda's x86 on-demand prices.
    """
    from rich.text import Text

    from lamina.cli.client import CliError
    from lamina.cli.render import tune_table, tune_verdict
    from lamina.tune import plot as tune_plot
    from lamina.tune import report as tune_report
    from lamina.tune import runner

    body = _read_payload(payload)
    try:
        sizes = tuple(int(part) for part in memory.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"expected MB numbers separated by commas, got {memory!r}", param_hint="'--memory'") from None
    err = _stderr()
    try:
        plan = runner.TunePlan(function=name, memory_sizes=sizes, invocations=invocations, payload=body)
        with err.status(f"tuning {name}…") as status:
            measurements = runner.run(
                _lambda(ctx, _settings()),
                plan,
                on_progress=lambda line: status.update(Text(f"tuning {name}: {line}")),
                on_warning=lambda line: err.print(Text(f"warning: {line}", style="yellow")),
            )
    except runner.TuneError as exc:
        raise CliError(str(exc)) from exc
    except KeyboardInterrupt:
        err.print(Text("interrupted; the function is restored", style="yellow"))
        raise typer.Exit(130) from None
    report = tune_report.summarize(measurements)
    out = _stdout()
    if as_json:
        import dataclasses
        import json

        print(json.dumps(dataclasses.asdict(report), indent=2), flush=True)
    else:
        out.print(tune_table(report))
        out.print(tune_verdict(report))
    if no_plot:
        return
    path = plot if plot is not None else Path(f"tune-{name}.png")
    try:
        tune_plot.write_png(report, path, title=f"{name}: duration and cost by memory")
    except tune_plot.PlotUnavailable as exc:
        err.print(Text(str(exc), style="yellow"))
        return
    err.print(Text.assemble("plot: ", (str(path), "cyan")))


def _print_debug(info: DebugInfo, local_root: Path | None) -> None:
    """The port, the isolation note, and a ready-to-paste VS Code attach configuration (stderr)."""
    from rich.text import Text

    from lamina.cli.render import launch_config

    local = str(local_root.resolve()) if local_root is not None else info.source_directory or str(Path.cwd())
    err = _stderr()
    tool = "the Node inspector" if info.runtime.startswith("nodejs") else "debugpy"
    err.print(Text.assemble(("debugger ", "bold"), f"listening on {info.host}:{info.port} ({tool}). The handler waits "
                            f"for it to attach; the function timeout is suspended ({info.timeout_s // 3600} h). The "
                            "environment runs as a plain process (no sandbox) so the port is reachable."))  # fmt: skip
    err.print(Text("VS Code launch.json configuration:", style="dim"))
    print(launch_config(info.host, info.port, local, info.remote_root, info.runtime), file=sys.stderr, flush=True)


# --- dev ------------------------------------------------------------------------------------


@app.command()
def dev(
    ctx: typer.Context,
    directory: Annotated[
        Path,
        typer.Argument(exists=True, file_okay=False, dir_okay=True, resolve_path=True, help="The function's source directory."),
    ],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Function name. \\[default: the directory's name]")] = None,
    runtime: Annotated[str | None, typer.Option(help="Runtime id. \\[default: python3.X of this Python, on create]")] = None,
    handler: Annotated[str | None, typer.Option(help="Handler. \\[default: app.handler, on create]")] = None,
    memory: Annotated[int | None, typer.Option(help="Memory in MB.")] = None,
    timeout: Annotated[int | None, typer.Option(help="Timeout in seconds.")] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="Environment variable K=V; repeat for more.", metavar="K=V"),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Debug every invoke: debugpy on --debug-port, a launch.json printed.")] = False,
    debug_port: Annotated[int, typer.Option("--debug-port", help="Port the debugger listens on.")] = 5678,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Data directory of the server `lamina dev` starts when none answers. \\[default: ./data]"),
    ] = None,
) -> None:
    """Run a function from DIRECTORY and reload it on every save (Ctrl-C stops).

    Uses the server at --endpoint, or starts one there (on loopback) if none answers. The server
    watches the directory: the next invoke after a save runs the new code, without a build step.
    Reloads and the function's logs are printed as they happen.
    """
    import re
    import subprocess
    import threading

    from rich.text import Text

    from lamina.cli.client import CliError

    import signal

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as Ctrl-C does: the server it started goes too

    signal.signal(signal.SIGTERM, interrupted)
    endpoint = _endpoint(ctx)
    admin = _admin(ctx)
    fn = name or re.sub(r"[^a-zA-Z0-9-_]", "-", directory.name)[:64]
    server = None if admin.healthy() else _start_server(endpoint, data_dir)
    out = _stdout()
    try:
        body: dict[str, object] = {"Directory": str(directory)}
        exists = _lambda(ctx, _settings()).get(fn) is not None
        runtime = runtime or (None if exists else f"python{sys.version_info.major}.{sys.version_info.minor}")
        handler = handler or (None if exists else "app.handler")
        for key, value in (("Runtime", runtime), ("Handler", handler), ("MemorySize", memory), ("Timeout", timeout)):
            if value is not None:
                body[key] = value
        if env is not None:
            body["Environment"] = {"Variables": _parse_env(env)}
        state = admin.put_source(fn, body)
        out.print(Text.assemble(("watching ", "bold"), str(directory), " as ", (fn, "cyan"), f" on {endpoint}: code ",
                                (state.code_sha256[:12], "green"), f", {len(state.changed)} files"))  # fmt: skip
        if debug:
            _print_debug(admin.start_debug(fn, debug_port), directory)
        threading.Thread(target=_tail_logs, args=(admin, fn), daemon=True).start()
        generation, last_error = state.generation, state.error
        while True:
            try:
                state = admin.source(fn, after=generation, wait=20)
            except CliError as exc:
                if exc.code == "ResourceNotFoundException":
                    raise CliError(f"{fn} is no longer deployed from {directory} (deleted, or given a zip)") from exc
                raise
            if state.generation == generation and state.error == last_error:
                continue  # the long-poll ended without news
            generation, last_error = state.generation, state.error
            stamp = time.strftime("%H:%M:%S")
            if state.error is not None:
                out.print(Text(f"{stamp} reload failed: {state.error}", style="red"))
                continue
            took = f"write → live {state.write_to_live_ms:.0f} ms, " if state.write_to_live_ms is not None else ""
            out.print(Text.assemble(f"{stamp} ", ("reload", "bold"), " code ", (state.code_sha256[:12], "green"), "  ",
                                    ", ".join(state.changed[:5]) + (" …" if len(state.changed) > 5 else ""),
                                    (f"  ({took}snapshot {state.snapshot_ms:.1f} ms)", "dim")))  # fmt: skip
    except KeyboardInterrupt:
        pass
    finally:
        if debug and server is None:
            try:
                admin.stop_debug(fn)
            except CliError:
                pass
        if server is not None:
            server.terminate()  # SIGTERM: the server stops its environments, then exits
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)
        _stderr().print(Text("lamina dev stopped", style="dim"))


def _start_server(endpoint: str, data_dir: Path | None) -> subprocess.Popen[str]:
    """`lamina up` on the endpoint's loopback port, until `lamina dev` ends; returns once it listens."""
    import subprocess
    import threading
    import urllib.parse

    from lamina.cli.client import CliError

    url = urllib.parse.urlsplit(endpoint)
    if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
        raise CliError(f"no Lamina answers at {endpoint}, and lamina dev starts one only on a loopback address with a port")
    argv = [sys.executable, "-m", "lamina", "up", "--port", str(url.port), "--data-dir", str(data_dir or Path("data"))]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    stdout = proc.stdout
    assert stdout is not None

    def show(line: str) -> None:
        _stderr().print(line.rstrip("\n"), style="dim", markup=False)

    for line in stdout:
        show(line)
        if line.startswith("Lamina listening on "):
            break
    else:
        proc.wait()
        raise CliError(f"lamina up did not start (exit status {proc.returncode})")
    # Keep reading what the server prints (its warnings): a full pipe would block its writes.
    def drain() -> None:
        for rest in stdout:
            show(rest)

    threading.Thread(target=drain, daemon=True).start()
    return proc


def _tail_logs(admin: AdminClient, name: str) -> None:
    """Print the function's new log lines as they are written (a daemon thread of `lamina dev`)."""
    from rich.text import Text

    from lamina.cli.client import CliError

    err = _stdout()
    cursor = 0
    try:
        while True:  # skip what was logged before
            page = admin.logs(name, cursor=cursor)
            if not page.events:
                break
            cursor = page.next_cursor
    except CliError:
        cursor = 0
    while True:
        try:
            page = admin.logs(name, cursor=cursor, wait=FOLLOW_WAIT_S)
        except CliError:
            time.sleep(NO_LOGS_RETRY_S)
            continue
        for e in page.events:
            err.print(Text(f"  │ {e.message.rstrip()}", style="dim"))
        cursor = page.next_cursor


# --- parity ---------------------------------------------------------------------------------


@app.command("parity")
def parity_report(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Function name or ARN.")]) -> None:
    """For each property NAME has configured: whether Lamina emulates it exactly, approximately
    (and how), or ignores it."""
    from lamina.cli import parity

    document = _lambda(ctx, _settings()).function_document(name)
    _stdout().print(parity.table(name, parity.rows(document)))


# --- ls, rm ---------------------------------------------------------------------------------


@app.command("ls")
def list_functions(ctx: typer.Context) -> None:
    """List functions."""
    from lamina.cli.client import AdminClient
    from lamina.cli.render import functions_table

    functions = _lambda(ctx, _settings()).list()
    if not functions:
        _stderr().print("no functions", style="dim")
        return
    catalog = AdminClient(_endpoint(ctx)).runtimes()
    _stdout().print(functions_table(functions, {r.identifier: r for r in catalog.runtimes}))


@app.command("runtimes")
def list_runtimes(
    ctx: typer.Context,
    here: Annotated[bool, typer.Option("--here", help="Only the runtimes this host can run.")] = False,
) -> None:
    """The runtime catalog: each runtime's deprecation status and dates, and which run here (with
    their interpreter and runtime version ARN)."""
    from dataclasses import replace

    from lamina.cli.client import AdminClient
    from lamina.cli.render import runtimes_table

    view = AdminClient(_endpoint(ctx)).runtimes()
    if here:
        view = replace(view, runtimes=tuple(r for r in view.runtimes if r.versions))
    _stdout().print(runtimes_table(view))


@app.command("rm")
def remove(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Function name or ARN.")]) -> None:
    """Delete a function and all its versions."""
    from rich.text import Text

    _lambda(ctx, _settings()).delete(name)
    _stdout().print(Text.assemble("deleted ", (name, "cyan")))


# --- logs -----------------------------------------------------------------------------------


@app.command()
def logs(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Function name.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")] = False,
) -> None:
    """Print a function's log events as `<time> <message>` (times in UTC)."""
    from lamina.cli.client import AdminClient
    from lamina.cli.render import log_line

    admin = AdminClient(_endpoint(ctx))
    out = _stdout()
    if not follow:
        cursor = 0
        while True:
            page = admin.logs(name, cursor=cursor)
            for e in page.events:
                out.print(log_line(e))
            if not page.events:
                return
            cursor = page.next_cursor
    try:
        cursor = 0
        while True:
            page = _follow_page(ctx, admin, name, cursor)
            for e in page.events:
                out.print(log_line(e))
            cursor = page.next_cursor
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _follow_page(ctx: typer.Context, admin: AdminClient, name: str, cursor: int) -> LogPage:
    """The next page for `logs --follow`, waiting through the time before the first log line.

    With `wait` the server long-polls even before a function's first log line. Should it answer
    404 anyway (no log group yet), the function existing means it has not run yet: ask again
    every NO_LOGS_RETRY_S. If the function does not exist, the 404 is the error.
    """
    from rich.text import Text

    from lamina.cli.client import CliError

    told = False
    while True:
        try:
            return admin.logs(name, cursor=cursor, wait=FOLLOW_WAIT_S)
        except CliError as exc:
            if exc.code != "ResourceNotFoundException":
                raise
            if _lambda(ctx, _settings()).get(name) is None:
                raise
        if not told:
            _stderr().print(Text(f"{name} has no logs yet; waiting…", style="dim"))
            told = True
        time.sleep(NO_LOGS_RETRY_S)


# --- layers ---------------------------------------------------------------------------------

layer_app = typer.Typer(name="layer", help="Layers: content functions get at /opt.", no_args_is_help=True)
app.add_typer(layer_app)
# Directories at least this big show a progress bar while they are zipped.
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


@layer_app.command("publish")
def layer_publish(
    ctx: typer.Context,
    directory: Annotated[
        Path,
        typer.Argument(exists=True, file_okay=False, dir_okay=True, resolve_path=True,
                       help="What the layer holds, as it should appear under /opt (python/, bin/, lib/, ...)."),
    ],  # fmt: skip
    name: Annotated[str, typer.Option("--name", "-n", help="Layer name.")],
    runtime: Annotated[
        list[str] | None,
        typer.Option("--runtime", "-r", help="A compatible runtime id; repeat for more.", metavar="RUNTIME"),
    ] = None,
    description: Annotated[str | None, typer.Option(help="Description of this version.")] = None,
    requirements: Annotated[
        bool,
        typer.Option(
            "--requirements",
            help="Install DIRECTORY's requirements.txt (pip) or package.json (npm) into python/ or "
            "nodejs/node_modules/ first, for the first --runtime.",
        ),
    ] = False,
) -> None:
    """Zip DIRECTORY and publish it as a new version of layer NAME."""
    from lamina.cli.client import CliError, LayerSpec
    from lamina.cli.render import layer_summary

    source = directory
    if requirements:
        if not runtime:
            raise CliError("--requirements needs --runtime (which pip or npm platform to install for)")
        source = _build_with_progress(directory, runtime[0], _settings(), layer=True).output
    content = _zip_with_progress(source)
    spec = LayerSpec(name=name, runtimes=tuple(runtime or ()), description=description)
    with _stderr().status(f"publishing {name}…"):
        published = _lambda(ctx, _settings()).publish_layer(spec, content)
    _stdout().print(layer_summary(published))


@layer_app.command("ls")
def layer_list(ctx: typer.Context) -> None:
    """List layers with their newest version."""
    from lamina.cli.render import layers_table

    layers = _lambda(ctx, _settings()).list_layers()
    if not layers:
        _stderr().print("no layers", style="dim")
        return
    _stdout().print(layers_table(layers))


def _zip_with_progress(directory: Path) -> bytes:
    """zip_directory, with a progress bar on stderr for big directories."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from lamina.cli.client import package_files, zip_directory

    total = sum(p.stat().st_size for p in package_files(directory))
    if total < PROGRESS_MIN_BYTES:
        return zip_directory(directory)
    columns = (TextColumn("zipping"), BarColumn(), DownloadColumn())
    with Progress(*columns, console=_stderr(), transient=True) as bar:
        task = bar.add_task("zip", total=total)
        return zip_directory(directory, progress=lambda n: bar.advance(task, n))


# --- events ---------------------------------------------------------------------------------

def _command_group(name: str, help_text: str) -> typer.Typer:
    """`lamina NAME ...`: a group of subcommands."""
    group = typer.Typer(name=name, help=help_text, no_args_is_help=True)
    app.add_typer(group)
    return group


events_app = _command_group("events", "Asynchronous events that failed with no destination or dead-letter target.")


@events_app.command("failed")
def events_failed(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Function name.")]) -> None:
    """List NAME's failed events, oldest first (replay one with `lamina events replay ID`)."""
    from lamina.cli.client import AdminClient
    from lamina.cli.render import failed_events_table

    admin = AdminClient(_endpoint(ctx))
    events: list[FailedEvent] = []
    marker: str | None = None
    while True:
        page = admin.failed_events(name, marker=marker)
        events += page.events
        marker = page.next_marker
        if marker is None:
            break
    if not events:
        _stderr().print(f"{name} has no failed events", style="dim")
        return
    _stdout().print(failed_events_table(events))


@events_app.command("replay")
def events_replay(ctx: typer.Context, request_id: Annotated[str, typer.Argument(help="Request id of a failed event.")]) -> None:
    """Queue a failed event again, as new: its retries and its age start over."""
    from rich.text import Text

    from lamina.cli.client import AdminClient

    arn = AdminClient(_endpoint(ctx)).replay(request_id)
    _stdout().print(Text.assemble("replayed ", (request_id, "cyan"), f" on {arn}"))


# --- schedule -------------------------------------------------------------------------------

schedule_app = _command_group("schedule", "Run functions on EventBridge rate() and cron() expressions (UTC).")


@schedule_app.command("add")
def schedule_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The function to run; also the schedule's name unless --name or --function.")],
    expression: Annotated[str, typer.Argument(help="'rate(5 minutes)' or 'cron(0 12 * * ? *)', EventBridge's syntax.")],
    function: Annotated[str | None, typer.Option("--function", help="Run this function; NAME then names the schedule only.")] = None,
    schedule: Annotated[str | None, typer.Option("--name", help="The schedule's name (NAME then is the function).")] = None,
    qualifier: Annotated[str | None, typer.Option("--qualifier", help="A version or alias to run.")] = None,
    input_json: Annotated[str | None, typer.Option("--input", help="JSON sent instead of the Scheduled Event.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it disabled.")] = False,
) -> None:
    """Add a schedule: NAME's function runs on EXPRESSION, through the asynchronous queue."""
    from rich.text import Text

    from lamina.cli.client import AdminClient, CliError

    if function is not None and schedule is not None:
        raise CliError("give --function (NAME is the schedule) or --name (NAME is the function), not both")
    target = function or name
    added = AdminClient(_endpoint(ctx)).add_schedule(name=schedule or name, expression=expression, function=target,
                                                     qualifier=qualifier, input_json=input_json, enabled=not disabled)  # fmt: skip
    when = "disabled" if added.next_fire_at is None else f"next fire {_utc(added.next_fire_at)} UTC"
    _stdout().print(Text.assemble("added ", (added.name, "cyan"), f": {added.expression} runs {target} ({when})"))


@schedule_app.command("ls")
def schedule_ls(
    ctx: typer.Context, function: Annotated[str | None, typer.Argument(help="Only this function's schedules.")] = None
) -> None:
    """List schedules with their next fire time."""
    from lamina.cli.client import AdminClient
    from lamina.cli.render import schedules_table

    found = AdminClient(_endpoint(ctx)).schedules(function)
    if not found:
        _stderr().print("no schedules", style="dim")
        return
    _stdout().print(schedules_table(found, now=time.time()))


@schedule_app.command("rm")
def schedule_rm(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Schedule name.")]) -> None:
    """Delete a schedule (events it already queued still run)."""
    from rich.text import Text

    from lamina.cli.client import AdminClient

    AdminClient(_endpoint(ctx)).remove_schedule(name)
    _stdout().print(Text.assemble("deleted schedule ", (name, "cyan")))


@schedule_app.command("enable")
def schedule_enable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Schedule name.")]) -> None:
    """Enable a schedule: it fires from now on (fires passed while it was disabled never run)."""
    _set_schedule_state(ctx, name, enabled=True)


@schedule_app.command("disable")
def schedule_disable(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Schedule name.")]) -> None:
    """Disable a schedule: it fires no more until enabled."""
    _set_schedule_state(ctx, name, enabled=False)


def _set_schedule_state(ctx: typer.Context, name: str, *, enabled: bool) -> None:
    from rich.text import Text

    from lamina.cli.client import AdminClient

    changed = AdminClient(_endpoint(ctx)).set_schedule_state(name, enabled=enabled)
    when = f"next fire {_utc(changed.next_fire_at)} UTC" if changed.next_fire_at is not None else "no fire to come"
    _stdout().print(Text.assemble(("enabled " if enabled else "disabled ", "bold"), (name, "cyan"), f" ({when})"))


def _utc(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


# --- helpers --------------------------------------------------------------------------------


def _endpoint(ctx: typer.Context) -> str:
    state = ctx.find_object(_Context)
    return state.endpoint if state is not None else DEFAULT_ENDPOINT


def _settings(**overrides: object) -> Settings:
    from lamina.cli.client import CliError
    from lamina.config import Settings

    try:
        return Settings.from_environ(None, **overrides)
    except ValueError as exc:
        raise CliError(f"bad LAMINA_* setting in the environment: {exc}") from exc


def _admin(ctx: typer.Context) -> AdminClient:
    from lamina.cli.client import AdminClient

    return AdminClient(_endpoint(ctx))


def _lambda(ctx: typer.Context, settings: Settings) -> LambdaClient:
    from lamina.cli.client import LambdaClient

    return LambdaClient(_endpoint(ctx), region=settings.region)


def _stdout() -> Console:
    from rich.console import Console

    console = Console(soft_wrap=True, highlight=False)
    if not console.is_terminal:
        # Piped output: never truncate or wrap table cells at an imagined 80 columns.
        console.width = 10_000
    return console


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False)


def _fail(message: str) -> NoReturn:
    """Print one red line on stderr and exit 1."""
    from rich.text import Text

    one_line = " ".join(message.split())
    _stderr().print(Text(f"error: {one_line}", style="red"))
    raise typer.Exit(1)


def main() -> None:
    """Entry point of the `lamina` script and `python -m lamina`."""
    from lamina.cli.client import CliError

    try:
        app(prog_name="lamina")
    except CliError as exc:
        try:
            _fail(str(exc))
        except typer.Exit as done:
            sys.exit(done.exit_code)
