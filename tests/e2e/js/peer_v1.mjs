// A foreign A2A 1.0 peer built with @a2a-js/sdk 1.x (Express), serving the
// scenario contract of tests/e2e/foreign/__init__.py over mutual TLS:
//
//   node peer_v1.mjs --port P --certs DIR --name NAME --log FILE [--push] [--streaming]
//
// Its executor follows the SDK's samples: every turn begins by publishing
// the task — on a follow-up, the stored task as it is, still INPUT_REQUIRED
// (the SDK re-publishes it at the start of each turn; kept, our node copes).
// The SDK's own push machinery (InMemoryPushNotificationStore,
// DefaultPushNotificationSender) delivers pushes, presenting NAME's
// certificate (common.mjs: pushWithCertificate).

import { A2A_PROTOCOL_VERSION, AGENT_CARD_PATH, Role, TaskState } from '@a2a-js/sdk';
import {
  AgentEvent,
  DefaultPushNotificationSender,
  DefaultRequestHandler,
  InMemoryPushNotificationStore,
  InMemoryTaskStore,
} from '@a2a-js/sdk/server';
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

const STATES = {
  working: TaskState.TASK_STATE_WORKING,
  'input-required': TaskState.TASK_STATE_INPUT_REQUIRED,
  completed: TaskState.TASK_STATE_COMPLETED,
  failed: TaskState.TASK_STATE_FAILED,
  canceled: TaskState.TASK_STATE_CANCELED,
};

const textPart = (text) => ({
  content: { $case: 'text', value: text },
  metadata: undefined,
  filename: '',
  mediaType: 'text/plain',
});

function agentMessage(taskId, contextId, text) {
  return {
    role: Role.ROLE_AGENT,
    messageId: crypto.randomUUID(),
    parts: [textPart(text)],
    taskId,
    contextId,
    extensions: [],
    metadata: {},
    referenceTaskIds: [],
  };
}

function firstText(message) {
  const part = (message?.parts ?? []).find((p) => p.content?.$case === 'text');
  return part ? part.content.value : '';
}

/** The contract's `out` adapter over one 1.x event bus. */
function outlet(bus, taskId, contextId, context) {
  const status = (state, text) => ({
    state: STATES[state],
    message: text === undefined ? undefined : agentMessage(taskId, contextId, text),
    timestamp: new Date().toISOString(),
  });
  return {
    begin() {
      const task = context?.task ?? {
        id: taskId,
        contextId,
        status: status('working'),
        artifacts: [],
        history: context ? [context.userMessage] : [],
        metadata: context?.userMessage.metadata,
      };
      bus.publish(AgentEvent.task(task));
      if (context?.task) this.status('working');
    },
    status(state, text) {
      bus.publish(
        AgentEvent.statusUpdate({ taskId, contextId, status: status(state, text), metadata: {} })
      );
    },
    artifact(artifactId, name, text, append, lastChunk) {
      const artifact = {
        artifactId,
        name,
        description: '',
        parts: [textPart(text)],
        metadata: undefined,
        extensions: [],
      };
      bus.publish(
        AgentEvent.artifactUpdate({
          taskId,
          contextId,
          artifact,
          append,
          lastChunk,
          metadata: undefined,
        })
      );
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
    description: 'The scenario contract of the foreign-peer matrix, served by @a2a-js/sdk 1.x.',
    supportedInterfaces: [
      {
        url: `https://127.0.0.1:${opts.port}/`,
        protocolBinding: 'JSONRPC',
        tenant: '',
        protocolVersion: A2A_PROTOCOL_VERSION,
      },
    ],
    version: '1.0.0',
    capabilities: {
      streaming: opts.streaming,
      pushNotifications: opts.push,
      extensions: [],
      extendedAgentCard: false,
    },
    securitySchemes: {},
    securityRequirements: [],
    defaultInputModes: ['text/plain'],
    defaultOutputModes: ['text/plain'],
    skills: [
      {
        id: 'scenarios',
        name: 'Scenarios',
        description: 'complete, slow, ask, ask2, stream, hang, fail',
        tags: ['interop'],
        examples: ['complete', 'ask'],
        inputModes: ['text/plain'],
        outputModes: ['text/plain'],
        securityRequirements: [],
      },
    ],
    documentationUrl: '',
    signatures: [],
  };
}

function pushedState(body) {
  const status = body.task?.status ?? body.statusUpdate?.status;
  return status?.state;
}

function main() {
  const opts = options();
  const log = logger(opts.log);
  let pushes = [];
  if (opts.push) {
    pushWithCertificate(opts, log, pushedState);
    const store = new InMemoryPushNotificationStore();
    pushes = [store, new DefaultPushNotificationSender(store)];
  }
  const executor = new ScenarioExecutor(new Scenarios(log));
  const handler = new LoggedHandler(
    log,
    card(opts),
    new InMemoryTaskStore(),
    executor,
    undefined,
    ...pushes
  );
  const app = application(opts);
  app.use(`/${AGENT_CARD_PATH}`, agentCardHandler({ agentCardProvider: handler }));
  app.use(jsonRpcHandler({ requestHandler: handler, userBuilder: UserBuilder.noAuthentication }));
  listen(app, opts);
}

main();
