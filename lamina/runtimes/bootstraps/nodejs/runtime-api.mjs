// The Runtime API client (spec 4): one keep-alive connection to AWS_LAMBDA_RUNTIME_API, as
// Lambda's Node.js client uses. Node's own `http`, no dependencies.
import http from 'node:http';

const PREFIX = '/2018-06-01/runtime';
const USER_AGENT = `aws-lambda-nodejs/${process.version}-lamina`;

export class RuntimeApi {
  constructor(address) {
    const [host, port] = address.split(':');
    this.host = host;
    this.port = Number(port);
    // One socket, kept between calls; an idle one does not keep the event loop alive.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 1, noDelay: true });
  }

  /** The next invocation: {body, headers}. Never times out (the environment may be frozen). */
  next() {
    return this._request('GET', `${PREFIX}/invocation/next`, undefined, {}).then(({ status, body, headers }) => {
      if (status !== 200) throw new Error(`Failed to get the next invocation: HTTP ${status}: ${body}`);
      return { body, headers };
    });
  }

  postResponse(requestId, json) {
    return this._post(`${PREFIX}/invocation/${requestId}/response`, json, {});
  }

  /** What a streaming handler wrote, whole (see streaming.mjs). */
  postStreamed(requestId, body, contentType) {
    return this._request('POST', `${PREFIX}/invocation/${requestId}/response`, body, {
      'Content-Type': contentType,
      'Lambda-Runtime-Function-Response-Mode': 'streaming',
    });
  }

  /** `response` is {errorType, errorMessage, trace}. */
  postError(requestId, response) {
    return this._post(`${PREFIX}/invocation/${requestId}/error`, JSON.stringify(response), {
      'Lambda-Runtime-Function-Error-Type': response.errorType,
    });
  }

  postInitError(response) {
    return this._post(`${PREFIX}/init/error`, JSON.stringify(response), {
      'Lambda-Runtime-Function-Error-Type': response.errorType,
    });
  }

  _post(path, text, headers) {
    return this._request('POST', path, Buffer.from(text, 'utf8'), {
      'Content-Type': 'application/json',
      ...headers,
    });
  }

  _request(method, path, body, headers, retried = false) {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent: this.agent,
          host: this.host,
          port: this.port,
          method,
          path,
          headers: {
            'User-Agent': USER_AGENT,
            ...headers,
            ...(body === undefined ? {} : { 'Content-Length': body.length }),
          },
        },
        (res) => {
          const chunks = [];
          res.on('data', (chunk) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('error', (err) => {
        // A kept-alive socket the platform closed meanwhile: one fresh connection, as Node advises.
        if (req.reusedSocket && err.code === 'ECONNRESET' && !retried) {
          this._request(method, path, body, headers, true).then(resolve, reject);
        } else {
          reject(err);
        }
      });
      req.end(body);
    });
  }
}
