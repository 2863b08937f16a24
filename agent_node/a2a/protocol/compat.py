"""A2A 0.3 <-> 1.0 conversion of plain JSON, at the edge.

A node speaks 1.0 inside and accepts 0.3 on the same endpoint: a 0.3 request
is turned into its 1.0 method and params (:func:`request_params_from_v03`),
handled as 1.0, and its result or stream events turned back
(:func:`result_to_v03`, :func:`stream_event_to_v03`). The ``*_to_v03`` /
``*_from_v03`` pairs also serve a client talking to a 0.3 peer.

What differs (0.3 -> 1.0):

* method names (:data:`METHODS_FROM_V03`); ``ListTasks`` has no 0.3 name;
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

from agent_node.a2a.protocol.compat_card import card_from_v03, card_to_v03, card_v03_fields, v03_url
from agent_node.a2a.protocol.errors import InvalidParams, MethodNotFound

__all__ = [
    "METHODS_FROM_V03",
    "METHODS_TO_V03",
    "card_from_v03",
    "card_to_v03",
    "card_v03_fields",
    "message_from_v03",
    "message_to_v03",
    "part_from_v03",
    "part_to_v03",
    "push_config_from_v03",
    "push_config_to_v03",
    "request_params_from_v03",
    "request_params_to_v03",
    "result_from_v03",
    "result_to_v03",
    "stream_event_from_v03",
    "stream_event_to_v03",
    "task_from_v03",
    "task_to_v03",
]

JSON = dict[str, Any]

METHODS_FROM_V03: dict[str, str] = {
    "message/send": "SendMessage",
    "message/stream": "SendStreamingMessage",
    "tasks/get": "GetTask",
    "tasks/cancel": "CancelTask",
    "tasks/resubscribe": "SubscribeToTask",
    "tasks/pushNotificationConfig/set": "CreateTaskPushNotificationConfig",
    "tasks/pushNotificationConfig/get": "GetTaskPushNotificationConfig",
    "tasks/pushNotificationConfig/list": "ListTaskPushNotificationConfigs",
    "tasks/pushNotificationConfig/delete": "DeleteTaskPushNotificationConfig",
    "agent/getAuthenticatedExtendedCard": "GetExtendedAgentCard",
}
"""0.3 method name -> 1.0 method name."""

METHODS_TO_V03: dict[str, str] = {new: old for old, new in METHODS_FROM_V03.items()}
"""1.0 method name -> 0.3 method name (``ListTasks`` has none)."""

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
    return _payload_from_v03(event)


def _payload_from_v03(obj: JSON) -> JSON:
    """A 0.3 task or message as the 1.0 ``{task}`` / ``{message}`` wrapper."""
    kind = obj.get("kind") or ("message" if "messageId" in obj else "task")
    if kind == "task":
        return {"task": task_from_v03(obj)}
    if kind == "message":
        return {"message": message_from_v03(obj)}
    raise InvalidParams(f"unknown 0.3 kind {kind!r}")


def _payload_to_v03(obj: JSON) -> JSON:
    if "task" in obj:
        return task_to_v03(obj["task"])
    if "message" in obj:
        return message_to_v03(obj["message"])
    raise InvalidParams("result: none of task, message")


# Push configs


def _push_target_to_v03(config: JSON) -> JSON:
    out = _drop(config, "tenant", "taskId")
    auth = config.get("authentication")
    if isinstance(auth, dict):
        schemes = [auth["scheme"]] if "scheme" in auth else []
        out["authentication"] = {**_drop(auth, "scheme"), "schemes": schemes}
    return out


def _push_target_from_v03(config: JSON) -> JSON:
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
    return {"taskId": config.get("taskId"), "pushNotificationConfig": _push_target_to_v03(config)}


def push_config_from_v03(config: JSON) -> JSON:
    """A nested 0.3 ``TaskPushNotificationConfig`` as the flat 1.0 one."""
    target = _push_target_from_v03(config.get("pushNotificationConfig") or {})
    return {**_drop(config, "pushNotificationConfig"), **target}


# Requests and results


def _send_params_to_v03(params: JSON) -> JSON:
    out = _drop(params, "tenant")
    out["message"] = message_to_v03(params["message"])
    config = params.get("configuration")
    if isinstance(config, dict):
        conf = _rename(_drop(config, "returnImmediately"), {"taskPushNotificationConfig": "x"})
        if "x" in conf:
            conf["pushNotificationConfig"] = _push_target_to_v03(conf.pop("x"))
        if "returnImmediately" in config:
            conf["blocking"] = not config["returnImmediately"]
        out["configuration"] = conf
    return out


def _send_params_from_v03(params: JSON) -> JSON:
    out = dict(params)
    out["message"] = message_from_v03(params["message"])
    config = params.get("configuration")
    if isinstance(config, dict):
        conf = _drop(config, "blocking", "pushNotificationConfig")
        if isinstance(config.get("pushNotificationConfig"), dict):
            target = _push_target_from_v03(config["pushNotificationConfig"])
            conf["taskPushNotificationConfig"] = target
        if "blocking" in config:
            conf["returnImmediately"] = not config["blocking"]
        out["configuration"] = conf
    return out


def _config_ref_from_v03(params: JSON) -> JSON:
    # 0.3 let the config id be omitted on get; its default config id is the task id.
    out = _rename(params, {"id": "taskId", "pushNotificationConfigId": "id"})
    out.setdefault("id", params.get("id"))
    return out


def _config_ref_to_v03(params: JSON) -> JSON:
    return _rename(_drop(params, "tenant"), {"id": "pushNotificationConfigId", "taskId": "id"})


def _no_tenant(params: JSON) -> JSON:
    return _drop(params, "tenant")


_PARAMS_FROM_V03: dict[str, Callable[[JSON], JSON]] = {
    "SendMessage": _send_params_from_v03,
    "SendStreamingMessage": _send_params_from_v03,
    "GetTask": dict,
    "CancelTask": dict,
    "SubscribeToTask": dict,
    "CreateTaskPushNotificationConfig": push_config_from_v03,
    "GetTaskPushNotificationConfig": _config_ref_from_v03,
    "ListTaskPushNotificationConfigs": lambda p: _rename(p, {"id": "taskId"}),
    "DeleteTaskPushNotificationConfig": _config_ref_from_v03,
    "GetExtendedAgentCard": lambda p: {},
}

_PARAMS_TO_V03: dict[str, Callable[[JSON], JSON]] = {
    "SendMessage": _send_params_to_v03,
    "SendStreamingMessage": _send_params_to_v03,
    "GetTask": _no_tenant,
    "CancelTask": _no_tenant,
    "SubscribeToTask": _no_tenant,
    "CreateTaskPushNotificationConfig": push_config_to_v03,
    "GetTaskPushNotificationConfig": _config_ref_to_v03,
    "ListTaskPushNotificationConfigs": lambda p: {"id": p.get("taskId")},
    "DeleteTaskPushNotificationConfig": _config_ref_to_v03,
    "GetExtendedAgentCard": lambda p: {},
}


def request_params_from_v03(method: str, params: Any) -> tuple[str, JSON]:
    """The 1.0 method and params of a 0.3 request; unknown methods raise MethodNotFound."""
    new = METHODS_FROM_V03.get(method)
    if new is None:
        raise MethodNotFound(f"Method not found: {method}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidParams("params must be an object")
    return new, _PARAMS_FROM_V03[new](params)


def request_params_to_v03(method: str, params: JSON) -> tuple[str, JSON]:
    """The 0.3 method and params of a 1.0 request, for calling a 0.3 peer."""
    old = METHODS_TO_V03.get(method)
    if old is None:
        raise MethodNotFound(f"{method} has no A2A 0.3 equivalent")
    return old, _PARAMS_TO_V03[method](params)


_RESULT_TO_V03: dict[str, Callable[[Any], Any]] = {
    "SendMessage": _payload_to_v03,
    "GetTask": task_to_v03,
    "CancelTask": task_to_v03,
    "CreateTaskPushNotificationConfig": push_config_to_v03,
    "GetTaskPushNotificationConfig": push_config_to_v03,
    "ListTaskPushNotificationConfigs": lambda r: _each(r.get("configs", []), push_config_to_v03),
    "DeleteTaskPushNotificationConfig": lambda r: None,
    "GetExtendedAgentCard": lambda card: card_to_v03(card, v03_url(card)),
}

_RESULT_FROM_V03: dict[str, Callable[[Any], Any]] = {
    "SendMessage": _payload_from_v03,
    "GetTask": task_from_v03,
    "CancelTask": task_from_v03,
    "CreateTaskPushNotificationConfig": push_config_from_v03,
    "GetTaskPushNotificationConfig": push_config_from_v03,
    # 0.3 lists every config at once: the one page is the last.
    "ListTaskPushNotificationConfigs": lambda r: {
        "configs": _each(r, push_config_from_v03),
        "nextPageToken": "",
    },
    "DeleteTaskPushNotificationConfig": lambda r: {},
    "GetExtendedAgentCard": lambda card: card_from_v03(card),
}


def result_to_v03(method: str, result: Any) -> Any:
    """The 0.3 result for a 1.0 method's result (a dict, a list for the push-config
    list, ``None`` for delete). Streaming methods go through :func:`stream_event_to_v03`."""
    return _RESULT_TO_V03[method](result)


def result_from_v03(method: str, result: Any) -> Any:
    """The 1.0 result of a 0.3 peer's answer to ``method`` (given by its 1.0 name)."""
    return _RESULT_FROM_V03[method](result)
