"""The a2a-sdk 1.x client reading a model's text as it is written: one
streamed send to a node (plain HTTP on loopback) whose skill is a streamed
model node; prints one JSON object: each stream event as wire JSON, and the
seconds since the send each arrived.

    python live_v1.py --url http://127.0.0.1:PORT [--binding JSONRPC|HTTP+JSON]

Run in the a2a-sdk 1.3.0 client venv (``e2e.venvs.SDK_CLIENTS["1"]``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types import Message, SendMessageRequest
from google.protobuf import json_format


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--binding", default="JSONRPC")
    args = parser.parse_args()
    async with httpx.AsyncClient(timeout=60) as http:
        card = await A2ACardResolver(http, args.url).get_agent_card()
        config = ClientConfig(
            streaming=True, httpx_client=http, supported_protocol_bindings=[args.binding]
        )
        client = ClientFactory(config).create(card)
        body = {"messageId": f"live-{uuid.uuid4()}", "role": "ROLE_USER"}
        body["parts"] = [{"text": "write something"}]
        message = json_format.ParseDict(body, Message())
        request = SendMessageRequest(message=message)
        started = time.monotonic()
        events, at = [], []
        async for event in client.send_message(request):
            events.append(json_format.MessageToDict(event))
            at.append(round(time.monotonic() - started, 3))
    print(json.dumps({"events": events, "at": at}))


if __name__ == "__main__":
    asyncio.run(main())
