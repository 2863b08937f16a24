// The @a2a-js/sdk 1.x client reading a model's text as it is written: one
// streamed send to a node (plain HTTP on loopback) whose skill is a streamed
// model node; prints one JSON object: each stream event as wire JSON
// (StreamResponse.toJSON), and the seconds since the send each arrived.
//
//   node live_v1.mjs --url http://127.0.0.1:PORT [--binding JSONRPC|HTTP+JSON]

import { parseArgs } from 'node:util';

import { SendMessageRequest, StreamResponse } from '@a2a-js/sdk';
import {
  ClientFactory,
  ClientFactoryOptions,
  JsonRpcTransportFactory,
  RestTransportFactory,
} from '@a2a-js/sdk/client';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string' },
    binding: { type: 'string', default: 'JSONRPC' },
  },
});
const factory = new ClientFactory(
  ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory(), new RestTransportFactory()],
    preferredTransports: [opts.binding],
  })
);
const client = await factory.createFromUrl(opts.url);
const message = {
  messageId: `js-live-${crypto.randomUUID()}`,
  role: 'ROLE_USER',
  parts: [{ text: 'write something' }],
};
const started = performance.now();
const events = [];
const at = [];
for await (const event of client.sendMessageStream(SendMessageRequest.fromJSON({ message }))) {
  events.push(StreamResponse.toJSON(event));
  at.push((performance.now() - started) / 1000);
}
console.log(JSON.stringify({ events, at, transport: client.transport.constructor.name }));
