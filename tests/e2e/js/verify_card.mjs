// @a2a-js/sdk 1.x verifies a node's card signature.
//
//   node verify_card.mjs --url URL --certs DIR --name NAME
//
// Over mutual TLS (DIR/NAME.pem, trusting DIR/ca.pem), `verifyAgentCardSignature`
// checks the card twice: as fetched (JSON), and as the SDK's card resolver
// returns it. Its key provider fetches the JWK Set the signature's `jku`
// names (same fetch) and imports the key `kid` names with jose. Prints one
// JSON object: {"fetched": {"verified", "error"?}, "resolved": {…}, "kid", "jku"}.
//
// Why twice: for a card whose security schemes are in the 1.0 shape only
// (no 0.3 `type` beside them) the resolver returns the SDK's parsed object,
// not JSON, and the verifier parses it again, which loses the schemes'
// oneof: the payload it checks then lacks `securitySchemes`.

import { parseArgs } from 'node:util';

import { verifyAgentCardSignature } from '@a2a-js/sdk';
import { DefaultAgentCardResolver } from '@a2a-js/sdk/client';
import * as jose from 'jose';

import { certifiedFetch } from './client_common.mjs';

const { values: opts } = parseArgs({
  options: { url: { type: 'string' }, certs: { type: 'string' }, name: { type: 'string' } },
});
const fetchImpl = certifiedFetch(opts);
const seen = {};
const verify = verifyAgentCardSignature(async (kid, jku) => {
  Object.assign(seen, { kid, jku });
  const jwks = await (await fetchImpl(jku)).json();
  const jwk = jwks.keys.find((key) => key.kid === kid);
  if (!jwk) throw new Error(`no key ${kid} at ${jku}`);
  return jose.importJWK(jwk, jwk.alg);
});

async function outcome(card) {
  try {
    await verify(card);
    return { verified: true };
  } catch (error) {
    return { verified: false, error: `${error.name}: ${error.message}` };
  }
}

const fetched = await (await fetchImpl(`${opts.url}/.well-known/agent-card.json`)).json();
const resolved = await new DefaultAgentCardResolver({ fetchImpl }).resolve(opts.url);
const report = { fetched: await outcome(fetched), resolved: await outcome(resolved) };
console.log(JSON.stringify({ ...report, ...seen }));
