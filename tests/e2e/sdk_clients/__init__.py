"""The official a2a-sdk clients (Python, 1.x and 0.3.x) against our node.

``client_v1.py`` and ``client_v03.py`` are drivers: each runs in a cached venv
holding one a2a-sdk release (:data:`e2e.venvs.SDK_CLIENTS`), performs every
operation its generation's client offers against a node, and prints a report
(``common.py``, standard library only). :mod:`.runs` starts the node and runs a
driver five times; ``tests/e2e/test_a2a_sdk_client.py`` and
``test_a2a_sdk_v03.py`` assert on every report.
"""
