// The @a2a-js/sdk 1.x client (A2A 1.0) against our node, every operation it
// offers, over JSON-RPC, (--binding HTTP+JSON) REST or (--binding GRPC) gRPC;
// see client_common.mjs
// for the command line and the report.
//
// The node is the greeter example: `greet` completes with a data artifact
// for {"name": …}; `book` (message metadata {"skill": "book"}) asks when,
// and completes on the answer. Requests are written as wire JSON and read
// with the SDK's own codecs (`X.fromJSON`); results are reported as wire
// JSON (`X.toJSON`), so the test reads what the SDK understood.

import fs from 'node:fs';

import {
  AgentCard,
  CancelTaskRequest,
  DeleteTaskPushNotificationConfigRequest,
  GetExtendedAgentCardRequest,
  GetTaskPushNotificationConfigRequest,
  GetTaskRequest,
  ListTaskPushNotificationConfigsRequest,
  ListTaskPushNotificationConfigsResponse,
  ListTasksRequest,
  ListTasksResponse,
  Message,
  SendMessageRequest,
  StreamResponse,
  SubscribeToTaskRequest,
  Task,
  TaskPushNotificationConfig,
} from '@a2a-js/sdk';
import {
  ClientFactory,
  ClientFactoryOptions,
  DefaultAgentCardResolver,
  JsonRpcTransportFactory,
  RestTransportFactory,
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
const transports = [
  new JsonRpcTransportFactory({ fetchImpl }),
  new RestTransportFactory({ fetchImpl }),
];
if (opts.binding === 'GRPC') {
  // grpc-js (Node's HTTP/2) with the same certificate; imported only here.
  const grpc = await import('@grpc/grpc-js');
  const { GrpcTransportFactory } = await import('@a2a-js/sdk/client/grpc');
  const file = (name) => fs.readFileSync(`${opts.certs}/${name}`);
  const credentials = grpc.credentials.createSsl(
    file('ca.pem'),
    file(`${opts.name}-key.pem`),
    file(`${opts.name}.pem`)
  );
  transports.push(new GrpcTransportFactory({ grpcChannelCredentials: credentials }));
}
const factory = new ClientFactory(
  ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    cardResolver: resolver,
    // Every transport presents the client certificate; --binding picks the
    // one the client prefers (the card offers them all).
    transports,
    preferredTransports: [opts.binding],
  })
);

const id = () => `js1-${crypto.randomUUID()}`;
const greet = (fields = {}) => ({
  messageId: id(),
  role: 'ROLE_USER',
  parts: [{ data: { name: 'Ada Lovelace' } }],
  ...fields,
});
const book = () => ({
  messageId: id(),
  role: 'ROLE_USER',
  parts: [{ text: 'Lisbon' }],
  metadata: { skill: 'book' },
});
const answer = (taskId) => ({
  messageId: id(),
  role: 'ROLE_USER',
  parts: [{ text: 'early May' }],
  taskId,
});

/** A SendMessage result as wire JSON: {"task": …} or {"message": …}. */
const result = (r) => ('status' in r ? { task: Task.toJSON(r) } : { message: Message.toJSON(r) });
const terminal = (task) =>
  ['TASK_STATE_COMPLETED', 'TASK_STATE_FAILED', 'TASK_STATE_CANCELED'].includes(
    Task.toJSON(task).status?.state
  );


const client = await factory.createFromUrl(opts.url);
const send = async (message, configuration) =>
  client.sendMessage(SendMessageRequest.fromJSON({ message, configuration }));
const getTask = async (params) => client.getTask(GetTaskRequest.fromJSON(params));

await report({
  operations: async () => methodsOf(client),
  transport: async () => client.transport.constructor.name,

  // Cards are reported as the resolver returned them: it decodes a card with
  // AgentCard.fromJSON only when its security schemes look like proto JSON
  // (no `type` key), and otherwise keeps the JSON object as it came.
  card: async () => ({
    well_known: await resolver.resolve(opts.url),
    legacy_path: await resolver.resolve(opts.url, '.well-known/agent.json'),
    protocol_version: client.protocolVersion,
  }),

  send_blocking: async () => result(await send(greet())),

  send_non_blocking: async () => {
    const returned = await send(greet(), { returnImmediately: true });
    const done = await until(() => getTask({ id: returned.id }), terminal);
    return { returned: result(returned), later: Task.toJSON(done) };
  },

  get_task: async () => {
    const asked = await send(book());
    await send(answer(asked.id));
    return {
      full: Task.toJSON(await getTask({ id: asked.id })),
      last_one: Task.toJSON(await getTask({ id: asked.id, historyLength: 1 })),
      none: Task.toJSON(await getTask({ id: asked.id, historyLength: 0 })),
    };
  },

  send_stream: async () => {
    const events = [];
    for await (const event of client.sendMessageStream(
      SendMessageRequest.fromJSON({ message: greet() })
    )) {
      events.push(StreamResponse.toJSON(event));
    }
    return events;
  },

  list_tasks: async () => {
    const contextId = id();
    const sent = [await send(greet({ contextId })), await send(greet({ contextId }))];
    const listed = await client.listTasks(ListTasksRequest.fromJSON({ contextId }));
    return { sent: sent.map((t) => t.id), listed: ListTasksResponse.toJSON(listed) };
  },

  cancel: async () => {
    const asked = await send(book());
    return Task.toJSON(await client.cancelTask(CancelTaskRequest.fromJSON({ id: asked.id })));
  },

  follow_up: async () => {
    const asked = await send(book());
    return { asked: result(asked), answered: result(await send(answer(asked.id))) };
  },

  subscribe: async () => {
    const asked = await send(book());
    const stream = client.resubscribeTask(SubscribeToTaskRequest.fromJSON({ id: asked.id }));
    const events = [StreamResponse.toJSON((await stream.next()).value)];
    const answered = await send(answer(asked.id));
    for await (const event of stream) events.push(StreamResponse.toJSON(event));
    return { task_id: asked.id, events, answered: result(answered) };
  },

  push: async () => {
    const hook = await webhook(opts);
    try {
      const config = {
        url: `${hook.url}/js-hook`,
        token: 'js-token',
        authentication: { scheme: 'Bearer', credentials: 'js-cred' },
      };
      const asked = await send(book(), { taskPushNotificationConfig: { id: 'js-push', ...config } });
      const extra = { taskId: asked.id, id: 'extra', url: 'https://example.com/js-push' };
      const created = await client.createTaskPushNotificationConfig(
        TaskPushNotificationConfig.fromJSON(extra)
      );
      const got = await client.getTaskPushNotificationConfig(
        GetTaskPushNotificationConfigRequest.fromJSON({ taskId: asked.id, id: 'js-push' })
      );
      const listParams = ListTaskPushNotificationConfigsRequest.fromJSON({ taskId: asked.id });
      const listed = await client.listTaskPushNotificationConfig(listParams);
      const deletion = DeleteTaskPushNotificationConfigRequest.fromJSON({
        taskId: asked.id,
        id: 'extra',
      });
      await client.deleteTaskPushNotificationConfig(deletion);
      const again = await attempt(() => client.deleteTaskPushNotificationConfig(deletion));
      const after = await client.listTaskPushNotificationConfig(listParams);
      await send(answer(asked.id));
      await hook.until((p) => p.body.task?.status?.state === 'TASK_STATE_COMPLETED');
      return {
        task_id: asked.id,
        created: TaskPushNotificationConfig.toJSON(created),
        got: TaskPushNotificationConfig.toJSON(got),
        listed: ListTaskPushNotificationConfigsResponse.toJSON(listed),
        deleted_again: again,
        after: ListTaskPushNotificationConfigsResponse.toJSON(after),
        pushes: hook.pushes,
      };
    } finally {
      await hook.close();
    }
  },

  extended_card: async () => ({
    client: await client.getAgentCard(),
    transport: await attempt(async () =>
      AgentCard.toJSON(
        await client.transport.getExtendedAgentCard(GetExtendedAgentCardRequest.fromJSON({}))
      )
    ),
  }),
});
