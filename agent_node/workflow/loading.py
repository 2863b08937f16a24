"""Finding a workflow by reference: a YAML file, a Python file
(``path.py:attr``) or a module attribute (``package.module:attr``).

Below the SDK and the runtime, which both load workflows: what a reference
names is taken if it is compiled, or if it compiles itself (``compile()``,
as :class:`agent_node.Workflow` does), so this layer needs no SDK import.
"""

from __future__ import annotations

from pathlib import Path

from agent_node.errors import ConfigError
from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["load_workflow"]


def load_workflow(ref: str) -> CompiledWorkflow:
    """Load a workflow from a YAML file, a Python file (``path.py:attr``) or a
    module attribute (``package.module:attr``)."""
    if ref.endswith((".yaml", ".yml")) and ":" not in Path(ref).name:
        from agent_node.workflow.yaml_loader import load_yaml_workflow

        return load_yaml_workflow(ref)
    from agent_node.workflow.refs import import_object

    target = import_object(ref)
    if isinstance(target, CompiledWorkflow):
        return target
    compile_ = getattr(target, "compile", None)
    if callable(compile_) and not isinstance(target, type):
        compiled = compile_()
        if isinstance(compiled, CompiledWorkflow):
            return compiled
    raise ConfigError(f"{ref} is a {type(target).__name__}, not a Workflow")
