// console.* as Lambda's Node.js runtime writes it (spec 6): one line per call on stdout, either
// text `<ISO time>\t<request id>\t<LEVEL>\t<message>` with embedded newlines turned into \r (so
// the platform keeps a multi-line message as one event), or with AWS_LAMBDA_LOG_FORMAT=JSON one
// JSON object {timestamp, level, requestId, message}. AWS_LAMBDA_LOG_LEVEL drops lower levels.
import util from 'node:util';
import { intoError, toFormatted } from './errors.mjs';

// The current request id lives on a global symbol, as in Lambda's runtime (libraries read it).
const REQUEST_ID = Symbol.for('aws.lambda.runtime.requestId');

export function setRequestId(id) {
  globalThis[REQUEST_ID] = id;
}

const LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];

function errorFields(value) {
  return {
    errorType: value?.constructor?.name ?? 'UnknownError',
    errorMessage: value.message,
    stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
  };
}

function jsonReplacer(_key, value) {
  return value instanceof Error ? Object.assign(errorFields(value), value) : value;
}

function jsonLine(level, params) {
  const record = { timestamp: new Date().toISOString(), level, requestId: globalThis[REQUEST_ID] };
  if (params.length === 1) {
    record.message = params[0];
    try {
      return JSON.stringify(record, jsonReplacer);
    } catch {
      record.message = util.format(params[0]); // a cycle, a BigInt, ...
      return JSON.stringify(record);
    }
  }
  record.message = util.format(...params);
  const error = params.find((p) => p instanceof Error);
  if (error !== undefined) {
    const { errorType, errorMessage, stackTrace } = errorFields(error);
    Object.assign(record, { errorType, errorMessage, stackTrace: Array.isArray(stackTrace) ? stackTrace : [] });
  }
  return JSON.stringify(record);
}

function textLine(level, params) {
  return `${new Date().toISOString()}\t${globalThis[REQUEST_ID]}\t${level}\t${util.format(...params)}`;
}

/**
 * Replace console's methods; returns `logError(title, error)`, how the runtime itself logs an
 * error it reports (Invoke Error, Uncaught Exception) in the chosen format.
 */
export function patchConsole(env) {
  const json = env.AWS_LAMBDA_LOG_FORMAT?.toUpperCase() === 'JSON';
  const format = json ? jsonLine : textLine;
  const threshold = Math.max(0, LEVELS.indexOf(env.AWS_LAMBDA_LOG_LEVEL?.toUpperCase() ?? 'TRACE'));
  const write = (level) => (...params) => {
    // One write per line: the platform splits the stream on \n.
    process.stdout.write(format(level, params).replace(/\n/g, '\r') + '\n');
  };
  const skip = () => {};
  const method = (level) => (LEVELS.indexOf(level) >= threshold ? write(level) : skip);
  console.trace = method('TRACE');
  console.debug = method('DEBUG');
  console.info = method('INFO');
  console.log = console.info;
  console.warn = method('WARN');
  console.error = method('ERROR');
  console.fatal = write('FATAL');
  return json
    ? (_title, error) => console.error(intoError(error))
    : (title, error) => console.error(title, toFormatted(intoError(error)));
}
