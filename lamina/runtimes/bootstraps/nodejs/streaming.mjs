// Response streaming handlers (`awslambda.streamifyResponse`, spec 4.5). Lamina's Invoke answers
// with the whole body (as Lambda's Invoke does for a streaming function), so the stream collects
// what the handler writes and the runtime posts it once the stream ends, in streaming mode.
import { Writable } from 'node:stream';

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HTTP_INTEGRATION = 'application/vnd.awslambda.http-integration-response';

export class ResponseStream extends Writable {
  constructor() {
    super();
    this.chunks = [];
    this.contentType = 'application/octet-stream';
  }

  _write(chunk, encoding, done) {
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding));
    done();
  }

  setContentType(contentType) {
    this.contentType = contentType;
  }

  body() {
    return Buffer.concat(this.chunks);
  }
}

/** For function URLs: a JSON prelude (statusCode, headers, cookies), 8 NUL bytes, then the body. */
export const HttpResponseStream = {
  from(stream, prelude) {
    stream.setContentType(HTTP_INTEGRATION);
    stream.write(JSON.stringify(prelude));
    stream.write(Buffer.alloc(8));
    return stream;
  },
};

/** The `awslambda` global Lambda's Node.js runtime defines, unless the function opts out. */
export function installGlobal(env) {
  if (['1', 'true'].includes(env.AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA)) return;
  globalThis.awslambda = {
    ...globalThis.awslambda,
    streamifyResponse(handler) {
      handler[STREAMING] = 'response';
      return handler;
    },
    HttpResponseStream,
  };
}

export function isStreaming(handler) {
  return handler[STREAMING] === 'response';
}
