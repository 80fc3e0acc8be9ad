// Lamina's runtime client for the managed Node.js runtimes (nodejsNN.x), run as
// `node [memory options] /var/runtime/index.mjs` with the handler in _HANDLER. It speaks the
// Runtime API (spec 4) and behaves as Lambda's own Node.js runtime does (spec 4.4, 4.6, 6):
// handler resolution, callback and async handlers, the context object, console log lines and
// the Runtime.* error types. Plain Node, no npm dependencies.
import { loadHandler } from './handler.mjs';
import { UnhandledPromiseRejection, toRuntimeResponse } from './errors.mjs';
import { Invocation, fatal, loopEmpty } from './invocation.mjs';
import { patchConsole, setRequestId } from './logging.mjs';
import { RuntimeApi } from './runtime-api.mjs';
import { installGlobal, isStreaming } from './streaming.mjs';

const env = process.env;
const logError = patchConsole(env);
// Debug mode (`lamina invoke --debug`): node runs with --inspect (NODE_OPTIONS) and the first
// invocation waits for a debugger to attach (Runtime.runIfWaitingForDebugger) before the handler
// runs, as the Python client does; not --inspect-brk, which would stop this client during init.
const debugging = Boolean(env._LAMINA_DEBUG_PORT);
delete env._LAMINA_DEBUG_PORT;
if (debugging) delete env.NODE_OPTIONS; // processes the function starts must not open the same port
let waitForDebugger = debugging;
const api = new RuntimeApi(env.AWS_LAMBDA_RUNTIME_API);

// Until the first invocation an uncaught error fails init; after, the invocation in flight.
// Either way it is reported, then the process exits (the platform starts a fresh one).
let current = null;
function failAndExit(error, code) {
  const post = current === null ? api.postInitError(toRuntimeResponse(error)) : current.postFatal(error);
  post.then(() => process.exit(code), () => process.exit(code));
}

process.on('uncaughtException', (error) => {
  logError('Uncaught Exception', error);
  failAndExit(error, 129);
});
process.on('unhandledRejection', (reason, promise) => {
  const error = new UnhandledPromiseRejection(reason, promise);
  logError('Unhandled Promise Rejection', error);
  failAndExit(error, 128);
});
process.on('beforeExit', () => loopEmpty.fire());

installGlobal(env); // before the function's code loads: it may call awslambda.streamifyResponse
let handler;
try {
  handler = await loadHandler(env.LAMBDA_TASK_ROOT ?? process.cwd(), env._HANDLER ?? process.argv[2] ?? '');
} catch (error) {
  logError('Uncaught Exception', error);
  failAndExit(error, 129);
}

if (handler !== undefined) {
  const isAsync = handler.constructor?.name === 'AsyncFunction';
  const streaming = isStreaming(handler);

  const invokeOnce = async () => {
    const { body, headers } = await api.next();
    setRequestId(headers['lambda-runtime-aws-request-id']);
    const trace = headers['lambda-runtime-trace-id'];
    if (trace) env._X_AMZN_TRACE_ID = trace;
    else delete env._X_AMZN_TRACE_ID;
    current = new Invocation({ api, headers, env, isAsync, finished: scheduleNext, logError });
    let event;
    try {
      event = body === '' ? {} : JSON.parse(body);
    } catch (err) {
      current.callback(err);
      return;
    }
    if (waitForDebugger) {
      waitForDebugger = false;
      const inspector = await import('node:inspector');
      if (inspector.url()) inspector.waitForDebugger();
    }
    if (streaming) current.runStreaming(handler, event);
    else current.run(handler, event);
  };

  // Each invocation starts on a fresh turn of the event loop, after the previous one's post.
  function scheduleNext() {
    setImmediate(() => invokeOnce().catch(fatal));
  }

  scheduleNext();
}
