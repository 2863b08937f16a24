// A foreign A2A 0.3 peer built with @a2a-js/sdk 0.3.x (Express), serving the
// scenario contract of tests/e2e/foreign/__init__.py over mutual TLS:
//
//   node peer_v03.mjs --port P --certs DIR --name NAME --log FILE [--push] [--streaming]
//
// Its executor follows the SDK's 0.3 samples: a new task is published
// first, a follow-up turn starts with a WORKING status update, and the
// status that ends a turn carries `final: true`. With --push the SDK's own
// push machinery (made by DefaultRequestHandler when the card declares
// pushes) POSTs the task, presenting NAME's certificate (common.mjs).

import { AGENT_CARD_PATH } from '@a2a-js/sdk';
import { DefaultRequestHandler, InMemoryTaskStore } from '@a2a-js/sdk/server';
import { agentCardHandler, jsonRpcHandler, UserBuilder } from '@a2a-js/sdk/server/express';

import {
  application,
  listen,
  logger,
  options,
  pushWithCertificate,
  Scenarios,
  versionOf,
} from './common.mjs';

/** States that end a turn: the SDK's event queue stops at a final status. */
const FINAL = new Set(['input-required', 'completed', 'failed', 'canceled']);

function agentMessage(taskId, contextId, text) {
  return {
    kind: 'message',
    role: 'agent',
    messageId: crypto.randomUUID(),
    parts: [{ kind: 'text', text }],
    taskId,
    contextId,
  };
}

function firstText(message) {
  const part = (message?.parts ?? []).find((p) => p.kind === 'text');
  return part ? part.text : '';
}

/** The contract's `out` adapter over one 0.3 event bus. */
function outlet(bus, taskId, contextId, context) {
  const status = (state, text) => ({
    state,
    ...(text === undefined ? {} : { message: agentMessage(taskId, contextId, text) }),
    timestamp: new Date().toISOString(),
  });
  return {
    begin() {
      if (context?.task) {
        this.status('working');
        return;
      }
      bus.publish({
        kind: 'task',
        id: taskId,
        contextId,
        status: status('working'),
        history: context ? [context.userMessage] : [],
        metadata: context?.userMessage.metadata,
      });
    },
    status(state, text) {
      bus.publish({
        kind: 'status-update',
        taskId,
        contextId,
        status: status(state, text),
        final: FINAL.has(state),
      });
    },
    artifact(artifactId, name, text, append, lastChunk) {
      bus.publish({
        kind: 'artifact-update',
        taskId,
        contextId,
        artifact: { artifactId, name, parts: [{ kind: 'text', text }] },
        append,
        lastChunk,
      });
    },
  };
}

class ScenarioExecutor {
  constructor(scenarios) {
    this.scenarios = scenarios;
    this.contexts = new Map(); // task id -> context id, for cancelTask
  }

  async execute(context, bus) {
    const message = context.userMessage;
    this.contexts.set(context.taskId, context.contextId);
    const request = {
      taskId: context.taskId,
      messageId: message.messageId,
      text: firstText(message),
    };
    await this.scenarios.turn(request, outlet(bus, context.taskId, context.contextId, context));
  }

  cancelTask = async (taskId, bus) => {
    this.scenarios.cancel(taskId, outlet(bus, taskId, this.contexts.get(taskId) ?? ''));
  };
}

/** The SDK's handler; a task it cancels is logged. */
class LoggedHandler extends DefaultRequestHandler {
  constructor(log, ...rest) {
    super(...rest);
    this.log = log;
  }

  async cancelTask(params, context) {
    const task = await super.cancelTask(params, context);
    this.log({ event: 'canceled', task_id: task.id });
    return task;
  }
}

function card(opts) {
  return {
    name: `a2a-js ${versionOf('@a2a-js/sdk')} peer`,
    description: 'The scenario contract of the foreign-peer matrix, served by @a2a-js/sdk 0.3.x.',
    url: `https://127.0.0.1:${opts.port}/`,
    protocolVersion: '0.3.0',
    preferredTransport: 'JSONRPC',
    version: '1.0.0',
    capabilities: { streaming: opts.streaming, pushNotifications: opts.push },
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: [
      {
        id: 'scenarios',
        name: 'Scenarios',
        description: 'complete, slow, ask, ask2, stream, hang, fail',
        tags: ['interop'],
        examples: ['complete', 'ask'],
      },
    ],
  };
}

function main() {
  const opts = options();
  const log = logger(opts.log);
  if (opts.push) pushWithCertificate(opts, log, (task) => task.status?.state);
  const executor = new ScenarioExecutor(new Scenarios(log));
  const handler = new LoggedHandler(log, card(opts), new InMemoryTaskStore(), executor);
  const app = application(opts);
  app.use(`/${AGENT_CARD_PATH}`, agentCardHandler({ agentCardProvider: handler }));
  app.use(jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }));
  listen(app, opts);
}

main();
