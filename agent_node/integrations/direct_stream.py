"""Streamed text from a local model server, spoken directly (Ollama NDJSON, OpenAI SSE).

**Departure from "models through litellm" (DESIGN), for one path.** A model
node streams its answer by default, and litellm's streaming costs about
0.2 ms of CPU per chunk (its ``CustomStreamWrapper`` was ~65 % of a node's
CPU in a py-spy profile): 4,300 tokens/s through one node, where the
node's own path takes 27,000. For the commonest call — a plain text answer
(no tools, no response format), streamed, from Ollama (``ollama_chat/…``)
or an OpenAI-compatible server at ``models.api_base`` (``openai/…``:
llama.cpp's server, LM Studio, vLLM) — this module speaks the two wire
formats itself, over one httpx pool per event loop. Everything else (tools,
structured answers, hosted providers, a whole answer) goes through litellm,
which then need not even be imported for a demo's text.

* Ollama: ``POST {base}/api/chat`` with ``stream: true``; each line a JSON
  object whose ``message.content`` is the next piece; the last (``done``)
  carries the token counts (``prompt_eval_count``, ``eval_count``); an
  ``error`` line fails the call, and so does an answer that ends without
  its ``done`` line. ``temperature`` and ``max_tokens`` become
  ``options.temperature`` and ``options.num_predict``.
* OpenAI-compatible: ``POST {base}/chat/completions`` with ``stream: true``
  and ``stream_options.include_usage``; each ``data:`` event's
  ``choices[0].delta.content`` is the next piece, the usage comes last, then
  ``data: [DONE]``. An answer that ends with neither a ``finish_reason``
  nor ``[DONE]`` fails the call.

An answer cut short so (the server, or a proxy before it, closed a
well-formed stream mid-answer) is :class:`ModelUnavailable`, as a dropped
connection is: retried, or the next model of a chain — never half an
answer taken for a whole one.

Failures are classified as litellm's are (:mod:`.llm_errors`): a 429 is
:class:`~agent_node.nodes.model_client.RateLimited` with its
``Retry-After``, a 5xx or no answer at all ``ModelUnavailable``, a 404
``ModelMissing``, another 4xx ``ModelRefused``. The cost is left at 0:
the client prices the call (:mod:`.llm_prices`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from agent_node.errors import NodeFailed
from agent_node.integrations.llm_errors import failure_for
from agent_node.nodes.model_client import Completion, ModelUnavailable

__all__ = ["DirectStream"]

#: Bytes of an error answer's body kept for its message.
_ERROR_BODY = 2000


class DirectStream:
    """Streams plain text answers from Ollama and OpenAI-compatible servers."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._http: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None and not http[0].is_closed():
            await http[1].aclose()

    async def ollama(
        self,
        base: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        options: Mapping[str, Any],
        on_text: Callable[[str], None] | None,
        what_to_do: str = "",
    ) -> Completion:
        """One streamed answer of ``model`` (``ollama_chat/NAME``) at ``base``."""
        settings: dict[str, Any] = {}
        if options.get("temperature") is not None:
            settings["temperature"] = options["temperature"]
        if options.get("max_tokens") is not None:
            settings["num_predict"] = options["max_tokens"]
        body = {
            "model": model.split("/", 1)[1],
            "messages": [dict(m) for m in messages],
            "stream": True,
            "options": settings,
        }
        answer = _Answer(model, on_text, 'no "done": true line')

        def line(raw: bytes) -> bool:
            chunk = answer.read(raw)
            answer.add((chunk.get("message") or {}).get("content"))
            if chunk.get("done"):
                answer.count(chunk.get("prompt_eval_count"), chunk.get("eval_count"))
                answer.end(chunk.get("done_reason"))
            return True

        await self._read(f"{base}/api/chat", body, {}, model, what_to_do, line)
        return answer.completion()

    async def openai(
        self,
        base: str,
        key: str,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        options: Mapping[str, Any],
        on_text: Callable[[str], None] | None,
        what_to_do: str = "",
    ) -> Completion:
        """One streamed answer of ``model`` (``openai/NAME``) at ``base`` (``…/v1``)."""
        body: dict[str, Any] = {
            "model": model.split("/", 1)[1],
            "messages": [dict(m) for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for name in ("temperature", "max_tokens"):
            if options.get(name) is not None:
                body[name] = options[name]
        headers = {"Authorization": f"Bearer {key}"}
        answer = _Answer(model, on_text, "no finish_reason, no [DONE]")

        def line(raw: bytes) -> bool:
            if not raw.startswith(b"data:"):
                return True
            data = raw[5:].strip()
            if data == b"[DONE]":
                answer.end(None)
                return False
            event = answer.read(data)
            for choice in event.get("choices") or ():
                answer.add((choice.get("delta") or {}).get("content"))
                if (reason := choice.get("finish_reason")) is not None:
                    answer.end(reason)
            if isinstance(usage := event.get("usage"), Mapping):
                answer.count(usage.get("prompt_tokens"), usage.get("completion_tokens"))
            return True

        await self._read(f"{base}/chat/completions", body, headers, model, what_to_do, line)
        return answer.completion()

    async def _read(
        self,
        url: str,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        model: str,
        what_to_do: str,
        line: Callable[[bytes], bool],
    ) -> None:
        """POST ``body`` and give each non-empty line of the answer to ``line``
        as it comes (until it returns False); a failure classified."""
        client = self._client()
        try:
            async with asyncio.timeout(self.timeout):
                request = client.build_request("POST", url, json=body, headers=headers)
                response = await client.send(request, stream=True)
                try:
                    if response.status_code != 200:
                        raise await _refusal(response, model)
                    rest = b""
                    async for data in response.aiter_bytes():
                        *lines, rest = (rest + data).split(b"\n")
                        for each in lines:
                            if each.strip() and not line(each):
                                return
                    if rest.strip():
                        line(rest)
                finally:
                    await response.aclose()
        except TimeoutError:
            raise ModelUnavailable(
                f"model {model!r}: no whole answer within {self.timeout:g} s (models.timeout)"
            ) from None
        except httpx.TransportError as exc:
            hint = f"; {what_to_do}" if what_to_do else ""
            why = str(exc) or type(exc).__name__
            raise ModelUnavailable(f"model {model!r}: {type(exc).__name__}: {why}{hint}") from None
        except ValueError as exc:  # a line that is not JSON: the server failed
            raise ModelUnavailable(
                f"model {model!r}: an answer that cannot be read: {exc}"
            ) from None

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is None or self._http[0] is not loop:
            # Plain and local: no proxy or .netrc from the environment.
            client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
            self._http = (loop, client)
        return self._http[1]


async def _refusal(response: httpx.Response, model: str) -> NodeFailed:
    raw = b""
    async for data in response.aiter_bytes():
        raw += data
        if len(raw) >= _ERROR_BODY:
            break
    text = raw[:_ERROR_BODY].decode("utf-8", "replace").strip()
    try:
        said = json.loads(text).get("error")
        if isinstance(said, Mapping):
            said = said.get("message")
        text = str(said or text)
    except (ValueError, AttributeError):
        pass
    said = " ".join(text.split())[:500]
    message = f"model {model!r}: HTTP {response.status_code} from {response.request.url}: {said}"
    return failure_for(response.status_code, message, response.headers)


class _Answer:
    """An answer as its pieces come: the text, given on as it comes, its
    counts, and whether it ended (``unended``: what its end would have been)."""

    def __init__(self, model: str, on_text: Callable[[str], None] | None, unended: str) -> None:
        self.model = model
        self.on_text = on_text
        self.pieces: list[str] = []
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}
        self.started = time.perf_counter()
        self.unended = unended
        self.ended = False
        #: Why the model stopped, as the server said (None: it did not say).
        self.finish_reason: str | None = None

    def read(self, raw: bytes) -> Any:
        """One line's JSON object; the server's error, mid-answer, fails the call."""
        said = json.loads(raw)
        if isinstance(said, Mapping) and "error" in said:
            raise ModelUnavailable(f"model {self.model!r}: {said['error']}")
        return said if isinstance(said, Mapping) else {}

    def add(self, text: object) -> None:
        if isinstance(text, str) and text:
            self.pieces.append(text)
            if self.on_text is not None:
                self.on_text(text)

    def count(self, prompt: Any, completion: Any) -> None:
        """The token counts the server gave (none: 0)."""
        self.usage["prompt_tokens"] = int(prompt or 0)
        self.usage["completion_tokens"] = int(completion or 0)

    def end(self, reason: object) -> None:
        """The server said the answer is whole (``reason``: why it stopped)."""
        self.ended = True
        if reason is not None:
            self.finish_reason = str(reason)

    def completion(self) -> Completion:
        """The whole answer; :class:`ModelUnavailable` when its stream ended
        before the answer did (a clean close mid-answer)."""
        if not self.ended:
            came = sum(map(len, self.pieces))
            raise ModelUnavailable(
                f"model {self.model!r}: the answer's stream ended before the answer did"
                f" ({self.unended}; {came} characters had come)"
            )
        usage = {**self.usage, "total_tokens": sum(self.usage.values())}
        latency = time.perf_counter() - self.started
        text = "".join(self.pieces)
        return Completion(
            self.model,
            text,
            usage=usage,
            cost=0.0,
            latency_s=latency,
            finish_reason=self.finish_reason,
        )
