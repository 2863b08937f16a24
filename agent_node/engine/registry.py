"""Which workflows an engine can run, and how it finds one it has not seen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent_node.errors import ConfigError
from agent_node.workflow.compiled import CompiledWorkflow
from agent_node.workflow.ir import WorkflowIR
from agent_node.workflow.refs import placed_ref

__all__ = ["Loader", "WorkflowRegistry"]

#: Loads a workflow from the reference an execution recorded (file or module:attr).
Loader = Callable[[str], CompiledWorkflow]


class WorkflowRegistry:
    def __init__(self, loader: Loader | None = None) -> None:
        self._workflows: dict[str, CompiledWorkflow] = {}
        self._loader = loader

    def add(self, workflow: CompiledWorkflow) -> CompiledWorkflow:
        known = self._workflows.get(workflow.key)
        if known is not None and known is not workflow and not _same(known.ir, workflow.ir):
            raise ConfigError(
                f"two different definitions of workflow {workflow.key}: bump its version"
            )
        self._workflows[workflow.key] = workflow
        return workflow

    def get(self, workflow_id: str, version: str, ref: str | None) -> CompiledWorkflow:
        key = f"{workflow_id}@{version}"
        found = self._workflows.get(key)
        if found is not None:
            return found
        if ref is None or self._loader is None:
            raise ConfigError(f"workflow {key} is not known here and has no reference to load")
        loaded = self._loader(ref)
        if loaded.key != key:
            raise ConfigError(
                f"{ref} now defines {loaded.key}, but the execution needs {key}:"
                " keep the old version available to finish its executions (a copy of"
                " the old file registered as a skill of its own; the command line"
                " finds it with the node's --config)"
            )
        return self.add(loaded)

    def __contains__(self, key: str) -> bool:
        return key in self._workflows


#: The fields of a node spec that name Python code by reference.
_CODE_REFS = ("function", "schema")


def _same(a: WorkflowIR, b: WorkflowIR) -> bool:
    """Whether two definitions are one: equal, or equal but for how the
    module of their Python code was loaded (a file imported as ``flow``,
    run as ``__main__`` or loaded again from the path an execution
    recorded names the same functions by other module names)."""
    return a == b or _placed(a) == _placed(b)


def _placed(ir: WorkflowIR) -> dict[str, Any]:
    data = ir.model_dump()
    for node in data["nodes"].values():
        for key in _CODE_REFS:
            if isinstance(node.get(key), str):
                node[key] = placed_ref(node[key])
    return data
