// One invocation: the context object the handler gets, and the ways it can finish (a returned
// promise, the callback, context.done/succeed/fail, or the event loop running empty), of which
// only the first counts. As on Lambda, a callback's result is posted once the event loop is
// empty unless context.callbackWaitsForEmptyEventLoop is false; errors and promises post at once.
import { once as eventOnce } from 'node:events';
import { NODEJS_EXIT_MESSAGE, NodeJsExit, toRuntimeResponse } from './errors.mjs';
import { ResponseStream } from './streaming.mjs';

/** The single 'beforeExit' hook ("the event loop is empty"): the latest setter wins. */
export const loopEmpty = {
  listener: null,
  set(fn) {
    this.listener = fn;
  },
  reset() {
    this.listener = null;
  },
  fire() {
    const fn = this.listener;
    this.listener = null;
    if (fn !== null) fn();
  },
};

function parseJsonHeader(value) {
  return value ? JSON.parse(value) : undefined;
}

export class Invocation {
  /**
   * `headers`: the /next response's (lower-cased); `finished()` runs after the result is posted;
   * `logError(title, error)` logs an error the way the runtime reports it.
   */
  constructor({ api, headers, env, isAsync, finished, logError }) {
    this.api = api;
    this.requestId = headers['lambda-runtime-aws-request-id'];
    this.finished = finished;
    this.logError = logError;
    this.reported = false; // a result or error was sent (or the platform was told otherwise)
    this.waitForEmptyLoop = true;
    const deadline = Number.parseInt(headers['lambda-runtime-deadline-ms'], 10);
    let settled = false; // only the first of callback/succeed/fail/done counts
    const once = (fn) => (...args) => {
      if (!settled) {
        settled = true;
        fn(...args);
      }
    };
    this.callback = once((err, result) => this._callback(err, result));
    const self = this;
    this.context = {
      get callbackWaitsForEmptyEventLoop() {
        return self.waitForEmptyLoop;
      },
      set callbackWaitsForEmptyEventLoop(value) {
        self.waitForEmptyLoop = value;
      },
      succeed: once((result) => this._done(null, result)),
      fail: once((err) => this._done(err ?? 'handled', null)),
      done: once((err, result) => this._done(err, result)),
      functionName: env.AWS_LAMBDA_FUNCTION_NAME,
      functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
      memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      awsRequestId: this.requestId,
      clientContext: parseJsonHeader(headers['lambda-runtime-client-context']),
      identity: parseJsonHeader(headers['lambda-runtime-cognito-identity']),
      tenantId: headers['lambda-runtime-aws-tenant-id'],
      getRemainingTimeInMillis: () => deadline - Date.now(),
    };
    // Neither callback nor promise finished it when the loop runs empty: an async handler's
    // promise never settled (an error); a plain handler that forgot its callback returns null.
    loopEmpty.set(() => {
      if (isAsync) {
        const error = new NodeJsExit(NODEJS_EXIT_MESSAGE);
        this.logError('Invoke Error', error);
        this._postError(error);
      } else {
        this._postResult(null);
      }
    });
  }

  /** Run `handler` and route however it finishes. */
  run(handler, event) {
    try {
      const result = handler(event, this.context, this.callback);
      if (result && typeof result.then === 'function') {
        result.then(this.context.succeed, this.context.fail).catch(this.context.fail);
      }
    } catch (err) {
      this.callback(err);
    }
  }

  /** Run a streaming handler (awslambda.streamifyResponse): it gets a stream, not a callback. */
  async runStreaming(handler, event) {
    loopEmpty.set(() => {}); // the handler's promise decides, however long the loop stays empty
    const stream = new ResponseStream();
    try {
      const result = handler(event, stream, this.context);
      if (!(result && typeof result.then === 'function')) throw 'Streaming does not support non-async handlers.';
      if ((await result) !== undefined) console.warn('Streaming handlers ignore return values.');
      if (!stream.writableEnded) throw 'Response stream is not finished.';
      if (!stream.writableFinished) await eventOnce(stream, 'finish');
    } catch (err) {
      this.logError('Invoke Error', err);
      this._postError(err);
      return;
    }
    this.reported = true;
    this.api.postStreamed(this.requestId, stream.body(), stream.contentType).then(this._afterPost('response'), fatal);
  }

  _callback(err, result) {
    loopEmpty.reset();
    if (err !== undefined && err !== null) {
      this.logError('Invoke Error', err);
      this._postError(err);
    } else if (!this.waitForEmptyLoop) {
      this._postResult(result);
    } else {
      loopEmpty.set(() => setImmediate(() => this._postResult(result)));
    }
  }

  _done(err, result) {
    loopEmpty.reset();
    if (err !== undefined && err !== null) {
      this.logError('Invoke Error', err);
      this._postError(err);
    } else {
      this._postResult(result);
    }
  }

  _postResult(result) {
    if (this.reported) {
      console.error('Invocation has already been reported as done. Cannot call complete more than once per invocation.');
      return;
    }
    let text;
    try {
      text = JSON.stringify(result === undefined ? null : result) ?? 'null';
    } catch {
      const error = new Error('Unable to stringify response body');
      error.name = 'Runtime.JSONStringifyError';
      this.logError('Invoke Error', error);
      this._postError(error);
      return;
    }
    this.reported = true;
    this.api.postResponse(this.requestId, text).then(this._afterPost('response'), fatal);
  }

  _postError(err) {
    this.reported = true;
    this.api.postError(this.requestId, toRuntimeResponse(err)).then(this._afterPost('error'), fatal);
  }

  /** Report the error that ends the process (uncaught exception, unhandled rejection). */
  postFatal(err) {
    this.reported = true;
    return this.api.postError(this.requestId, toRuntimeResponse(err));
  }

  _afterPost(what) {
    return ({ status, body }) => {
      if (status !== 202) {
        // e.g. 413 for a response over 6 MB: the platform has failed the invocation already.
        process.stderr.write(`LAMBDA_RUNTIME Failed to post handler ${what}. Http response code: ${status}. ${body}\n`);
      }
      this.finished();
    };
  }
}

export function fatal(error) {
  // The Runtime API is gone or broken: nothing sensible is left to do here.
  process.stderr.write(`LAMBDA_RUNTIME ${error?.stack ?? error}\n`);
  process.exit(1);
}
