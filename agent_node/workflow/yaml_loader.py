"""YAML workflows: a ``workflow`` header and a ``nodes`` map, compiled like the SDK's.

::

    workflow:
      id: triage
      version: "1.0"
      state_schema: {query: string, score: number}
      start: classify
    nodes:
      classify: {type: python, function: "steps:classify", next: done}
      done: {type: end}

Every mistake is a :class:`WorkflowDefinitionError` naming the file, and the
node and field when there is one: YAML syntax (with line and column), the
header, each node's fields (pydantic's errors, translated), the state
schema, the ``function`` references (which must name async functions), and
then everything :func:`compile_workflow` checks.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent_node.errors import ConfigError, WorkflowDefinitionError
from agent_node.problems import problems
from agent_node.workflow.compiled import CompiledWorkflow, StepFn
from agent_node.workflow.compiler import compile_workflow
from agent_node.workflow.ir import NodeSpec, PythonNode, WorkflowIR, node_class
from agent_node.workflow.refs import import_object
from agent_node.workflow.schema import SchemaError, model_from_json_schema

__all__ = ["load_yaml_text", "load_yaml_workflow"]

_SECTIONS = ("workflow", "nodes")
_HEADER_REQUIRED = ("id", "version", "state_schema", "start")
_HEADER_KEYS = (*_HEADER_REQUIRED, "description", "budget")


def load_yaml_workflow(path: str | Path) -> CompiledWorkflow:
    """Load and compile the workflow in the YAML file at ``path``."""
    file_path = Path(path).resolve()
    try:
        text = file_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowDefinitionError(f"cannot read the file: {exc}", file=str(path)) from None
    return _load(text, file=str(path), base_dir=file_path.parent, ref=str(file_path))


def load_yaml_text(
    text: str, *, file: str = "<string>", base_dir: Path | None = None
) -> CompiledWorkflow:
    """Compile a workflow from YAML text; ``base_dir`` is where ``function`` refs are found."""
    return _load(text, file=file, base_dir=base_dir, ref=None)


def _load(text: str, *, file: str, base_dir: Path | None, ref: str | None) -> CompiledWorkflow:
    document = _parse_yaml(text, file)
    header, raw_nodes = _sections(document, file)
    try:
        state_model = model_from_json_schema(header["state_schema"])
    except SchemaError as exc:
        raise WorkflowDefinitionError(str(exc), file=file, field="state_schema") from None
    nodes = {node_id: _node(node_id, raw, file) for node_id, raw in raw_nodes.items()}
    try:
        ir = WorkflowIR.model_validate({**header, "nodes": nodes})
    except ValidationError as exc:
        raise _translate(exc, WorkflowIR, file=file, node=None, prefix="workflow") from None
    functions = _functions(nodes, base_dir, file)
    return compile_workflow(ir, state_model, functions=functions, ref=ref, file=file)


def _parse_yaml(text: str, file: str) -> object:
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise WorkflowDefinitionError(f"invalid YAML{where}: {problem}", file=file) from None
    except yaml.YAMLError as exc:
        raise WorkflowDefinitionError(f"invalid YAML: {exc}", file=file) from None


def _sections(document: object, file: str) -> tuple[dict[str, Any], Mapping[str, Any]]:
    if not isinstance(document, Mapping):
        raise WorkflowDefinitionError("expected a mapping with 'workflow' and 'nodes'", file=file)
    _check_keys(document, _SECTIONS, _SECTIONS, file=file, what="top-level key")
    header, nodes = document["workflow"], document["nodes"]
    if not isinstance(header, Mapping):
        raise WorkflowDefinitionError("must be a mapping", file=file, field="workflow")
    _check_keys(header, _HEADER_KEYS, _HEADER_REQUIRED, file=file, what="workflow key")
    if not isinstance(nodes, Mapping) or not nodes:
        raise WorkflowDefinitionError("must be a non-empty mapping", file=file, field="nodes")
    for node_id in nodes:
        if not isinstance(node_id, str):
            raise WorkflowDefinitionError(
                f"node ids must be strings, not {node_id!r}", file=file, field="nodes"
            )
    return dict(header), nodes


def _check_keys(
    found: Mapping[Any, Any],
    allowed: tuple[str, ...],
    required: tuple[str, ...],
    *,
    file: str,
    what: str,
) -> None:
    expected = ", ".join(repr(key) for key in allowed)
    for key in found:
        if key not in allowed:
            raise WorkflowDefinitionError(
                f"unknown {what} {key!r} (expected {expected})", file=file
            )
    for key in required:
        if key not in found:
            raise WorkflowDefinitionError(f"missing {what} {key!r}", file=file)


def _node(node_id: str, raw: object, file: str) -> NodeSpec:
    if not isinstance(raw, Mapping):
        message = f"a node must be a mapping, not {type(raw).__name__}"
        raise WorkflowDefinitionError(message, file=file, node=node_id)
    try:
        model = node_class(raw)
    except ValueError as exc:
        raise WorkflowDefinitionError(str(exc), file=file, node=node_id, field="type") from None
    try:
        return model.model_validate({**raw, "id": node_id})
    except ValidationError as exc:
        raise _translate(exc, model, file=file, node=node_id) from None


def _translate(
    exc: ValidationError,
    model: type[Any],
    *,
    file: str,
    node: str | None,
    prefix: str | None = None,
) -> WorkflowDefinitionError:
    """Pydantic's first error as ours: ``loc`` becomes the field (``cases[0].when``)."""
    found = problems(exc, model)
    first = found[0]
    field = (f"{prefix}.{first.field}" if prefix else first.field) if first.field else None
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return WorkflowDefinitionError(f"{first.message}{more}", file=file, node=node, field=field)


def _functions(
    nodes: Mapping[str, NodeSpec], base_dir: Path | None, file: str
) -> dict[str, StepFn]:
    functions: dict[str, StepFn] = {}
    for node_id, spec in nodes.items():
        if not isinstance(spec, PythonNode):
            continue
        if spec.function is None:
            message = "a python node needs 'function' ('module:attr' or 'file.py:attr')"
            raise WorkflowDefinitionError(message, file=file, node=node_id, field="function")
        try:
            function = import_object(spec.function, base_dir)
        except ConfigError as exc:
            raise WorkflowDefinitionError(
                str(exc), file=file, node=node_id, field="function"
            ) from None
        if not inspect.iscoroutinefunction(function):
            raise WorkflowDefinitionError(
                f"{spec.function!r} is not an async function (define it with 'async def')",
                file=file,
                node=node_id,
                field="function",
            )
        functions[node_id] = function
    return functions
