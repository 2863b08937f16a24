"""One executor per node type (see :mod:`agent_node.engine.executor`).

Adding a node type is a module here holding its spec (a :class:`NodeSpec`
subclass registered with ``@node_type``) and its executor, added to
:func:`default_executors`; a large one keeps its spec in a module of its
own (``model_spec``, ``http_spec``) imported by its executor's, and its
parts beside them (``model_*``, ``http_*``, ``eval_scorers``).
"""

from __future__ import annotations

from collections.abc import Callable

from agent_node.engine.executor import Executor
from agent_node.nodes.branch import BranchExecutor
from agent_node.nodes.delegate import DelegateExecutor
from agent_node.nodes.end import EndExecutor
from agent_node.nodes.eval import EvalExecutor
from agent_node.nodes.http import HttpExecutor, HttpTransport
from agent_node.nodes.model import ModelClient, ModelExecutor
from agent_node.nodes.parallel import JoinExecutor, ParallelExecutor
from agent_node.nodes.python import PythonExecutor
from agent_node.nodes.tool import ToolExecutor
from agent_node.nodes.wait import WaitExecutor

__all__ = ["default_executors"]


def default_executors(
    models: ModelExecutor | None = None,
    *,
    make_model_client: Callable[[], ModelClient] | None = None,
    make_http_transport: Callable[[], HttpTransport] | None = None,
) -> dict[str, Executor]:
    """One executor per node type; eval nodes' judges ask through ``models``
    (the model nodes' executor; a new one when not given, whose client
    ``make_model_client`` makes on first use). The adapters are given, not
    imported: they live above this layer (:mod:`agent_node.integrations`)."""
    models = models or ModelExecutor(make_client=make_model_client)
    return {
        "python": PythonExecutor(),
        "branch": BranchExecutor(),
        "parallel": ParallelExecutor(),
        "join": JoinExecutor(),
        "wait": WaitExecutor(),
        "delegate": DelegateExecutor(),
        "tool": ToolExecutor(),
        "http": HttpExecutor(make_transport=make_http_transport),
        "model": models,
        "eval": EvalExecutor(models),
        "end": EndExecutor(),
    }
