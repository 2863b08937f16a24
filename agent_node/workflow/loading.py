"""Finding a workflow by reference: a YAML file, a Python file
(``path.py:attr``) or a module attribute (``package.module:attr``).

Below the SDK and the runtime, which both load workflows: what a reference
names is taken if it is compiled, or if it compiles itself (``compile()``,
as :class:`agent_node.Workflow` does), so this layer needs no SDK import.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from agent_node.errors import ConfigError
from agent_node.workflow.compiled import CompiledWorkflow

__all__ = ["load_workflow"]


def load_workflow(ref: str) -> CompiledWorkflow:
    """Load a workflow from a YAML file, a Python file (``path.py:attr``) or a
    module attribute (``package.module:attr``)."""
    if ref.endswith((".yaml", ".yml")) and ":" not in Path(ref).name:
        from agent_node.workflow.yaml_loader import load_yaml_workflow

        return load_yaml_workflow(ref)
    if ref.endswith(".py") and ":" not in Path(ref).name:
        raise ConfigError(_name_the_workflow(ref))
    from agent_node.workflow.refs import import_object

    target = import_object(ref)
    if isinstance(target, CompiledWorkflow):
        return target
    if _compiles(target):
        compiled = target.compile()
        if isinstance(compiled, CompiledWorkflow):
            return compiled
    raise ConfigError(f"{ref} is a {type(target).__name__}, not a Workflow")


def _compiles(value: object) -> bool:
    """Whether ``value`` may be a workflow that compiles itself (an SDK ``Workflow``)."""
    return callable(getattr(value, "compile", None)) and not isinstance(value, type | ModuleType)


def _name_the_workflow(ref: str) -> str:
    """A Python file given alone: which of its objects to name, when it has one."""
    from agent_node.workflow.refs import import_file

    module = import_file(ref)
    names = [
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and (isinstance(value, CompiledWorkflow) or _compiles(value))
    ]
    said = f"{ref!r} is a file: give the workflow in it too"
    if names:
        return f"{said}, as in {' or '.join(f'{ref}:{name}' for name in names)}"
    return f"{said} ({ref}:NAME), but it defines none at its top level"
