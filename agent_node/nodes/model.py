"""``model``: ask a language model, put its answer into the state.

The node sends one conversation to a model (any model string litellm
accepts; ``model`` unset: the node's default, ``models.default``):

* ``system`` (a template) as the system message, then the chat history held
  in the state key ``messages`` (a list of OpenAI-style messages) when given,
  then ``prompt`` (a template) as the user's message;
* ``output`` gets the answer: its text, or — with ``schema`` — the parsed,
  validated object;
* ``messages`` (when given) gets the history plus this turn: the prompt, any
  tool calls and their results, and the answer.

Structured output: ``schema`` is a JSON Schema object (or the ``key: type``
shorthand of state schemas), or ``"package.module:Model"`` naming a pydantic
model. It is sent as the response format (Ollama's ``format``) and the
answer is validated against it. An answer that does not parse or validate
gets ONE repair: the error is sent back to the model, which is asked again;
a second invalid answer fails the node at once, its ``node_failed`` quoting
the answer's start (the repair exchange is not added to ``messages``).

Tools: ``tools`` names the tools the model may call (MCP tools, through
:class:`ToolBox`): ``tool``, or ``server/tool`` when several servers offer
one of that name, each shown to the model under a valid function name
(:mod:`.tool_refs`). When the model asks for tools, they are called — a turn's
calls concurrently — their results are sent back and the model is asked
again, for at most ``max_tool_rounds`` rounds; a model still asking after
that fails the attempt. A tool the node does not offer, or arguments that
are not a JSON object, are answered with an error the model can read; a
tool that cannot be reached fails the attempt.

Failures: a model server that refuses the request itself (HTTP 4xx other
than 408, 409, 425, 429: an unknown model, bad credentials, a context too
long) fails the node at once (:class:`ModelRefused`, a permanent failure) —
asking again changes nothing. A rate limit (429, with or without
``Retry-After``) parks the visit on a durable timer for as long as the
server asked (:class:`~agent_node.errors.Throttled`: no attempt is used, up
to ``retry.rate_limited`` times; a kill -9 meanwhile loses nothing).
A call that would cross the execution's budget is not made
(:mod:`.model_budget`): the node fails at once (:class:`OverBudget`, a
permanent failure), or goes to ``on_budget`` when given. An answer the
model did not finish — its finish reason ``length`` (it reached
``max_tokens`` or its context) or ``content_filter`` (its provider withheld
the rest) — is the answer all the same (``on_incomplete: continue``, the
default) or fails the node at once (``on_incomplete: fail``:
:class:`IncompleteAnswer`, a permanent failure).
Anything else (a timeout, a server error, a connection refused) fails the
attempt, retried per ``retry`` (default: 3 attempts, 1 s then 2 s apart).
Each attempt gets its own repair. Model calls carry no idempotency key: a
retried attempt asks the model again (and calls its tools again; each tool
call carries a key of its own, numbered over the attempt, and the same call
in the same place of a retry carries the same key:
:func:`~.tool.model_call_key`).

Fallbacks: ``model`` may be a list, a chain asked in order when a model
cannot answer (:mod:`.model_conversation`); ``node_completed`` names the
model that answered, and those given up on (``fell_back``).

What the node records in ``node_completed``: ``usage`` — the model, the
number of calls, tokens (prompt, completion, total), cost in USD (None when
the model has no price), seconds spent waiting for the model, and tool calls
made; ``output`` — the model, the start of the answer, the tools called
and why the model stopped (``finish_reason``, as its server said).
A failed attempt's ``node_failed`` carries the ``usage`` of the calls it
made all the same (they count in budgets, metrics and ``inspect``) — one cut
by the node's ``timeout`` too, and a call cut short after its answer began
(its tokens estimated, ``estimated: true``).

The model is reached through :class:`ModelClient`, which this module owns
and :class:`agent_node.integrations.llm.LlmClient` implements (litellm,
imported on first use); the composition (:mod:`agent_node.runtime`,
:mod:`agent_node.node`) wires it in, so this module never imports it.

The node's spec, the fields above and their validation, is
:class:`~.model_spec.ModelNode`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from agent_node.engine.attempts import throttled_count
from agent_node.engine.context import node_context
from agent_node.engine.executor import Advance, NodeContext, Outcome
from agent_node.errors import NodeFailed, NotEquipped
from agent_node.nodes.base import Parkless
from agent_node.nodes.model_budget import BudgetGuard, OverBudget
from agent_node.nodes.model_client import (
    Completion,
    IncompleteAnswer,
    InvalidAnswer,
    ModelClient,
    ModelRefused,
    ToolBox,
    ToolCall,
)
from agent_node.nodes.model_conversation import Conversation
from agent_node.nodes.model_schema import Invalid, parsed, response_format
from agent_node.nodes.model_spec import ModelNode
from agent_node.nodes.tool_refs import ToolRef
from agent_node.store.live import LiveWriter
from agent_node.workflow.retry import NO_RETRY

__all__ = [
    "Completion",
    "IncompleteAnswer",
    "InvalidAnswer",
    "ModelClient",
    "ModelExecutor",
    "ModelRefused",
    "Reply",
    "ToolBox",
    "ToolCall",
]

#: Characters of an invalid answer quoted in the node's failure.
_SAID = 500
#: The finish reasons of an answer the model did not finish, and what they mean.
_INCOMPLETE = {
    "length": "it reached max_tokens or its context length",
    "content_filter": "its provider's content filter withheld the rest",
}
_REPAIR = (
    "Your answer does not match the required JSON schema:\n{error}\n"
    "Answer again with only the corrected JSON object."
)


@dataclass(frozen=True, slots=True)
class Reply:
    """What one attempt of a model node got: the answer (text, or the parsed
    object with a schema), the turn the history gains, and the summary and
    usage recorded in ``node_completed``."""

    value: Any
    turn: list[dict[str, Any]]
    summary: dict[str, Any]
    usage: dict[str, Any]


class ModelExecutor(Parkless):
    """Runs model nodes through ``client`` and ``tools``.

    Without a client, one is made on first use by ``make_client`` (the
    runtime gives litellm's adapter, so this layer never imports it) and
    closed by :meth:`aclose`; with neither, model nodes fail. Without tools,
    nodes that name tools fail.
    """

    def __init__(
        self,
        client: ModelClient | None = None,
        tools: ToolBox | None = None,
        *,
        make_client: Callable[[], ModelClient] | None = None,
    ) -> None:
        self.client = client
        self.tools = tools
        self._make_client = make_client
        self._made: ModelClient | None = None

    async def aclose(self) -> None:
        """Close the client this executor made itself (not one it was given)."""
        made, self._made = self._made, None
        close = getattr(made, "aclose", None)
        if close is not None:
            await close()

    async def execute(self, ctx: NodeContext) -> Outcome:
        spec = _spec(ctx.spec)
        live = None
        if ctx.live is not None and spec.stream is not False:
            live = LiveWriter(ctx.live, ctx.execution_id, spec.id, ctx.visit)

        async def rate_limits_spent() -> bool:
            events = await ctx.history() if ctx.history is not None else []
            allowed = (spec.retry or NO_RETRY).rate_limited
            return throttled_count(events, spec.id, ctx.visit) >= allowed

        where = f"model node {spec.id!r}"
        budget = BudgetGuard(ctx.workflow.ir.budget, ctx.history, where)
        try:
            reply = await self.converse(spec, _messages(ctx, spec), live, rate_limits_spent, budget)
        except OverBudget as exc:
            if spec.on_budget is None:
                raise  # fails the node for good; ``exc.usage``: the calls made count
            return Advance(next=spec.on_budget, output={"over_budget": str(exc)}, usage=exc.usage)
        finally:
            if live is not None:
                live.end()
        return Advance(
            next=spec.next,
            patch=_patch(ctx, spec, reply.value, reply.turn) or None,
            output=reply.summary,
            usage=reply.usage,
        )

    async def converse(
        self,
        spec: ModelNode,
        messages: list[dict[str, Any]],
        live: LiveWriter | None = None,
        rate_limits_spent: Callable[[], Awaitable[bool]] | None = None,
        budget: BudgetGuard | None = None,
    ) -> Reply:
        """One attempt of ``spec`` over ``messages`` (already rendered): tool
        rounds, then the structured answer with its repair. Raises
        :class:`ModelRefused` when no later attempt can succeed, ``NodeFailed``
        when one might. The eval node's judge asks through here too.
        ``live``: where the answers' text goes as it comes (each answer
        starts the text over: the last one is the node's);
        ``rate_limits_spent``: whether a rate-limited model of a fallback
        chain may be given up on now (see :mod:`.model_conversation`);
        ``budget``: checks each call before it is made. A failure carries
        the usage of the calls made before it (``NodeFailed.usage``)."""
        client = self._client()
        model, *fallbacks = spec.chain(client.default_model)
        conversation = Conversation(
            spec,
            model,
            client,
            messages,
            live=live,
            response_format=response_format(spec.id, spec.answer_schema, spec.answer_model()),
            fallbacks=fallbacks,
            rate_limits_spent=rate_limits_spent,
            budget=budget,
        )
        if (ctx := node_context.get()) is not None:
            ctx.spending.append(conversation.usage)  # counted however the attempt ends
        try:
            conversation.offered = await self._offered(spec)
            answer = await self._answer(spec, conversation)
            value: Any = answer.text
            shape = spec.answer_model()
            if shape is not None:
                value, answer = await self._structured(spec, conversation, shape, answer)
        except NodeFailed as exc:
            if exc.usage is None and conversation.completions:
                exc.usage = conversation.usage()  # the calls made count all the same
            raise
        conversation.turn.append(answer.message())
        return Reply(value, conversation.turn, conversation.summary(answer), conversation.usage())

    def _client(self) -> ModelClient:
        if self.client is not None:
            return self.client
        if self._made is None:
            if self._make_client is None:
                raise NotEquipped("this runtime has no model client to call models with")
            self._made = self._make_client()
        return self._made

    async def _offered(self, spec: ModelNode) -> list[dict[str, Any]] | None:
        if not spec.tools:
            return None
        if self.tools is None:
            raise NotEquipped(
                f"model node {spec.id!r}: this runtime has no tools (configure `mcp:` servers)"
            )
        return await self.tools.schemas(spec.tools)

    async def _answer(self, spec: ModelNode, conversation: Conversation) -> Completion:
        """Ask, answering tool calls until the model answers in text."""
        completion = await conversation.ask()
        for _ in range(spec.max_tool_rounds):
            if not completion.tool_calls:
                return _finished(spec, completion)
            # Calls are numbered over the attempt (their idempotency keys).
            done = len(conversation.tools_called) - len(completion.tool_calls)
            results = await asyncio.gather(
                *(
                    self._use(spec, call, done + i)
                    for i, call in enumerate(completion.tool_calls, 1)
                )
            )
            conversation.add(completion.message(), *results)
            completion = await conversation.ask()
        if completion.tool_calls:
            raise NodeFailed(
                f"model node {spec.id!r}: the model still calls tools after"
                f" {spec.max_tool_rounds} rounds (max_tool_rounds)"
            )
        return _finished(spec, completion)

    async def _use(self, spec: ModelNode, call: ToolCall, ordinal: int) -> dict[str, Any]:
        answer = {"role": "tool", "tool_call_id": call.id, "name": call.name}
        entry = spec.tool_entry(call.name)
        if entry is None or self.tools is None:
            offered = ", ".join(ToolRef.parse(e).function for e in spec.tools) or "none"
            return {**answer, "content": f"error: no tool {call.name!r} (tools: {offered})"}
        try:
            args = json.loads(call.arguments or "{}")
        except ValueError as exc:
            return {**answer, "content": f"error: the arguments are not JSON: {exc}"}
        if not isinstance(args, dict):
            return {**answer, "content": "error: the arguments must be a JSON object"}
        return {**answer, "content": await self.tools.call(entry, args, ordinal=ordinal)}

    async def _structured(
        self,
        spec: ModelNode,
        conversation: Conversation,
        shape: type[BaseModel],
        answer: Completion,
    ) -> tuple[Any, Completion]:
        """The answer parsed and validated, after one repair when needed."""
        try:
            return parsed(shape, answer.text), answer
        except Invalid as first:
            repair = {"role": "user", "content": _REPAIR.format(error=first)}
            conversation.aside(answer.message(), repair)
        again = await self._answer(spec, conversation)
        try:
            return parsed(shape, again.text), again
        except Invalid as second:
            raise InvalidAnswer(
                f"the answer does not match the schema, even after a repair: {second}"
                f"\nthe answer began: {_start(again.text)!r}",
                conversation.usage(),
            ) from None


def _finished(spec: ModelNode, answer: Completion) -> Completion:
    """``answer``, unless the model did not finish it and the node says to
    fail then (``on_incomplete: fail``)."""
    why = _INCOMPLETE.get(answer.finish_reason or "")
    if why is None or spec.on_incomplete != "fail":
        return answer
    raise IncompleteAnswer(
        f"model {answer.model!r} did not finish its answer: finish reason"
        f" {answer.finish_reason!r} ({why}), after {len(answer.text)} characters"
        " (on_incomplete: fail)"
    )


def _start(text: str) -> str:
    """What an invalid answer said, short enough for an error message."""
    return text if len(text) <= _SAID else text[:_SAID] + "…"


def _messages(ctx: NodeContext, spec: ModelNode) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    if spec.system is not None:
        system = ctx.workflow.template(spec.id, "system").render(ctx.data)
        sent.append({"role": "system", "content": system})
    sent.extend(_history(ctx, spec))
    if spec.prompt is not None:
        prompt = ctx.workflow.template(spec.id, "prompt").render(ctx.data)
        sent.append({"role": "user", "content": prompt})
    return sent


def _history(ctx: NodeContext, spec: ModelNode) -> list[dict[str, Any]]:
    if spec.messages is None:
        return []
    held = ctx.data.get(spec.messages)
    if held is None:
        return []
    if not isinstance(held, list) or not all(
        isinstance(m, Mapping) and isinstance(m.get("role"), str) for m in held
    ):
        raise NodeFailed(
            f"model node {spec.id!r}: state key {spec.messages!r} must hold a list of"
            " messages ({'role': ..., 'content': ...})"
        )
    return [dict(message) for message in held]


def _patch(
    ctx: NodeContext, spec: ModelNode, value: Any, turn: list[dict[str, Any]]
) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    if spec.output is not None:
        patch[spec.output] = value
    if spec.messages is not None:
        patch[spec.messages] = [*_history(ctx, spec), *turn]
    return patch


def _spec(spec: object) -> ModelNode:
    if not isinstance(spec, ModelNode):
        raise NodeFailed(f"node {getattr(spec, 'id', '?')!r} is not a model node")
    return spec
