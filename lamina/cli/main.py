"""The `lamina` command tree: up, deploy, invoke, ls, logs, rm, events.

Only `up` touches the server's code (`lamina.server`, imported inside the command). Every other
command goes over HTTP, through `lamina.cli.client`, exactly as a user's own tools would
(ARCHITECTURE.md 3.5). Heavy imports (boto3, rich tables, the server) happen inside the command
that needs them, so `lamina --help` and `lamina up` do not pay for them.

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

    from lamina.cli.client import AdminClient, FailedEvent, LambdaClient, LogPage
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
    function_url_style: Annotated[
        str | None,
        typer.Option(
            "--function-url-style",
            help="How the API writes FunctionUrl: host (http://<url-id>.lambda-url.<region>.localhost:<port>/), "
            "path (http://<host>:<port>/lambda-url/<url-id>/) or auto (host where *.localhost resolves here). "
            "Both forms are always served. \\[default: auto]",
        ),
    ] = None,
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
        function_url_style=function_url_style,
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


# --- deploy ---------------------------------------------------------------------------------


@app.command()
def deploy(
    ctx: typer.Context,
    directory: Annotated[
        Path,
        typer.Argument(exists=True, file_okay=False, dir_okay=True, resolve_path=True, help="Code to deploy."),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Function name.")],
    runtime: Annotated[str, typer.Option(help="Runtime id, e.g. python3.12.")],
    handler: Annotated[str, typer.Option(help="Handler, e.g. app.handler.")],
    memory: Annotated[int | None, typer.Option(help="Memory in MB. \\[default: 128 on create]")] = None,
    timeout: Annotated[int | None, typer.Option(help="Timeout in seconds. \\[default: 3 on create]")] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", help="Environment variable K=V; repeat for more.", metavar="K=V"),
    ] = None,
    description: Annotated[str | None, typer.Option(help="Function description.")] = None,
) -> None:
    """Zip DIRECTORY and create the function, or update its code and configuration.

    On update, options left out keep their current values.
    """
    from lamina.cli.client import DeploySpec, zip_directory
    from lamina.cli.render import deploy_summary

    settings = _settings()
    spec = DeploySpec(
        name=name,
        runtime=runtime,
        handler=handler,
        role=f"arn:aws:iam::{settings.account_id}:role/lamina",
        memory_mb=memory,
        timeout_s=timeout,
        environment=_parse_env(env) if env is not None else None,
        description=description,
    )
    code = zip_directory(directory)
    client = _lambda(ctx, settings)
    existing = client.get(name)
    with _stderr().status(f"deploying {name}…") as status:
        if existing is None:
            client.create(spec, code)
            status.update(f"waiting for {name} to become Active…")
            client.wait_active(name)
        else:
            if existing.state == "Pending":
                status.update(f"waiting for {name} to become Active…")
                client.wait_active(name)
            client.update_code(name, code)
            status.update(f"waiting for {name}'s code update…")
            client.wait_updated(name)
            client.update_configuration(spec)
            status.update(f"waiting for {name}'s configuration update…")
            client.wait_updated(name)
    final = client.get(name)
    if final is None:
        _fail(f"ResourceNotFoundException: {name} disappeared during the deploy")
    _stdout().print(deploy_summary(final, created=existing is None))


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
    payload: Annotated[
        str | None,
        typer.Option("--payload", "-p", help="Event JSON, or @path to read it from a file."),
    ] = None,
    event: Annotated[bool, typer.Option("--event", help="Invoke asynchronously; print the request id.")] = False,
    qualifier: Annotated[str | None, typer.Option("--qualifier", "-q", help="Version or alias.")] = None,
) -> None:
    """Invoke a function: the result goes to stdout, its log tail to stderr.

    Exits 1 if the function returned an error (the error JSON is still printed).
    """
    from rich.text import Text

    from lamina.cli.render import payload as render_payload

    body = _read_payload(payload)
    client = _lambda(ctx, _settings())
    result = client.invoke(name, body, qualifier=qualifier, event=event)
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


# --- ls, rm ---------------------------------------------------------------------------------


@app.command("ls")
def list_functions(ctx: typer.Context) -> None:
    """List functions."""
    from lamina.cli.render import functions_table

    functions = _lambda(ctx, _settings()).list()
    if not functions:
        _stderr().print("no functions", style="dim")
        return
    _stdout().print(functions_table(functions))


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


# --- events ---------------------------------------------------------------------------------

events_app = typer.Typer(
    name="events",
    help="Asynchronous events that failed with no destination or dead-letter target.",
    no_args_is_help=True,
)
app.add_typer(events_app)


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
