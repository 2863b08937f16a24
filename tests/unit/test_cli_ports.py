"""The ports commands take by default are no example's: `agent-node ui` or
`agent-node demo` started while an example runs must find theirs free. And
the examples' READMEs call their agents where those listen."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from agent_node.cli.demo import demo
from agent_node.cli.ui import DEFAULT_PORT

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def listening() -> dict[Path, int]:
    """Each example configuration's listen port."""
    found = {}
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        text = yaml.safe_load(path.read_text(encoding="utf-8"))
        port = isinstance(text, dict) and (text.get("listen") or {}).get("port")
        if port:
            found[path.relative_to(EXAMPLES)] = int(port)
    return found


def test_no_example_listens_where_the_ui_or_the_demo_do() -> None:
    [first] = [param.default for param in demo.params if param.name == "port"]
    assert isinstance(first, int)
    the_demos = set(range(first, first + 3))  # the coordinator's, then its two peers'
    ports = listening()
    assert len(ports) >= 8, ports  # the examples were read
    clashing = {
        str(path): port
        for path, port in ports.items()
        if port == DEFAULT_PORT or (port in the_demos and path.parts[0] != "network")
    }
    assert clashing == {}  # examples/network is the demo's own network


def test_the_readmes_call_the_ports_their_agents_listen_on() -> None:
    ports = listening()
    for example in ("auth", "delegation", "network"):
        readme = (EXAMPLES / example / "README.md").read_text(encoding="utf-8")
        called = {int(port) for port in re.findall(r"//localhost:(\d+)/", readme)}
        served = {port for path, port in ports.items() if path.parts[0] == example}
        assert called and called <= served, (example, called, served)
