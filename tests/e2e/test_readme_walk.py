"""The README's commands, in order, as a new user runs them on a fresh clone.

Every shell block of README.md up to its benchmarks, then those of
examples/delegation/README.md, walked as :mod:`support.readme_walk` says
(what ``init`` prints as its next steps included), with a fake Ollama on
loopback for the agents ``init`` makes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.fake_ollama import serving, text
from support.readme_walk import ROOT, Walk, shell_blocks, walking

pytestmark = pytest.mark.slow


@pytest.fixture
def walk(tmp_path: Path) -> Iterator[Walk]:
    with walking(tmp_path) as walked:
        yield walked


def test_the_readme_and_the_delegation_example_in_order(walk: Walk) -> None:
    readme = shell_blocks(ROOT / "README.md", stop="## Performance")
    delegation = shell_blocks(ROOT / "examples" / "delegation" / "README.md")
    with serving(default=text("Hello from a model.")) as ollama:
        for block in readme:
            # The demo finds no Ollama (and says so); the agents `init` makes use this one.
            if "init my-agent" in block:
                walk.env["OLLAMA_API_BASE"] = ollama.url
            walk.run_block(block)
        for block in delegation:
            walk.run_block(block)
        walk.stop_servers()
    assert any(" init my-agent" in ran for ran in walk.ran)
    assert any("certs issue me --dir certs" in ran for ran in walk.ran)  # init's hint
    assert any("delegation/caller.yaml" in ran for ran in walk.ran)
    assert walk.ran[-1].split()[1:3] == ["events", walk.task_id]
    assert ollama.chats(), "the new agent did not ask its model"
