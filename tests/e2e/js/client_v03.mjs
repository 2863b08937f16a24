// The @a2a-js/sdk 0.3.x client (A2A 0.3) against our node, every operation it
// offers; see client_common.mjs for the command line and the report.
//
// The node is the greeter example: `greet` completes with a data artifact
// for {"name": …}; `book` (message metadata {"skill": "book"}) asks when,
// and completes on the answer. The 0.3 client sends no A2A-Version header,
// so the node answers in 0.3; its objects are plain JSON (`kind`-tagged),
// reported as the SDK returned them. The 0.3 client has no ListTasks.

import {
  A2AClient,
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
} from '@a2a-js/sdk/client';

import {
  attempt,
  certifiedFetch,
  methodsOf,
  options,
  report,
  until,
  webhook,
} from './client_common.mjs';

const opts = options();
const fetchImpl = certifiedFetch(opts);
const resolver = new DefaultAgentCardResolver({ fetchImpl });
const factory = new ClientFactory(
  ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    cardResolver: resolver,
    transports: [new JsonRpcTransportFactory({ fetchImpl })],
  })
);

const id = () => `js03-${crypto.randomUUID()}`;
const greet = () => ({
  kind: 'message',
  messageId: id(),
  role: 'user',
  parts: [{ kind: 'data', data: { name: 'Ada Lovelace' } }],
});
const book = () => ({
  kind: 'message',
  messageId: id(),
  role: 'user',
  parts: [{ kind: 'text', text: 'Lisbon' }],
  metadata: { skill: 'book' },
});
const answer = (taskId) => ({
  kind: 'message',
  messageId: id(),
  role: 'user',
  parts: [{ kind: 'text', text: 'early May' }],
  taskId,
});
const terminal = (task) => ['completed', 'failed', 'canceled'].includes(task.status?.state);


const client = await factory.createFromUrl(opts.url);
const send = (message, configuration) => client.sendMessage({ message, configuration });

await report({
  operations: async () => methodsOf(client),

  card: async () => {
    const legacy = await A2AClient.fromCardUrl(`${opts.url}/.well-known/agent-card.json`, {
      fetchImpl,
    });
    return {
      well_known: await resolver.resolve(opts.url),
      legacy_path: await resolver.resolve(opts.url, '.well-known/agent.json'),
      a2a_client: await legacy.getAgentCard(),
    };
  },

  send_blocking: async () => send(greet()),

  send_non_blocking: async () => {
    const returned = await send(greet(), { blocking: false });
    const later = await until(() => client.getTask({ id: returned.id }), terminal);
    return { returned, later };
  },

  get_task: async () => {
    const asked = await send(book());
    await send(answer(asked.id));
    return {
      full: await client.getTask({ id: asked.id }),
      last_one: await client.getTask({ id: asked.id, historyLength: 1 }),
      none: await client.getTask({ id: asked.id, historyLength: 0 }),
    };
  },

  send_stream: async () => {
    const events = [];
    for await (const event of client.sendMessageStream({ message: greet() })) events.push(event);
    return events;
  },

  cancel: async () => {
    const asked = await send(book());
    return client.cancelTask({ id: asked.id });
  },

  follow_up: async () => {
    const asked = await send(book());
    return { asked, answered: await send(answer(asked.id)) };
  },

  subscribe: async () => {
    const asked = await send(book());
    const stream = client.resubscribeTask({ id: asked.id });
    const events = [(await stream.next()).value];
    const answered = await send(answer(asked.id));
    for await (const event of stream) events.push(event);
    return { task_id: asked.id, events, answered };
  },

  push: async () => {
    const hook = await webhook(opts);
    try {
      const config = {
        id: 'js-push',
        url: `${hook.url}/js-hook`,
        token: 'js-token',
        authentication: { schemes: ['Bearer'], credentials: 'js-cred' },
      };
      const asked = await send(book(), { pushNotificationConfig: config });
      const extra = { id: 'extra', url: 'https://example.com/js-push' };
      const created = await client.setTaskPushNotificationConfig({
        taskId: asked.id,
        pushNotificationConfig: extra,
      });
      const got = await client.getTaskPushNotificationConfig({
        id: asked.id,
        pushNotificationConfigId: 'js-push',
      });
      const listed = await client.listTaskPushNotificationConfig({ id: asked.id });
      const deletion = { id: asked.id, pushNotificationConfigId: 'extra' };
      await client.deleteTaskPushNotificationConfig(deletion);
      const again = await attempt(() => client.deleteTaskPushNotificationConfig(deletion));
      const after = await client.listTaskPushNotificationConfig({ id: asked.id });
      await send(answer(asked.id));
      await hook.until((p) => p.body.status?.state === 'completed');
      return {
        task_id: asked.id,
        created,
        got,
        listed,
        deleted_again: again,
        after,
        pushes: hook.pushes,
      };
    } finally {
      await hook.close();
    }
  },

  extended_card: async () => ({
    client: await client.getAgentCard(),
    transport: await attempt(() => client.transport.getExtendedAgentCard()),
  }),
});
