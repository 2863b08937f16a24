"""Foreign A2A peers: servers built with the official SDKs, run as real processes.

Our ``delegate`` node is proven against agents we did not write: a2a-sdk 1.x
and 0.3.x (Python, each in a cached venv of its own) and ``@a2a-js/sdk`` 1.x
and 0.3.x (Node.js, each in a cached npm folder). Every one of them serves
the same **scenario contract**, so one test matrix drives them all.

Command line (each server)::

    --port P --certs DIR --name NAME --log FILE [--push] [--streaming]

* mutual TLS: certificate ``DIR/NAME.pem``, key ``DIR/NAME-key.pem``
  (``tests/support/certs.make_certs``), client certificates required and
  checked against ``DIR/ca.pem``; the card at the well-known paths the SDK
  serves, its JSON-RPC interface on ``https://127.0.0.1:P/``.
* ``--push``: the card declares ``capabilities.pushNotifications`` and the
  SDK's own push sender delivers, presenting ``DIR/NAME.pem`` as its client
  certificate. ``--streaming``: the card declares ``capabilities.streaming``.

Scenarios, chosen by the first word of the first text part of the message
that created the task:

``complete``  COMPLETED during the send: one artifact (``name`` "result")
              with the text part ``done: <the whole text>``.
``slow <ms>`` WORKING at once (a ``returnImmediately`` send returns it);
              after ``<ms>`` milliseconds the same artifact, then COMPLETED.
``ask``       INPUT_REQUIRED with a status message (role agent, a fresh
              ``messageId``) saying ``What is your name?``. A follow-up
              message on the task (``taskId``) completes it with the
              artifact text ``hello <answer>``.
``ask2``      Like ``ask`` but two questions: after the first answer,
              INPUT_REQUIRED again with ``What is your quest?``; after the
              second, COMPLETED with ``hello <answer 1> / <answer 2>``.
``stream``    WORKING, then three artifact updates of artifact ``stream``
              about 100 ms apart: ``chunk-1 `` (append false), ``chunk-2 ``
              (append true), ``chunk-3`` (append true, lastChunk true); then
              COMPLETED.
``hang``      WORKING until canceled; ``CancelTask`` makes it CANCELED.
``fail``      FAILED with the status message ``failed on purpose``.

The log (``--log``) gets one JSON object per line:

* ``{"event": "request", "method", "task_id", "message_id",
  "idempotency_key", "text"}`` per message received (send, stream or a
  follow-up; ``idempotency_key`` is the ``Idempotency-Key`` header or null,
  ``text`` the first text part);
* ``{"event": "task_created", "task_id", "message_id"}`` per new task;
* ``{"event": "canceled", "task_id"}`` per task canceled;
* ``{"event": "push", "url", "status", "state"}`` per push delivered
  (``status``: the receiver's HTTP status; ``state``: the state pushed).
"""
