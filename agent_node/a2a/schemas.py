"""JSON Schemas of the A2A 1.0 objects, generated from the models.

The generated files live in ``protocols/a2a-1.0/<Name>.schema.json`` and a
test checks they match the models. After changing a model, regenerate them::

    python -m agent_node.a2a.schemas --write protocols/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent_node.a2a import card_models, models

__all__ = ["SCHEMA_DIR", "SCHEMA_MODELS", "generate_schemas", "main", "render", "write_schemas"]

SCHEMA_DIR = "a2a-1.0"
"""The folder, under ``protocols/``, that holds the generated schemas."""

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
"""The top-level objects a schema file is written for: every request, response and event."""


def generate_schemas() -> dict[str, dict[str, Any]]:
    """Object name -> its JSON Schema (JSON names, validation mode)."""
    return {model.__name__: model.model_json_schema(by_alias=True) for model in SCHEMA_MODELS}


def render(schema: dict[str, Any]) -> str:
    """A schema as its file's text: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(protocols: Path) -> list[Path]:
    """Write every schema under ``protocols/a2a-1.0/``, removing stale ones; returns the files."""
    folder = protocols / SCHEMA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    schemas = generate_schemas()
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
    """``python -m agent_node.a2a.schemas --write protocols/``."""
    parser = argparse.ArgumentParser(prog="python -m agent_node.a2a.schemas")
    parser.add_argument("--write", metavar="PROTOCOLS_DIR", type=Path, required=True)
    args = parser.parse_args(argv)
    for path in write_schemas(args.write):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
