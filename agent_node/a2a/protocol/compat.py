"""A2A 0.3 <-> 1.0 conversion of plain JSON, at the edge.

A node speaks 1.0 inside and accepts 0.3 on the same endpoint: a 0.3 request
is turned into its 1.0 method and params
(:func:`.compat_methods.request_params_from_v03`), handled as 1.0, and its
result or stream events turned back (:func:`.compat_methods.result_to_v03`,
:func:`stream_event_to_v03`). The ``*_to_v03`` / ``*_from_v03`` pairs also
serve a client talking to a 0.3 peer. This module converts the objects
(parts, messages, tasks, stream events, push configs);
:mod:`.compat_methods` converts a whole call with them, method by method.

What differs (0.3 -> 1.0):

* method names (:data:`.compat_methods.METHODS_FROM_V03`); ``ListTasks`` has
  no 0.3 name;
* ``kind`` discriminators on task, message, part, and stream events;
* parts: ``{kind: text|file|data}`` with ``file: {bytes|uri, name, mimeType}``
  -> one object with ``text|raw|url|data`` and ``filename``, ``mediaType``;
* roles ``user``/``agent`` -> ``ROLE_*``; states ``input-required`` ->
  ``TASK_STATE_INPUT_REQUIRED``, ``unknown`` <-> ``TASK_STATE_UNSPECIFIED``;
* ``configuration.blocking`` -> ``returnImmediately`` (negated; absent stays absent);
* push configs nested as ``pushNotificationConfig`` with
  ``authentication.schemes[]`` -> flat, one ``authentication.scheme``;
* 0.3 push-config requests name the task ``id`` and the config
  ``pushNotificationConfigId`` -> ``taskId`` and ``id``.

Lossy spots, chosen here: a 1.0 text part's ``mediaType``/``filename`` have
no 0.3 place and are dropped; 1.0 ``data`` that is not an object is wrapped
as ``{"value": data}`` for 0.3 (whose data parts must be objects); of several
0.3 auth schemes or OAuth flows the first is kept. Unknown fields pass
through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent_node.a2a.protocol.compat_card import card_from_v03, card_to_v03, card_v03_fields
from agent_node.a2a.protocol.errors import InvalidParams

__all__ = [
    "card_from_v03",
    "card_to_v03",
    "card_v03_fields",
    "message_from_v03",
    "message_to_v03",
    "part_from_v03",
    "part_to_v03",
    "payload_from_v03",
    "payload_to_v03",
    "push_config_from_v03",
    "push_config_to_v03",
    "push_target_from_v03",
    "push_target_to_v03",
    "stream_event_from_v03",
    "stream_event_to_v03",
    "task_from_v03",
    "task_to_v03",
]

JSON = dict[str, Any]

_ROLES = {"ROLE_USER": "user", "ROLE_AGENT": "agent"}
_STATES = {
    "TASK_STATE_UNSPECIFIED": "unknown",
    "TASK_STATE_SUBMITTED": "submitted",
    "TASK_STATE_WORKING": "working",
    "TASK_STATE_COMPLETED": "completed",
    "TASK_STATE_FAILED": "failed",
    "TASK_STATE_CANCELED": "canceled",
    "TASK_STATE_INPUT_REQUIRED": "input-required",
    "TASK_STATE_REJECTED": "rejected",
    "TASK_STATE_AUTH_REQUIRED": "auth-required",
}


def _flip(table: dict[str, str]) -> dict[str, str]:
    return {v: k for k, v in table.items()}


def _map(value: Any, table: dict[str, str]) -> Any:
    """``table[value]``, or ``value`` unchanged so that validation reports it."""
    return table.get(value, value) if isinstance(value, str) else value


def _rename(obj: JSON, names: dict[str, str]) -> JSON:
    return {names.get(key, key): value for key, value in obj.items()}


def _drop(obj: JSON, *keys: str) -> JSON:
    return {key: value for key, value in obj.items() if key not in keys}


def _each(items: Any, convert: Callable[[JSON], JSON]) -> Any:
    return [convert(item) for item in items] if isinstance(items, list) else items


# Parts, messages, tasks


def part_to_v03(part: JSON) -> JSON:
    """A 1.0 part as a 0.3 ``TextPart``, ``FilePart`` or ``DataPart``."""
    rest = _drop(part, "text", "raw", "url", "data", "filename", "mediaType")
    if "text" in part:
        return {"kind": "text", "text": part["text"], **rest}
    if "data" in part:
        data = part["data"]
        return {"kind": "data", "data": data if isinstance(data, dict) else {"value": data}, **rest}
    file: JSON = {"bytes": part["raw"]} if "raw" in part else {"uri": part.get("url")}
    file |= {k: part[n] for n, k in (("filename", "name"), ("mediaType", "mimeType")) if n in part}
    return {"kind": "file", "file": file, **rest}


def part_from_v03(part: JSON) -> JSON:
    """A 0.3 part as a 1.0 part (``kind`` inferred from the keys when missing)."""
    rest = _drop(part, "kind", "text", "file", "data")
    if "text" in part:
        return {"text": part["text"], **rest}
    if "data" in part:
        return {"data": part["data"], **rest}
    file = part.get("file")
    if not isinstance(file, dict):
        raise InvalidParams("part: none of text, file, data")
    content = {"raw": file["bytes"]} if "bytes" in file else {"url": file.get("uri")}
    named = {k: file[n] for n, k in (("name", "filename"), ("mimeType", "mediaType")) if n in file}
    return {**content, **named, **rest}


def message_to_v03(message: JSON) -> JSON:
    """A 1.0 message as a 0.3 one (``kind: "message"``)."""
    return {
        **message,
        "kind": "message",
        "role": _map(message.get("role"), _ROLES),
        "parts": _each(message.get("parts"), part_to_v03),
    }


def message_from_v03(message: JSON) -> JSON:
    """A 0.3 message as a 1.0 one."""
    return {
        **_drop(message, "kind"),
        "role": _map(message.get("role"), _flip(_ROLES)),
        "parts": _each(message.get("parts"), part_from_v03),
    }


def _status_to_v03(status: JSON) -> JSON:
    out = {**status, "state": _map(status.get("state"), _STATES)}
    if isinstance(status.get("message"), dict):
        out["message"] = message_to_v03(status["message"])
    return out


def _status_from_v03(status: JSON) -> JSON:
    out = {**status, "state": _map(status.get("state"), _flip(_STATES))}
    if isinstance(status.get("message"), dict):
        out["message"] = message_from_v03(status["message"])
    return out


def _artifact_to_v03(artifact: JSON) -> JSON:
    return {**artifact, "parts": _each(artifact.get("parts"), part_to_v03)}


def _artifact_from_v03(artifact: JSON) -> JSON:
    return {**artifact, "parts": _each(artifact.get("parts"), part_from_v03)}


def _convert_task(
    task: JSON,
    status: Callable[[JSON], JSON],
    artifact: Callable[[JSON], JSON],
    message: Callable[[JSON], JSON],
) -> JSON:
    out = dict(task)
    if isinstance(task.get("status"), dict):
        out["status"] = status(task["status"])
    if "artifacts" in task:
        out["artifacts"] = _each(task["artifacts"], artifact)
    if "history" in task:
        out["history"] = _each(task["history"], message)
    return out


def task_to_v03(task: JSON) -> JSON:
    """A 1.0 task as a 0.3 one (``kind: "task"``)."""
    converted = _convert_task(task, _status_to_v03, _artifact_to_v03, message_to_v03)
    return {**converted, "kind": "task"}


def task_from_v03(task: JSON) -> JSON:
    """A 0.3 task as a 1.0 one."""
    converted = _convert_task(task, _status_from_v03, _artifact_from_v03, message_from_v03)
    return _drop(converted, "kind")


# Stream events


def stream_event_to_v03(event: JSON, final: bool) -> JSON:
    """A 1.0 ``StreamResponse`` as the bare 0.3 event.

    ``final`` says whether the stream ends after this event; only a 0.3
    status update carries it.
    """
    if "statusUpdate" in event:
        update = event["statusUpdate"]
        status = _status_to_v03(update["status"])
        return {**update, "kind": "status-update", "status": status, "final": final}
    if "artifactUpdate" in event:
        update = event["artifactUpdate"]
        artifact = _artifact_to_v03(update["artifact"])
        return {**update, "kind": "artifact-update", "artifact": artifact}
    if "task" in event:
        return task_to_v03(event["task"])
    if "message" in event:
        return message_to_v03(event["message"])
    raise InvalidParams("stream event: none of task, message, statusUpdate, artifactUpdate")


def stream_event_from_v03(event: JSON) -> JSON:
    """A bare 0.3 event as a 1.0 ``StreamResponse`` (``final`` is dropped)."""
    kind = event.get("kind")
    if kind == "status-update":
        update = _drop(event, "kind", "final")
        return {"statusUpdate": {**update, "status": _status_from_v03(event["status"])}}
    if kind == "artifact-update":
        artifact = _artifact_from_v03(event["artifact"])
        return {"artifactUpdate": {**_drop(event, "kind"), "artifact": artifact}}
    return payload_from_v03(event)


def payload_from_v03(obj: JSON) -> JSON:
    """A 0.3 task or message as the 1.0 ``{task}`` / ``{message}`` wrapper."""
    kind = obj.get("kind") or ("message" if "messageId" in obj else "task")
    if kind == "task":
        return {"task": task_from_v03(obj)}
    if kind == "message":
        return {"message": message_from_v03(obj)}
    raise InvalidParams(f"unknown 0.3 kind {kind!r}")


def payload_to_v03(obj: JSON) -> JSON:
    """The 1.0 ``{task}`` / ``{message}`` wrapper as the bare 0.3 task or message."""
    if "task" in obj:
        return task_to_v03(obj["task"])
    if "message" in obj:
        return message_to_v03(obj["message"])
    raise InvalidParams("result: none of task, message")


# Push configs


def push_target_to_v03(config: JSON) -> JSON:
    """A flat 1.0 push config as the 0.3 ``PushNotificationConfig`` (no task id)."""
    out = _drop(config, "tenant", "taskId")
    auth = config.get("authentication")
    if isinstance(auth, dict):
        schemes = [auth["scheme"]] if "scheme" in auth else []
        out["authentication"] = {**_drop(auth, "scheme"), "schemes": schemes}
    return out


def push_target_from_v03(config: JSON) -> JSON:
    """A 0.3 ``PushNotificationConfig`` as the flat 1.0 push config's fields."""
    out = dict(config)
    auth = config.get("authentication")
    if isinstance(auth, dict):
        schemes = auth.get("schemes") or []
        if not schemes:
            raise InvalidParams("authentication: no scheme")
        out["authentication"] = {**_drop(auth, "schemes"), "scheme": schemes[0]}
    return out


def push_config_to_v03(config: JSON) -> JSON:
    """A flat 1.0 ``TaskPushNotificationConfig`` as the nested 0.3 one."""
    return {"taskId": config.get("taskId"), "pushNotificationConfig": push_target_to_v03(config)}


def push_config_from_v03(config: JSON) -> JSON:
    """A nested 0.3 ``TaskPushNotificationConfig`` as the flat 1.0 one."""
    target = push_target_from_v03(config.get("pushNotificationConfig") or {})
    return {**_drop(config, "pushNotificationConfig"), **target}
