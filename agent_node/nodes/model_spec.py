"""The ``model`` node's spec: its fields, their validation, the models it
asks in order and the model its answer is validated with.

What an author writes (YAML, or ``wf.model(...)``) and what the compiler
checks before anything runs: a node with neither ``prompt`` nor
``messages``, tools named twice, a fallback chain naming a model twice, a
``schema`` that is not one. What each field does is the executor's to say
(:mod:`.model`); apart from it because the eval node's judge (:mod:`.eval`)
and the CLI's checks of a workflow read the spec too.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from agent_node.nodes import tool_refs
from agent_node.nodes.model_schema import imported_model, schema_model
from agent_node.workflow.ir import NodeSpec, node_type
from agent_node.workflow.retry import RetryPolicy

__all__ = ["ModelNode"]

#: (Inside a node spec ``type`` is the discriminator field, not the builtin.)
_Shape = type[BaseModel]


@node_type
class ModelNode(NodeSpec):
    """Asks a model; its answer goes into the state (see :mod:`.model`)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    type: Literal["model"] = "model"
    #: Any model string litellm accepts, or a fallback chain of them (the
    #: next is asked when one cannot answer); None: ``models.default``.
    model: str | list[str] | None = Field(default=None, min_length=1)
    system: str | None = None
    prompt: str | None = None
    #: The state key holding the chat history (read, then written back longer).
    messages: str | None = None
    output: str | None = None
    #: JSON Schema of the answer, or ``"module:Model"`` (a pydantic model).
    answer_schema: dict[str, Any] | str | None = Field(default=None, alias="schema")
    #: The tools the model may call: ``tool`` or ``server/tool`` (:mod:`.tool_refs`).
    tools: list[str] = Field(default_factory=list)
    max_tool_rounds: int = Field(default=8, ge=1, le=100)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    #: Streamed (the default), the answer's text going out live as it comes
    #: (:mod:`agent_node.store.live`: A2A subscribers of the task see it);
    #: False: asked for whole, for a backend that cannot stream.
    stream: bool | None = None
    next: str | None = None
    #: Where to go when a call would cross the execution's budget (None: fail).
    on_budget: str | None = None
    #: What an answer the model did not finish does (its finish reason
    #: ``length``: it reached ``max_tokens`` or its context; or
    #: ``content_filter``: its provider withheld the rest): ``continue``
    #: takes it as the answer; ``fail`` fails the node, not retried.
    on_incomplete: Literal["continue", "fail"] = "continue"
    retry: RetryPolicy | None = RetryPolicy(max_attempts=3, initial_delay=1.0, max_delay=30.0)

    has_next: ClassVar[bool] = True
    _answer: _Shape | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self) -> ModelNode:
        if self.prompt is None and self.messages is None:
            raise ValueError("a model node needs 'prompt' or 'messages'")
        if len(set(self.tools)) != len(self.tools) or not all(self.tools):
            raise ValueError("'tools' must name distinct tools")
        if (wrong := tool_refs.problem(self.tools)) is not None:
            raise ValueError(f"'tools': {wrong}")
        if isinstance(self.model, list) and (
            len(set(self.model)) != len(self.model) or not all(self.model)
        ):
            raise ValueError("'model' as a list is a fallback chain of distinct models")
        if isinstance(self.answer_schema, dict):
            self._answer = schema_model(self.answer_schema, self.id)
        elif isinstance(self.answer_schema, str) and ":" not in self.answer_schema:
            raise ValueError("'schema' as a string names a pydantic model: 'package.module:Model'")
        return self

    def templates(self) -> list[tuple[str, str]]:
        given = (("system", self.system), ("prompt", self.prompt))
        return [(name, source) for name, source in given if source is not None]

    def writes(self) -> list[tuple[str, str]]:
        given = (("output", self.output), ("messages", self.messages))
        return [(name, key) for name, key in given if key is not None]

    def successors(self) -> list[str]:
        return [*super().successors(), *([self.on_budget] if self.on_budget else [])]

    def chain(self, default: str) -> list[str]:
        """The models to ask, in order (``default`` when the node names none)."""
        if self.model is None:
            return [default]
        return [self.model] if isinstance(self.model, str) else list(self.model)

    def tool_entry(self, function: str) -> str | None:
        """The entry of ``tools`` the model calls by ``function`` (None: none)."""
        shown = (e for e in self.tools if tool_refs.ToolRef.parse(e).function == function)
        return next(shown, None)

    def answer_model(self) -> _Shape | None:
        """The model the answer is validated with (imported on first use)."""
        if self._answer is None and isinstance(self.answer_schema, str):
            self._answer = imported_model(self.answer_schema, self.id)
        return self._answer
