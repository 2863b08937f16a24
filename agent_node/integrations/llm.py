"""Models through litellm: one chat completion per :meth:`LlmClient.complete`.

litellm is imported on the first call (it takes ~3 s and ~175 MB), in a
worker thread so the event loop keeps running other executions meanwhile,
and never at ``import agent_node``. Before the import the environment is
made offline and quiet (unless the operator set these already):
``LITELLM_LOCAL_MODEL_COST_MAP=True`` (no price map fetched from the
internet) and ``LITELLM_MODE=PRODUCTION`` (no ``load_dotenv()`` of ``./.env``).

Ollama (``ollama_chat/<model>``, ``ollama/<model>``):

* the base URL is ``$OLLAMA_API_BASE``, else :attr:`ModelSettings.api_base`
  unless it is an OpenAI-compatible server's (``…/v1``), else
  ``http://localhost:11434`` (:mod:`.ollama_base`). It is passed as
  ``api_base`` *and* written to ``$OLLAMA_API_BASE``, because litellm asks
  some endpoints (``/api/show``) there whatever ``api_base`` says. The
  variable is process-wide: two clients with different bases in one
  process take turns setting it.
* an ``ollama_chat`` model is registered with litellm as a local model that
  costs nothing, once. Otherwise litellm asks ``/api/show`` for its price
  three to five times per call, with a *blocking* HTTP client, partly on the
  event loop; a user's own price entry for the model is left alone.
* before the first call litellm is not even imported until Ollama has
  answered at that URL once (``GET /api/version``, :data:`PROBE_TIMEOUT`):
  with nothing listening the call fails within seconds, saying where it
  looked and what to do (start Ollama, point ``models.api_base`` at it, or
  use ``scripted/echo``), not after litellm's import and retries with
  ``APIConnectionError``. A later call that finds it gone says the same.
* requests go through this client's own connection pool (plain httpx, no
  proxy from the environment), closed by :meth:`LlmClient.aclose`. Other
  providers use litellm's clients and their usual environment.

OpenAI-compatible servers (``openai/<model>`` with ``models.api_base``:
llama.cpp's ``llama-server``, LM Studio, vLLM, …): the base URL (``…/v1``)
is passed as ``api_base``, with ``$OPENAI_API_KEY`` or a placeholder key (a
local server asks for none). Without ``models.api_base``, ``openai/…`` is
OpenAI's, as litellm has it. Either way a model litellm's price map names
is priced by it (``openai/gpt-4o-mini`` behind a gateway costs what OpenAI
charges), one it does not name is free (a local model), the same whether
its answer was read directly or through litellm (:mod:`.llm_prices`).

Every failure leaves as :class:`~agent_node.errors.NodeFailed` naming the
model — :class:`~agent_node.nodes.model.ModelRefused` when the server refused
the request itself (a 4xx other than 408, 409, 425, 429) — and cancellation
passes through untouched. This module implements
:class:`~agent_node.nodes.model.ModelClient`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import os
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from agent_node.config import ModelSettings
from agent_node.integrations import scripted
from agent_node.integrations.backends import Backends
from agent_node.integrations.direct_stream import DirectStream
from agent_node.integrations.llm_answers import completion, streamed
from agent_node.integrations.llm_errors import translated
from agent_node.integrations.llm_prices import mapped
from agent_node.integrations.ollama_base import DEFAULT_OLLAMA, ollama_base, tell_litellm
from agent_node.nodes.model_budget import prompt_tokens, text_tokens
from agent_node.nodes.model_client import (
    Completion,
    ModelUnavailable,
    ToolCall,
)

__all__ = ["DEFAULT_OLLAMA", "Completion", "LlmClient", "ToolCall", "load_litellm"]

_OLLAMA_PREFIXES = ("ollama_chat/", "ollama/")
#: Models of an OpenAI-compatible server at ``models.api_base``.
OPENAI_PREFIX = "openai/"
_QUIET_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MODE": "PRODUCTION"}
#: Seconds Ollama gets to answer the first call's probe of its URL.
PROBE_TIMEOUT = 2.0


_loaded: ModuleType | None = None


def load_litellm() -> ModuleType:
    """Import litellm (offline and quiet, see the module doc); blocking."""
    global _loaded
    if _loaded is None:
        for name, value in _QUIET_ENV.items():
            os.environ.setdefault(name, value)
        import litellm

        litellm.suppress_debug_info = True
        _complete_schemas()
        _loaded = litellm
    return _loaded


def _complete_schemas() -> None:
    """Build the schemas of litellm's message models now, quietly.

    pydantic builds them on first use and warns then (litellm's TypedDicts use
    ``ReadOnly``); where warnings are errors (``-W error``, our tests) the
    build fails, and it is tried again — and fails — on every message.
    """
    from litellm.types import utils

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*`ReadOnly` qualifier", category=UserWarning)
        for name in ("Message", "Delta"):
            model = getattr(utils, name, None)
            if model is not None:
                model.model_rebuild()


class LlmClient:
    """Chat completions through litellm (see the module doc).

    One client serves one event loop at a time: its Ollama connection pool
    belongs to the loop that made it (a call from another loop gets a new one).
    """

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings or ModelSettings()
        #: Where Ollama models are asked.
        self.ollama_base = ollama_base(self.settings.api_base)
        self._http: tuple[asyncio.AbstractEventLoop, Any] | None = None
        self._registered: set[str] = set()
        #: Whether Ollama has answered at ``ollama_base`` once (it is not asked again).
        self._answered = False
        #: How many calls each backend takes at once (:mod:`.backends`).
        self.backends = Backends(self.settings, self.ollama_base)
        #: Plain streamed text from local servers, without litellm (:mod:`.direct_stream`).
        self._stream = DirectStream(self.settings.timeout)

    @property
    def default_model(self) -> str:
        """The model of nodes that name none (``models.default``)."""
        return self.settings.default

    async def __aenter__(self) -> LlmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the Ollama connection pool (a later call opens a new one)."""
        http, self._http = self._http, None
        if http is not None and not http[0].is_closed():
            await http[1].close()
        await self._stream.aclose()

    async def complete(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        response_format: Mapping[str, Any] | None = None,
        stream: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        """One chat completion. ``tools`` are OpenAI-style function tools,
        ``response_format`` OpenAI's (``json_schema`` becomes Ollama's
        ``format``). With ``stream`` (or ``on_text``) the answer is streamed
        and assembled, each piece of its text given to ``on_text`` as it
        comes. ``scripted/…`` models are the offline scripted model
        (:mod:`agent_node.integrations.scripted`): litellm is not loaded."""
        if model.startswith(scripted.PREFIX):
            return await scripted.complete(model, messages, response_format, on_text)
        given = {"temperature": temperature, "max_tokens": max_tokens}
        asked = (model, messages, tools, response_format, given, on_text)
        answer = await self._answer(*asked, stream or on_text is not None)
        return await self._counted(model, messages, tools, answer)

    async def _answer(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        response_format: Mapping[str, Any] | None,
        given: Mapping[str, Any],
        on_text: Callable[[str], None] | None,
        stream: bool,
    ) -> Completion:
        """The call of :meth:`complete`: read directly or through litellm."""
        ollama = model.startswith(_OLLAMA_PREFIXES)
        if ollama and not self._answered:
            await self._probe(model)  # seconds, not litellm's import and retries
        plain = not tools and response_format is None and not self.settings.via_litellm
        if plain and stream:
            direct = self._direct(model, messages, given, on_text)
            if direct is not None:  # plain streamed text from a local server
                async with self.backends.slot(model):
                    return await direct()
        litellm = await _litellm()
        # No retries inside the call: a 429 parks the visit durably, and the
        # node's retry policy (not the OpenAI client's) retries the rest.
        options: dict[str, Any] = {"timeout": self.settings.timeout, "max_retries": 0}
        options.update({key: value for key, value in given.items() if value is not None})
        if tools:
            options["tools"] = [dict(tool) for tool in tools]
        if response_format is not None:
            options["response_format"] = dict(response_format)
        what_to_do = self._what_to_do(model) if ollama else ""
        if ollama:
            options.update(await self._ollama(litellm, model))
        elif self._at_api_base(model):
            options.update(self._openai_compatible())
            what_to_do = (
                f"start the OpenAI-compatible server (llama.cpp's llama-server, LM Studio,"
                f" vLLM …) at {self.settings.api_base}, or set models.api_base to where it runs"
            )
        async with self.backends.slot(model):
            return await self._ask(litellm, model, messages, options, on_text, stream, what_to_do)

    async def _counted(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        tools: Sequence[Mapping[str, Any]] | None,
        answer: Completion,
    ) -> Completion:
        """``answer``, its tokens estimated when the server counted none (an
        OpenAI-compatible server that sends no usage, an old Ollama): four
        characters a token, the prompt as sent, marked ``estimated`` and
        priced by those counts — a token budget holds all the same. An
        ``openai/`` model at ``models.api_base`` is priced here whichever
        way its answer was read (litellm prices only what it read itself)."""
        usage, estimated = answer.usage, not answer.usage.get("total_tokens")
        if estimated:
            calls = answer.tool_calls
            said = len(answer.text) + sum(len(call.name) + len(call.arguments) for call in calls)
            prompt, reply = prompt_tokens(messages, tools), text_tokens(said)
            usage = {"prompt_tokens": prompt, "completion_tokens": reply}
            usage["total_tokens"] = prompt + reply
        elif not self._at_api_base(model):
            return answer  # counted by its server, priced by litellm (or free)
        cost = await self.price(model, usage["prompt_tokens"], usage["completion_tokens"])
        cost = answer.cost if cost is None else cost
        return dataclasses.replace(answer, usage=usage, cost=cost, estimated=estimated)

    async def price(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for a call of ``model`` with these token counts, as litellm's
        price map has it (a budget checks calls before they are made); None
        when it has no price. Local models (Ollama, scripted) are free, and
        so is an ``openai/`` model at ``models.api_base`` the map does not
        name (a local server's: :mod:`.llm_prices`)."""
        if model.startswith((scripted.PREFIX, *_OLLAMA_PREFIXES)):
            return 0.0
        local = self._at_api_base(model)
        if local and _loaded is None and not await mapped(model):
            return 0.0  # not litellm's to price: no need to load it
        litellm = await _litellm()
        try:
            prompt, answer = litellm.cost_per_token(
                model=model, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        except Exception:  # an unpriced model
            return 0.0 if local else None
        return float(prompt) + float(answer)

    def _at_api_base(self, model: str) -> bool:
        """Whether ``model`` is asked at ``models.api_base`` (an OpenAI-compatible server's)."""
        return model.startswith(OPENAI_PREFIX) and bool(self.settings.api_base)

    async def _ask(
        self,
        litellm: ModuleType,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        options: dict[str, Any],
        on_text: Callable[[str], None] | None,
        stream: bool,
        what_to_do: str,
    ) -> Completion:
        started = time.perf_counter()
        with translated(model, what_to_do):
            if stream or on_text is not None:
                response = await streamed(litellm, model, messages, options, on_text)
            else:
                response = await litellm.acompletion(
                    model=model, messages=list(messages), **options
                )
            latency = time.perf_counter() - started
            return completion(litellm, model, response, latency)

    def _direct(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        options: Mapping[str, Any],
        on_text: Callable[[str], None] | None,
    ) -> Callable[[], Awaitable[Completion]] | None:
        """The call through :mod:`.direct_stream` when it speaks to ``model``'s
        server (Ollama's chat, an OpenAI-compatible ``models.api_base``)."""
        if model.startswith("ollama_chat/"):
            hint = self._what_to_do(model)
            base = self.ollama_base
            return functools.partial(
                self._stream.ollama, base, model, messages, options, on_text, hint
            )
        if self._at_api_base(model) and self.settings.api_base:
            key = self._openai_compatible()["api_key"]
            base = self.settings.api_base.rstrip("/")
            hint = f"start the OpenAI-compatible server at {base}, or set models.api_base"
            return functools.partial(
                self._stream.openai, base, key, model, messages, options, on_text, hint
            )
        return None

    async def _probe(self, model: str) -> None:
        """Fail at once, saying what to do, when nothing listens at Ollama's URL."""
        import httpx

        try:
            async with httpx.AsyncClient(timeout=PROBE_TIMEOUT, trust_env=False) as http:
                await http.get(f"{self.ollama_base}/api/version")
        except httpx.TransportError as exc:
            why = str(exc) or type(exc).__name__
            raise ModelUnavailable(
                f"model {model!r}: no Ollama answers at {self.ollama_base} ({why});"
                f" {self._what_to_do(model)}"
            ) from None
        self._answered = True

    def _what_to_do(self, model: str) -> str:
        name = model.split("/", 1)[1]
        return (
            f"start Ollama (`ollama serve`, then `ollama pull {name}`), set models.api_base"
            " or $OLLAMA_API_BASE to where it runs, or answer without a model:"
            " models.default: scripted/echo, or AGENT_NODE_MODEL=scripted/demo where"
            " the configuration names no model (the examples)"
        )

    async def _ollama(self, litellm: ModuleType, model: str) -> dict[str, Any]:
        tell_litellm(self.ollama_base)
        if model.startswith("ollama_chat/") and model not in self._registered:
            if model not in litellm.model_cost:
                local = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}
                entry = {model: {**local, "litellm_provider": "ollama_chat", "mode": "chat"}}
                # It asks /api/show once, with a blocking client: off the loop.
                await asyncio.to_thread(litellm.register_model, entry)
            self._registered.add(model)
        return {"api_base": self.ollama_base, "client": self._pool()}

    def _openai_compatible(self) -> dict[str, Any]:
        """An OpenAI-compatible server at ``models.api_base`` (``openai/<model>``):
        its base URL, and a placeholder key when ``$OPENAI_API_KEY`` holds
        none (local servers ask for none; the OpenAI client needs one)."""
        key = os.environ.get("OPENAI_API_KEY") or "sk-no-key-needed"
        return {"api_base": self.settings.api_base, "api_key": key}

    def _pool(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._http is None or self._http[0] is not loop:
            import httpx
            from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

            # A transport of our own: litellm's default pool is shared,
            # cached beyond our lifetime and never closed.
            handler = AsyncHTTPHandler(
                timeout=self.settings.timeout, transport=httpx.AsyncHTTPTransport()
            )
            self._http = (loop, handler)
        return self._http[1]


async def _litellm() -> ModuleType:
    # The first import takes seconds: off the event loop.
    return _loaded if _loaded is not None else await asyncio.to_thread(load_litellm)
