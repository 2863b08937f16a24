// What the @a2a-js/sdk client drivers of both generations share: the command
// line, a `fetch` presenting our client certificate, a mutual-TLS webhook
// that records the pushes it gets, and the report.
//
//   node client_vX.mjs --url URL --certs DIR --name NAME --hook HOOK
//
// The driver presents DIR/NAME.pem (trusting DIR/ca.pem), and its webhook
// serves DIR/HOOK.pem and requires a client certificate. It runs every
// operation its generation's client offers, each on its own tasks; the
// report is one JSON object on the last line of stdout, one key per
// operation: what it returned (as wire JSON), or `{"error": {name, message}}`.

import fs from 'node:fs';
import https from 'node:https';
import { parseArgs } from 'node:util';

import { Agent } from 'undici';

export function options() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      certs: { type: 'string' },
      name: { type: 'string' },
      hook: { type: 'string' },
      binding: { type: 'string', default: 'JSONRPC' },
      // NAME=VALUE on every request instead of a client certificate.
      header: { type: 'string' },
    },
  });
  for (const required of ['url', 'certs', 'name', 'hook']) {
    if (!values[required]) throw new Error(`--${required} is required`);
  }
  return values;
}

const read = (opts, file) => fs.readFileSync(`${opts.certs}/${file}`);

/**
 * The `fetch` handed to the SDK (its resolvers and transports take a
 * `fetchImpl`): Node's fetch with an undici dispatcher that presents our
 * certificate and trusts only our CA.
 */
export function certifiedFetch(opts) {
  if (opts.header) {
    // No certificate: a bearer token or an API key on every request (server TLS only).
    const at = opts.header.indexOf('=');
    const [name, value] = [opts.header.slice(0, at), opts.header.slice(at + 1)];
    const dispatcher = new Agent({ connect: { ca: read(opts, 'ca.pem') } });
    return (input, init) => {
      const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : {}));
      headers.set(name, value);
      return fetch(input, { ...init, headers, dispatcher });
    };
  }
  const dispatcher = new Agent({
    connect: {
      cert: read(opts, `${opts.name}.pem`),
      key: read(opts, `${opts.name}-key.pem`),
      ca: read(opts, 'ca.pem'),
    },
  });
  return (input, init) => fetch(input, { ...init, dispatcher });
}

/** An HTTPS webhook on 127.0.0.1 requiring client certificates; records pushes. */
export async function webhook(opts) {
  const pushes = [];
  const server = https.createServer(
    {
      cert: read(opts, `${opts.hook}.pem`),
      key: read(opts, `${opts.hook}-key.pem`),
      ca: read(opts, 'ca.pem'),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        pushes.push({
          path: req.url,
          headers: req.headers,
          body: JSON.parse(body),
          caller: req.socket.getPeerCertificate().subjectaltname ?? null,
        });
        res.writeHead(200).end();
      });
    }
  );
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${server.address().port}`,
    pushes,
    /** Wait (up to `ms`) until some push satisfies `test`. */
    async until(test, ms = 15000) {
      const deadline = Date.now() + ms;
      while (!pushes.some(test)) {
        if (Date.now() > deadline) throw new Error(`no such push among ${pushes.length}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Poll `get()` until `done(result)` holds (up to `ms`); the last result. */
export async function until(get, done, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const result = await get();
    if (done(result) || Date.now() > deadline) return result;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Run each named step, record its result or its error, and print the report. */
export async function report(steps) {
  const out = {};
  for (const [name, step] of Object.entries(steps)) {
    try {
      out[name] = await step();
    } catch (error) {
      out[name] = { error: described(error) };
    }
  }
  console.log(JSON.stringify(out));
}

/** An error as the report carries it: its class, message and JSON-RPC code, if any. */
export function described(error) {
  return {
    name: error?.constructor?.name ?? typeof error,
    message: String(error?.message),
    // 1.x keeps the JSON-RPC code as `envelopeCode`, 0.3 the whole error reply.
    code: error?.envelopeCode ?? error?.errorResponse?.error?.code ?? null,
    // What a network failure ("fetch failed") was underneath, when there is one.
    ...(error?.cause ? { cause: String(error.cause?.message ?? error.cause) } : {}),
  };
}

/** `fn()`'s result as `{value}` (null for none), or its error as `{error}`. */
export async function attempt(fn) {
  try {
    return { value: (await fn()) ?? null };
  } catch (error) {
    return { error: described(error) };
  }
}

/** The methods a client object offers (its class's prototype, getters excluded). */
export function methodsOf(object) {
  const prototype = Object.getPrototypeOf(object);
  return Object.getOwnPropertyNames(prototype)
    .filter((name) => name !== 'constructor')
    .filter((name) => typeof Object.getOwnPropertyDescriptor(prototype, name).value === 'function')
    .sort();
}
