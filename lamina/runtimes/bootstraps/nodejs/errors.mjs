// Error shapes of Lambda's Node.js runtime (spec 4.3, 4.4): what the runtime posts to the Runtime
// API is {errorType, errorMessage, trace}; the runtime's own faults are named `Runtime.<Name>`.
import util from 'node:util';

class RuntimeError extends Error {}

function runtimeError(name) {
  // The class keeps its bare name (stack traces show it); `name` is the wire type.
  const cls = { [name]: class extends RuntimeError {} }[name];
  cls.prototype.name = `Runtime.${name}`;
  return cls;
}

export const ImportModuleError = runtimeError('ImportModuleError');
export const HandlerNotFound = runtimeError('HandlerNotFound');
export const MalformedHandlerName = runtimeError('MalformedHandlerName');
export const UserCodeSyntaxError = runtimeError('UserCodeSyntaxError');
export const NodeJsExit = runtimeError('NodeJsExit');

export class UnhandledPromiseRejection extends RuntimeError {
  constructor(reason, promise) {
    super(String(reason));
    this.reason = reason;
    this.promise = promise;
  }
}
UnhandledPromiseRejection.prototype.name = 'Runtime.UnhandledPromiseRejection';

export const NODEJS_EXIT_MESSAGE =
  'The Lambda runtime client detected an unexpected Node.js exit code. This is most commonly ' +
  'caused by a Promise that was never settled. For more information, see ' +
  'https://nodejs.org/docs/latest/api/process.html#exit-codes';

function looksLikeError(value) {
  return Boolean(value) && typeof value.name === 'string' && typeof value.message === 'string' &&
    typeof value.stack === 'string' && value.name !== '' && value.message !== '' && value.stack !== '';
}

/** The JSON body the runtime posts for `error`, whatever was thrown or passed to a callback. */
export function toRuntimeResponse(error) {
  try {
    if (util.types.isNativeError(error) || looksLikeError(error)) {
      return { errorType: error.name, errorMessage: error.message, trace: error.stack.split('\n') };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch {
    return {
      errorType: 'handled',
      errorMessage: 'callback called with Error argument, but there was a problem while retrieving ' +
        'one or more of its message, name, and stack',
    };
  }
}

function withEnumerableProperties(_key, value) {
  // name, message and stack are not enumerable: JSON.stringify would drop them.
  if (!(value instanceof Error)) return value;
  const out = Object.assign({ errorType: value.name, errorMessage: value.message, code: value.code }, value);
  if (typeof value.stack === 'string') out.stack = value.stack.split('\n');
  return out;
}

/** How an error appears in a text log line: a tab, then its JSON (as Lambda's runtime logs it). */
export function toFormatted(error) {
  try {
    return '\t' + JSON.stringify(error, withEnumerableProperties);
  } catch {
    return '\t' + JSON.stringify(toRuntimeResponse(error));
  }
}

export function intoError(value) {
  return value instanceof Error ? value : new Error(value);
}
