"""JSON Schemas of the A2A 1.0 and 0.3 objects, generated from the models.

The generated files live in ``protocols/a2a-1.0/<Name>.schema.json`` (from
:mod:`~agent_node.a2a.protocol.models` and :mod:`~agent_node.a2a.protocol.card_models`) and
``protocols/a2a-0.3/<Name>.schema.json`` (from
:mod:`~agent_node.a2a.protocol.models_v03` and
:mod:`~agent_node.a2a.protocol.card_models_v03`); a test checks they match the models.
After changing a model, regenerate both folders::

    python -m agent_node.a2a.protocol.schemas --write protocols/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent_node.a2a.protocol import card_models, card_models_v03, models, models_v03

__all__ = [
    "SCHEMA_DIR",
    "SCHEMA_DIR_V03",
    "SCHEMA_MODELS",
    "SCHEMA_MODELS_V03",
    "SCHEMA_SETS",
    "generate_schemas",
    "main",
    "render",
    "write_schemas",
]

SCHEMA_DIR = "a2a-1.0"
"""The folder, under ``protocols/``, that holds the 1.0 schemas."""

SCHEMA_DIR_V03 = "a2a-0.3"
"""The folder, under ``protocols/``, that holds the 0.3 schemas."""

SCHEMA_MODELS: tuple[type[BaseModel], ...] = (
    card_models.AgentCard,
    models.CancelTaskRequest,
    models.DeleteTaskPushNotificationConfigRequest,
    models.GetExtendedAgentCardRequest,
    models.GetTaskPushNotificationConfigRequest,
    models.GetTaskRequest,
    models.ListTaskPushNotificationConfigsRequest,
    models.ListTaskPushNotificationConfigsResponse,
    models.ListTasksRequest,
    models.ListTasksResponse,
    models.Message,
    models.SendMessageRequest,
    models.SendMessageResponse,
    models.StreamResponse,
    models.SubscribeToTaskRequest,
    models.Task,
    models.TaskPushNotificationConfig,
)
"""The top-level 1.0 objects a schema file is written for: every request, response and event."""

SCHEMA_MODELS_V03: tuple[type[BaseModel], ...] = (
    card_models_v03.AgentCard,
    models_v03.DeleteTaskPushNotificationConfigParams,
    models_v03.GetTaskPushNotificationConfigParams,
    models_v03.ListTaskPushNotificationConfigParams,
    models_v03.ListTaskPushNotificationConfigResult,
    models_v03.Message,
    models_v03.MessageSendParams,
    models_v03.SendMessageResult,
    models_v03.StreamEvent,
    models_v03.Task,
    models_v03.TaskIdParams,
    models_v03.TaskPushNotificationConfig,
    models_v03.TaskQueryParams,
)
"""The top-level 0.3 objects a schema file is written for: every params, result and event."""

SCHEMA_SETS: dict[str, tuple[type[BaseModel], ...]] = {
    SCHEMA_DIR: SCHEMA_MODELS,
    SCHEMA_DIR_V03: SCHEMA_MODELS_V03,
}
"""Folder under ``protocols/`` -> the models whose schemas it holds."""


def generate_schemas(folder: str = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    """Object name -> its JSON Schema (JSON names, validation mode), for one folder."""
    return {model.__name__: model.model_json_schema(by_alias=True) for model in SCHEMA_SETS[folder]}


def render(schema: dict[str, Any]) -> str:
    """A schema as its file's text: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(protocols: Path) -> list[Path]:
    """Write every schema under ``protocols/<folder>/`` for each folder of
    :data:`SCHEMA_SETS`, removing stale ones; returns the files written."""
    written: list[Path] = []
    for name in SCHEMA_SETS:
        written += _write_folder(protocols / name, generate_schemas(name))
    return written


def _write_folder(folder: Path, schemas: dict[str, dict[str, Any]]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.schema.json"):
        if stale.name.removesuffix(".schema.json") not in schemas:
            stale.unlink()
    written = []
    for name, schema in sorted(schemas.items()):
        path = folder / f"{name}.schema.json"
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m agent_node.a2a.protocol.schemas --write protocols/``."""
    parser = argparse.ArgumentParser(prog="python -m agent_node.a2a.protocol.schemas")
    parser.add_argument("--write", metavar="PROTOCOLS_DIR", type=Path, required=True)
    args = parser.parse_args(argv)
    for path in write_schemas(args.write):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
