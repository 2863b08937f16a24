"""A2A 0.3 <-> 1.0 conversion of a whole call, method by method (plain JSON).

A 0.3 request names its method the 0.3 way (``message/send``) and shapes its
params the 0.3 way; :func:`request_params_from_v03` gives the 1.0 method and
params, :func:`result_to_v03` the 0.3 result of the 1.0 answer. The
``*_to_v03`` / ``*_from_v03`` pairs serve a client talking to a 0.3 peer.
Each method's params and result are converted by one entry of a table, with
the object conversions of :mod:`.compat` (and :mod:`.compat_card` for the
extended card); streaming methods' events go through
:func:`.compat.stream_event_to_v03` instead.

What differs between the two, and what is lost, is listed in :mod:`.compat`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent_node.a2a.protocol.compat import (
    JSON,
    _drop,
    _each,
    _rename,
    message_from_v03,
    message_to_v03,
    payload_from_v03,
    payload_to_v03,
    push_config_from_v03,
    push_config_to_v03,
    push_target_from_v03,
    push_target_to_v03,
    task_from_v03,
    task_to_v03,
)
from agent_node.a2a.protocol.compat_card import card_from_v03, card_to_v03, v03_url
from agent_node.a2a.protocol.errors import InvalidParams, MethodNotFound

__all__ = [
    "METHODS_FROM_V03",
    "METHODS_TO_V03",
    "request_params_from_v03",
    "request_params_to_v03",
    "result_from_v03",
    "result_to_v03",
]

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


def _send_params_to_v03(params: JSON) -> JSON:
    out = _drop(params, "tenant")
    out["message"] = message_to_v03(params["message"])
    config = params.get("configuration")
    if isinstance(config, dict):
        conf = _rename(_drop(config, "returnImmediately"), {"taskPushNotificationConfig": "x"})
        if "x" in conf:
            conf["pushNotificationConfig"] = push_target_to_v03(conf.pop("x"))
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
            target = push_target_from_v03(config["pushNotificationConfig"])
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
    "SendMessage": payload_to_v03,
    "GetTask": task_to_v03,
    "CancelTask": task_to_v03,
    "CreateTaskPushNotificationConfig": push_config_to_v03,
    "GetTaskPushNotificationConfig": push_config_to_v03,
    "ListTaskPushNotificationConfigs": lambda r: _each(r.get("configs", []), push_config_to_v03),
    "DeleteTaskPushNotificationConfig": lambda r: None,
    "GetExtendedAgentCard": lambda card: card_to_v03(card, v03_url(card)),
}

_RESULT_FROM_V03: dict[str, Callable[[Any], Any]] = {
    "SendMessage": payload_from_v03,
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
