// What the @a2a-js/sdk peer servers of both generations share: the command
// line, the JSON-lines log, mutual TLS, the pushes' client certificate, and
// the scenarios of the contract in tests/e2e/foreign/__init__.py, written
// once against a small "out" adapter each generation implements with its
// own event shapes (peer_v1.mjs, peer_v03.mjs).
//
// Imports resolve from the cached npm folder the script is run from (see
// tests/e2e/foreign/npm_cache.py).

import { AsyncLocalStorage } from 'node:async_hooks';
import fs from 'node:fs';
import https from 'node:https';
import { parseArgs } from 'node:util';

import express from 'express';
import { Agent, setGlobalDispatcher } from 'undici';

/**
 * `--port P --certs DIR --name NAME [--log FILE] [--push] [--streaming]
 * [--require HEADER=VALUE]`: with --require, every request but the card's
 * must carry that header (the server's auth hook): 401 otherwise.
 */
export function options() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      certs: { type: 'string' },
      name: { type: 'string' },
      log: { type: 'string' },
      push: { type: 'boolean', default: false },
      streaming: { type: 'boolean', default: false },
      require: { type: 'string' },
    },
  });
  for (const required of ['port', 'certs', 'name']) {
    if (!values[required]) throw new Error(`--${required} is required`);
  }
  return { ...values, port: Number(values.port) };
}

/** The installed version of a package (its package.json next to its entry point). */
export function versionOf(specifier) {
  const entry = new URL(import.meta.resolve(specifier));
  for (let dir = new URL('.', entry); dir.pathname !== '/'; dir = new URL('..', dir)) {
    const manifest = new URL('package.json', dir);
    if (fs.existsSync(manifest)) {
      const found = JSON.parse(fs.readFileSync(manifest, 'utf8'));
      if (found.name === specifier) return found.version;
    }
  }
  throw new Error(`no package.json found for ${specifier}`);
}

/** Appends one JSON object per line to the --log file (without one: nothing). */
export function logger(path) {
  if (!path) return () => {};
  return (entry) => fs.appendFileSync(path, JSON.stringify(entry) + '\n');
}

function tlsFiles(opts) {
  const read = (file) => fs.readFileSync(`${opts.certs}/${file}`);
  return { cert: read(`${opts.name}.pem`), key: read(`${opts.name}-key.pem`), ca: read('ca.pem') };
}

// The JSON-RPC request each execution serves: its method and Idempotency-Key
// header. The SDKs hand their executors no method (and 0.3 no headers), so a
// middleware keeps them in an AsyncLocalStorage around the SDK's handling.
const current = new AsyncLocalStorage();

/** What the request being served asked for: `{method, idempotencyKey}`. */
export function currentRequest() {
  return current.getStore() ?? { method: null, idempotencyKey: null };
}

/** An Express app whose routes run with currentRequest() set; body parsed once. */
export function application(opts = {}) {
  const app = express();
  if (opts.require) {
    const at = opts.require.indexOf('=');
    const [name, value] = [opts.require.slice(0, at), opts.require.slice(at + 1)];
    const log = logger(opts.log);
    app.use((req, res, next) => {
      if (req.path.startsWith('/.well-known/') || req.get(name) === value) return next();
      log({ event: 'refused', path: req.path });
      res.status(401).send('credentials required');
    });
  }
  app.use(express.json({ limit: '10mb' }));
  app.use((req, _res, next) => {
    const request = {
      method: req.body?.method ?? null,
      idempotencyKey: req.get('idempotency-key') ?? null,
    };
    current.run(request, next);
  });
  return app;
}

/** Serve `app` over mutual TLS on 127.0.0.1:--port (client certificates required). */
export function listen(app, opts) {
  const server = https.createServer(
    { ...tlsFiles(opts), requestCert: true, rejectUnauthorized: true },
    app
  );
  server.listen(opts.port, '127.0.0.1', () => {
    console.log(`listening on https://127.0.0.1:${opts.port}/`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}

/**
 * Make the SDK's push sender present our certificate. Both generations'
 * DefaultPushNotificationSender POST with the global `fetch` and take no
 * HTTP client, so the global undici dispatcher carries the client
 * certificate; `fetch` is wrapped only to log each push delivered, with the
 * state it carried (`state` of a task or status update, null otherwise).
 */
export function pushWithCertificate(opts, log, stateOf) {
  const { cert, key, ca } = tlsFiles(opts);
  setGlobalDispatcher(new Agent({ connect: { cert, key, ca } }));
  const send = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    const response = await send(url, init);
    let state = null;
    try {
      state = stateOf(JSON.parse(init.body)) ?? null;
    } catch {
      state = null;
    }
    log({ event: 'push', url: String(url), status: response.status, state });
    return response;
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const QUESTIONS = ['What is your name?', 'What is your quest?'];
const TURNS = { ask: 1, ask2: 2 };

/**
 * The scenario contract. `turn(request, out)` serves one execution: a new
 * task (its first word picks the scenario) or a follow-up on one. `out` is
 * the generation's adapter:
 *
 *   out.begin()                     the turn's first event (a task, or 0.3's WORKING on a follow-up)
 *   out.status(state, text?)        a status update (state: 'working' | 'input-required' |
 *                                   'completed' | 'failed' | 'canceled'), with an agent message
 *   out.artifact(id, name, text, append, lastChunk)
 *
 * `cancel(taskId, out)` ends a task CANCELED: it publishes the status on the
 * bus the SDK handed its executor and stops a running turn, which then
 * publishes nothing more.
 */
export class Scenarios {
  constructor(log) {
    this.log = log;
    this.tasks = new Map(); // task id -> { word, text, answers, canceled, wake }
  }

  async turn(request, out) {
    const { method, idempotencyKey } = currentRequest();
    this.log({
      event: 'request',
      method,
      task_id: request.taskId,
      message_id: request.messageId,
      idempotency_key: idempotencyKey,
      text: request.text,
    });
    let task = this.tasks.get(request.taskId);
    const created = task === undefined;
    if (created) {
      task = { word: request.text.trim().split(/\s+/)[0], text: request.text, answers: [] };
      task.stopped = new Promise((resolve) => (task.wake = resolve));
      this.tasks.set(request.taskId, task);
      this.log({ event: 'task_created', task_id: request.taskId, message_id: request.messageId });
    }
    out.begin();
    if (!created) return this.answered(task, request.text, out);
    return this.started(task, out);
  }

  async started(task, out) {
    const word = task.word;
    if (word === 'ask' || word === 'ask2') return out.status('input-required', QUESTIONS[0]);
    if (word === 'fail') return out.status('failed', 'failed on purpose');
    if (word === 'hang') return task.stopped;
    if (word === 'stream') return this.streamed(task, out);
    if (word === 'slow') {
      const ms = Number(task.text.trim().split(/\s+/)[1] ?? 1000);
      if (await this.interrupted(task, ms)) return undefined;
    }
    out.artifact('result', 'result', `done: ${task.text}`, false, true);
    return out.status('completed');
  }

  async answered(task, text, out) {
    const turns = TURNS[task.word];
    if (turns === undefined || task.answers.length >= turns) return out.status('completed');
    task.answers.push(text);
    if (task.answers.length < turns) {
      return out.status('input-required', QUESTIONS[task.answers.length]);
    }
    out.artifact('result', 'result', `hello ${task.answers.join(' / ')}`, false, true);
    return out.status('completed');
  }

  async streamed(task, out) {
    const chunks = [
      ['chunk-1 ', false, false],
      ['chunk-2 ', true, false],
      ['chunk-3', true, true],
    ];
    for (const [text, append, last] of chunks) {
      if (await this.interrupted(task, 100)) return;
      out.artifact('stream', 'stream', text, append, last);
    }
    out.status('completed');
  }

  /** Sleep `ms`; true when the task was canceled meanwhile. */
  async interrupted(task, ms) {
    await Promise.race([sleep(ms), task.stopped]);
    return Boolean(task.canceled);
  }

  cancel(taskId, out) {
    const task = this.tasks.get(taskId);
    if (task !== undefined) {
      task.canceled = true;
      task.wake();
    }
    out.status('canceled', 'canceled on request');
  }
}
