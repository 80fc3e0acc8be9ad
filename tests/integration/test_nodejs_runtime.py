"""The managed Node.js runtimes (runtimes/bootstraps/nodejs) through real boto3 and a real server.

Each test deploys real JavaScript handlers and checks what Lambda's Node.js runtime does: handler
resolution (CommonJS and ES modules), async and callback handlers, the context object, error
shapes, console log lines, the AWS SDK the runtime carries, and a vendored powertools logger.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from lamina.runtimes.catalog import RuntimeCatalog
from lamina.testing import deploy, isolation_for_tests, wait_for_log

NODE_RUNTIMES = [
    r for r in RuntimeCatalog.discover(shared_paths_only=isolation_for_tests() == "sandbox").available if r.startswith("nodejs")
]
NODE = NODE_RUNTIMES[-1] if NODE_RUNTIMES else "nodejs20.x"
pytestmark = pytest.mark.skipif(not NODE_RUNTIMES, reason="no node binary on this host")
FIXTURES = Path(__file__).parent.parent / "fixtures" / "nodejs" / "node_modules"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def deploy_node(client: Any, name: str, files: dict[str, str | bytes], handler: str = "index.handler", **kwargs: Any) -> None:
    deploy(client, name, files, runtime=NODE, handler=handler, **kwargs)


def invoke(client: Any, name: str, event: Any = None, **kwargs: Any) -> tuple[dict[str, Any], Any, str]:
    """(response, decoded JSON payload, log tail) of a synchronous invoke."""
    resp = client.invoke(FunctionName=name, Payload=json.dumps(event or {}), LogType="Tail", **kwargs)
    return resp, json.loads(resp["Payload"].read()), base64.b64decode(resp["LogResult"]).decode()


def request_id(resp: dict[str, Any]) -> str:
    return str(resp["ResponseMetadata"]["RequestId"])


def assert_unhandled(resp: dict[str, Any], body: Any, error_type: str) -> None:
    """The invoke answered 200 with a function error of `error_type` in the Node.js shape."""
    assert (resp["StatusCode"], resp.get("FunctionError")) == (200, "Unhandled")
    assert list(body) == ["errorType", "errorMessage", "trace"]
    assert body["errorType"] == error_type


# --- handlers: module kinds, nested exports, results -------------------------------------------


def test_commonjs_async_handler_round_trip(lambda_client: Any, fname: str) -> None:
    src = "exports.handler = async (event) => (event.none ? undefined : { got: event });\n"
    deploy_node(lambda_client, fname, {"index.js": src})
    event = {"s": "text", "n": 1, "f": 2.5, "b": True, "null": None, "list": [1, [2, {"x": "y"}]]}
    resp, body, _ = invoke(lambda_client, fname, event)
    assert resp["StatusCode"] == 200 and "FunctionError" not in resp
    assert body == {"got": event}
    assert invoke(lambda_client, fname, {"none": True})[1] is None  # undefined → null, as on Lambda


MODULE_KINDS = [
    pytest.param({"index.mjs": "export const handler = async () => import.meta.url;\n"}, "file:///var/task/index.mjs", id="mjs"),
    pytest.param({"index.cjs": "module.exports.handler = async () => typeof require;\n"}, "function", id="cjs"),
    pytest.param(
        {"package.json": '{"type": "module"}', "index.js": "export async function handler() { return typeof require; }\n"},
        "undefined", id="js-type-module",
    ),
    pytest.param(
        {"lib/deep/app.js": "module.exports = { handlers: { main: async () => 'nested' } };\n"}, "nested", id="dir-and-nested-export",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("files", "expected"), MODULE_KINDS)
def test_module_kinds(lambda_client: Any, fname: str, files: dict[str, str], expected: str) -> None:
    handler = "lib/deep/app.handlers.main" if "lib/deep/app.js" in files else "index.handler"
    deploy_node(lambda_client, fname, files, handler=handler)
    resp, body, _ = invoke(lambda_client, fname)
    assert "FunctionError" not in resp, body
    if isolation_for_tests() == "sandbox" or not expected.startswith("file:"):
        assert body == expected


CALLBACK = """
exports.handler = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = event.wait;
  setTimeout(() => console.log('timer fired'), 300);
  callback(null, { waited: context.callbackWaitsForEmptyEventLoop });
};
"""


def test_callback_waits_for_empty_event_loop(lambda_client: Any, fname: str) -> None:
    deploy_node(lambda_client, fname, {"index.js": CALLBACK})
    resp, body, tail = invoke(lambda_client, fname, {"wait": True})
    assert body == {"waited": True}
    assert "timer fired" in tail  # the answer waited for the timer
    resp, body, tail = invoke(lambda_client, fname, {"wait": False})
    assert body == {"waited": False}
    assert "timer fired" not in tail  # answered before the timer


LEGACY = """
exports.handler = (event, context, callback) => {
  if (event.how === 'succeed') context.succeed('via succeed');
  else if (event.how === 'done') context.done(null, 'via done');
  else if (event.how === 'fail') context.fail(new Error('via fail'));
  else if (event.how === 'twice') { callback(null, 'first'); callback(null, 'second'); }
  else if (event.how === 'promise') return Promise.resolve('via promise');
  // else: neither callback nor promise; the loop runs empty → null
};
"""


@pytest.mark.parametrize(
    ("how", "expected"),
    [("succeed", "via succeed"), ("done", "via done"), ("twice", "first"), ("promise", "via promise"), ("none", None)],
    ids=["succeed", "done", "twice", "promise", "none"],
)
def test_context_done_succeed_and_callback_variants(lambda_client: Any, fname: str, how: str, expected: Any) -> None:
    deploy_node(lambda_client, fname, {"index.js": LEGACY})
    resp, body, _ = invoke(lambda_client, fname, {"how": how})
    assert "FunctionError" not in resp
    assert body == expected


def test_context_fail(lambda_client: Any, fname: str) -> None:
    deploy_node(lambda_client, fname, {"index.js": LEGACY})
    resp, body, _ = invoke(lambda_client, fname, {"how": "fail"})
    assert_unhandled(resp, body, "Error")
    assert body["errorMessage"] == "via fail"


CONTEXT = """
exports.handler = async (event, context) => ({
  awsRequestId: context.awsRequestId,
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  memoryLimitInMB: context.memoryLimitInMB,
  invokedFunctionArn: context.invokedFunctionArn,
  logGroupName: context.logGroupName,
  logStreamName: context.logStreamName,
  remaining: context.getRemainingTimeInMillis(),
  clientContext: context.clientContext ?? null,
  identity: context.identity ?? null,
  waits: context.callbackWaitsForEmptyEventLoop,
  env: {
    execution: process.env.AWS_EXECUTION_ENV,
    trace: process.env._X_AMZN_TRACE_ID ?? null,
    nodePath: process.env.NODE_PATH,
    handler: process.env._HANDLER,
    cwd: process.cwd(),
  },
  heapLimitMB: Math.round(require('v8').getHeapStatistics().heap_size_limit / 1048576),
});
"""


def test_context_object_and_environment(lambda_client: Any, fname: str) -> None:
    deploy_node(lambda_client, fname, {"index.js": CONTEXT}, MemorySize=256, Timeout=7)
    sent = {"custom": {"user": "ünïcode"}, "env": {"platform": "Android"}, "client": {"installation_id": "inst-1"}}
    resp, ctx, _ = invoke(lambda_client, fname, ClientContext=base64.b64encode(json.dumps(sent).encode()).decode())
    expected = {
        "awsRequestId": request_id(resp),
        "functionName": fname,
        "functionVersion": "$LATEST",
        "memoryLimitInMB": "256",  # a string, as on Lambda
        "invokedFunctionArn": f"arn:aws:lambda:us-east-1:000000000000:function:{fname}",
        "logGroupName": f"/aws/lambda/{fname}",
        "clientContext": sent,
        "identity": None,
        "waits": True,
    }
    assert {key: ctx[key] for key in expected} == expected
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", ctx["logStreamName"])
    assert 0 < ctx["remaining"] <= 7000
    assert ctx["env"]["execution"] == f"AWS_Lambda_{NODE}"
    assert ctx["env"]["handler"] == "index.handler"
    major = NODE.removeprefix("nodejs").split(".")[0]
    if isolation_for_tests() == "sandbox":
        assert ctx["env"]["cwd"] == "/var/task"
        assert ctx["env"]["nodePath"] == (
            f"/opt/nodejs/node{major}/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task"
        )
    # Lambda's bootstrap sizes the heap by the memory (old generation 230 MB of 256, plus the
    # young one); node's own default here would be 2 GB or more.
    assert 230 <= ctx["heapLimitMB"] <= 300
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
    lambda_client.meta.events.register_first(
        "before-sign.lambda.Invoke", lambda request, **_: request.headers.__setitem__("X-Amzn-Trace-Id", trace)
    )
    try:
        assert invoke(lambda_client, fname)[1]["env"]["trace"] == trace
    finally:
        lambda_client.meta.events.unregister("before-sign.lambda.Invoke")


# --- errors -------------------------------------------------------------------------------------

INIT_ERRORS = [
    pytest.param({"other.js": "exports.handler = async () => 1;\n"}, "index.handler", "Runtime.ImportModuleError",
                 "Error: Cannot find module 'index'\nRequire stack:\n- /var/runtime/index.mjs", id="module-not-found"),
    pytest.param({"index.js": "require('no-such-package-xyz');\n"}, "index.handler", "Runtime.ImportModuleError",
                 "Error: Cannot find module 'no-such-package-xyz'\nRequire stack:\n- /var/task/index.js\n- /var/runtime/index.mjs",
                 id="dependency-not-found"),
    pytest.param({"index.js": "exports.other = async () => 1;\n"}, "index.handler", "Runtime.HandlerNotFound",
                 "index.handler is undefined or not exported", id="handler-not-exported"),
    pytest.param({"index.js": "exports.handler = 42;\n"}, "index.handler", "Runtime.HandlerNotFound",
                 "index.handler is not a function", id="not-a-function"),
    pytest.param({"index.js": "exports.handler = async () => 1;\n"}, "indexhandler", "Runtime.MalformedHandlerName",
                 "Bad handler", id="malformed-handler"),
    pytest.param({"index.js": "exports.handler = async () => 1;\n"}, "../index.handler", "Runtime.MalformedHandlerName",
                 "'../index.handler' is not a valid handler name. Use absolute paths when specifying root directories in handler names.",
                 id="relative-path"),
    pytest.param({"index.js": "class Oops extends Error { constructor(m) { super(m); this.name = 'OopsError'; } }\n"
                              "throw new Oops('init boom');\n"}, "index.handler", "OopsError", "init boom", id="throw-at-init"),
]  # fmt: skip


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), INIT_ERRORS)
def test_init_errors(lambda_client: Any, fname: str, files: dict[str, str], handler: str, error_type: str, message: str) -> None:
    deploy_node(lambda_client, fname, files, handler=handler)
    resp, body, tail = invoke(lambda_client, fname)
    assert_unhandled(resp, body, error_type)
    if isolation_for_tests() == "sandbox":
        assert body["errorMessage"] == message
    assert body["trace"][0].startswith(f"{error_type}: ")
    # Logged as Lambda does: request id "undefined" during init, the error as one JSON line.
    line = next(x for x in tail.splitlines() if "\tERROR\tUncaught Exception" in x)
    assert re.match(rf"^{TIME}\tundefined\tERROR\tUncaught Exception \t\{{", line)
    assert json.loads(line.split(" \t", 1)[1])["errorType"] == error_type
    assert "INIT_REPORT Init Duration: " in tail and f"Error Type: {error_type}" in tail


def test_init_syntax_error(lambda_client: Any, fname: str) -> None:
    deploy_node(lambda_client, fname, {"index.js": "exports.handler = async () => {\n"})
    resp, body, _ = invoke(lambda_client, fname)
    assert body["errorType"] == "Runtime.UserCodeSyntaxError"
    assert body["errorMessage"] == "SyntaxError: Unexpected end of input"


HANDLER_ERRORS = """
class ValidationError extends Error { constructor(m) { super(m); this.name = 'ValidationError'; } }
function helper(x) { throw new ValidationError('bad thing: ' + x); }
exports.handler = async (event) => {
  if (event.kind === 'throw') helper(event.x);
  if (event.kind === 'reject-string') return Promise.reject('just a string');
};
exports.cb = (event, context, callback) => callback(new TypeError('from callback'));
"""


def test_handler_error_shapes(lambda_client: Any, fname: str) -> None:
    deploy_node(lambda_client, fname, {"index.js": HANDLER_ERRORS})
    resp, body, tail = invoke(lambda_client, fname, {"kind": "throw", "x": 1})
    assert_unhandled(resp, body, "ValidationError")
    assert body["errorMessage"] == "bad thing: 1"
    assert body["trace"][0] == "ValidationError: bad thing: 1"
    assert "at helper (" in body["trace"][1] and "index.js:3:" in body["trace"][1]
    rid = request_id(resp)
    line = next(x for x in tail.splitlines() if "\tERROR\tInvoke Error" in x)
    assert re.match(rf"^{TIME}\t{rid}\tERROR\tInvoke Error \t", line)
    logged = json.loads(line.split(" \t", 1)[1])
    assert (logged["errorType"], logged["errorMessage"]) == ("ValidationError", "bad thing: 1")
    # A rejection with a non-Error: its type is typeof, as on Lambda.
    _, body, _ = invoke(lambda_client, fname, {"kind": "reject-string"})
    assert body == {"errorType": "string", "errorMessage": "just a string", "trace": []}


def test_callback_error(lambda_client: Any, fname: str) -> None:
    deploy_node(lambda_client, fname, {"index.js": HANDLER_ERRORS}, handler="index.cb")
    resp, body, _ = invoke(lambda_client, fname)
    assert_unhandled(resp, body, "TypeError")
    assert body["errorMessage"] == "from callback"


CRASHES = """
let invocations = 0;
exports.handler = async (event) => {
  invocations += 1;
  if (event.kind === 'rejection') Promise.reject(new Error('nobody waits for me'));
  if (event.kind === 'uncaught') setTimeout(() => { throw new RangeError('thrown later'); }, 0);
  if (event.kind === 'never') return new Promise(() => {});
  if (event.kind) return new Promise((resolve) => setTimeout(resolve, 1000));
  return invocations;
};
"""


@pytest.mark.parametrize(
    ("kind", "error_type", "message"),
    [
        ("rejection", "Runtime.UnhandledPromiseRejection", "Error: nobody waits for me"),
        ("uncaught", "RangeError", "thrown later"),
        ("never", "Runtime.NodeJsExit", "The Lambda runtime client detected an unexpected Node.js exit code."),
    ],
    ids=["rejection", "uncaught", "never-settles"],
)
def test_process_level_failures(lambda_client: Any, fname: str, kind: str, error_type: str, message: str) -> None:
    deploy_node(lambda_client, fname, {"index.js": CRASHES})
    assert invoke(lambda_client, fname)[1] == 1
    resp, body, _ = invoke(lambda_client, fname, {"kind": kind})
    assert_unhandled(resp, body, error_type)
    assert body["errorMessage"].startswith(message)
    # The runtime exits after an uncaught error: the next invocation gets a fresh one; a promise
    # that never settled leaves the process as it was.
    assert invoke(lambda_client, fname)[1] == (3 if kind == "never" else 1)


# --- logs -------------------------------------------------------------------------------------

LOGGING = """
console.log('at init');
exports.handler = async () => {
  console.log('plain %s', 'log', { a: 1 });
  console.info('info');
  console.warn('warn');
  console.error('two\\nlines');
  console.debug('debug');
  console.trace('trace');
  return 'ok';
};
"""


def test_text_log_lines(lambda_client: Any, fname: str) -> None:
    deploy_node(lambda_client, fname, {"index.js": LOGGING})
    resp, _, _ = invoke(lambda_client, fname)
    rid = request_id(resp)
    lines = wait_for_log(lambda_client.meta.endpoint_url, fname, "\tTRACE\t")
    assert any(re.fullmatch(rf"{TIME}\tundefined\tINFO\tat init", x) for x in lines)
    expected = [("INFO", "plain log { a: 1 }"), ("INFO", "info"), ("WARN", "warn"), ("ERROR", "two\rlines"),
                ("DEBUG", "debug"), ("TRACE", "trace")]  # fmt: skip
    got = [(m.group(1), m.group(2)) for x in lines if (m := re.fullmatch(rf"{TIME}\t{rid}\t([A-Z]+)\t(.*)", x, re.S))]
    assert got == expected


def test_json_log_format_and_level(lambda_client: Any, fname: str) -> None:
    deploy_node(lambda_client, fname, {"index.js": LOGGING},
                LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"})  # fmt: skip
    resp, _, _ = invoke(lambda_client, fname)
    rid = request_id(resp)
    lines = wait_for_log(lambda_client.meta.endpoint_url, fname, '"message":"two\\nlines"')
    records = [json.loads(x) for x in lines if x.startswith('{"timestamp"')]
    assert [(r["level"], r["message"]) for r in records] == [("WARN", "warn"), ("ERROR", "two\nlines")]
    assert all(r["requestId"] == rid and re.fullmatch(TIME, r["timestamp"]) for r in records)


# --- the AWS SDK the runtime carries, a function's own copy, a vendored library -------------------

SDK = """
const { LambdaClient, GetFunctionCommand } = require('@aws-sdk/client-lambda');
const { S3Client } = require('@aws-sdk/client-s3');
const { DynamoDBDocumentClient } = require('@aws-sdk/lib-dynamodb');
const { DynamoDBClient } = require('@aws-sdk/client-dynamodb');
exports.handler = async () => {
  const client = new LambdaClient({ region: process.env.AWS_REGION });
  DynamoDBDocumentClient.from(new DynamoDBClient({ region: 'us-east-1' }));
  new S3Client({ region: 'us-east-1' });
  // A whole request through the SDK's stack (signing, retries, HTTP): nothing listens on port 9.
  const closed = new LambdaClient({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9', maxAttempts: 1,
                                    credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  const sent = await closed.send(new GetFunctionCommand({ FunctionName: 'x' })).then(() => 'answered', (e) => e.code ?? e.name);
  return {
    sent,
    resolved: require.resolve('@aws-sdk/client-lambda'),
    version: require('@aws-sdk/client-lambda/package.json').version,
    region: await client.config.region(),
    command: typeof GetFunctionCommand,
  };
};
"""


@pytest.mark.skipif(not (Path(__file__).parents[2] / "lamina/runtimes/sdk/nodejs/node_modules").is_dir(), reason="SDK not installed")
def test_runtime_carries_the_aws_sdk(lambda_client: Any, fname: str) -> None:
    deploy_node(lambda_client, fname, {"index.js": SDK})
    resp, body, _ = invoke(lambda_client, fname)
    assert "FunctionError" not in resp, body
    pinned = json.loads((Path(__file__).parents[2] / "lamina/runtimes/sdk/nodejs/package.json").read_text())
    assert body["version"] == pinned["dependencies"]["@aws-sdk/client-lambda"]
    assert body["region"] == "us-east-1" and body["command"] == "function"
    assert body["sent"] == "ECONNREFUSED"
    if isolation_for_tests() == "sandbox":
        assert body["resolved"].startswith("/var/runtime/node_modules/@aws-sdk/client-lambda/")


def test_functions_own_sdk_copy_wins(lambda_client: Any, fname: str) -> None:
    own = "node_modules/@aws-sdk/client-lambda/"
    files: dict[str, str | bytes] = {
        own + "package.json": '{"name": "@aws-sdk/client-lambda", "version": "0.0.1-own", "main": "index.js"}',
        own + "index.js": "exports.mine = true;\n",
        "index.js": "exports.handler = async () => ({ mine: require('@aws-sdk/client-lambda').mine,"
        " version: require('@aws-sdk/client-lambda/package.json').version });\n",
    }
    deploy_node(lambda_client, fname, files)
    assert invoke(lambda_client, fname)[1] == {"mine": True, "version": "0.0.1-own"}


POWERTOOLS = """
const { Logger } = require('@aws-lambda-powertools/logger');
const logger = new Logger({ serviceName: 'lamina-test' });
exports.handler = async (event, context) => {
  logger.addContext(context);
  logger.info('from powertools', { order: 42 });
  return 'logged';
};
"""


@pytest.mark.skipif(not FIXTURES.is_dir(), reason="test packages not installed (scripts/setup.sh test)")
def test_powertools_logger_vendored_in_the_zip(lambda_client: Any, fname: str) -> None:
    files: dict[str, str | bytes] = {"index.js": POWERTOOLS}
    for path in FIXTURES.rglob("*"):
        if path.is_file():
            files[f"node_modules/{path.relative_to(FIXTURES)}"] = path.read_bytes()
    deploy_node(lambda_client, fname, files)
    resp, body, _ = invoke(lambda_client, fname)
    assert body == "logged"
    lines = wait_for_log(lambda_client.meta.endpoint_url, fname, "from powertools")
    record = json.loads(next(x for x in lines if "from powertools" in x))
    assert record["message"] == "from powertools"
    assert record["level"] == "INFO"
    assert record["service"] == "lamina-test"
    assert record["order"] == 42
    assert record["function_request_id"] == request_id(resp)
    assert record["function_name"] == fname


# --- response streaming handlers ------------------------------------------------------------------

STREAMING = """
exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  if (event.url) {
    responseStream = awslambda.HttpResponseStream.from(responseStream, { statusCode: 201, headers: { 'x-a': 'b' } });
  } else {
    responseStream.setContentType('text/plain');
  }
  responseStream.write('hello ');
  await new Promise((resolve) => setTimeout(resolve, 10));
  responseStream.end('world ' + context.awsRequestId);
});
"""


def test_streaming_handler_answers_invoke_with_the_whole_stream(lambda_client: Any, fname: str) -> None:
    deploy_node(lambda_client, fname, {"index.js": STREAMING})
    resp = lambda_client.invoke(FunctionName=fname, Payload=b"{}")
    assert "FunctionError" not in resp
    assert resp["Payload"].read() == f"hello world {request_id(resp)}".encode()
    resp = lambda_client.invoke(FunctionName=fname, Payload=b'{"url": true}')
    prelude, _, body = resp["Payload"].read().partition(b"\0" * 8)
    assert json.loads(prelude) == {"statusCode": 201, "headers": {"x-a": "b"}}
    assert body == f"hello world {request_id(resp)}".encode()
