"""Node configuration: defaults, paths relative to the file, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_node.config import load_config
from agent_node.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "agent-node.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_paths_and_overrides(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "name: n1\nskills:\n  - {id: a, workflow: flows/a.yaml}\n"
            "  - {id: b, workflow: steps.py:wf}\n  - {id: c, workflow: pkg.mod:wf}\n",
        )
    )
    assert (config.listen.host, config.listen.port, config.store) == ("127.0.0.1", 8470, None)
    assert config.url == "http://127.0.0.1:8470"
    a, b, c = config.skills
    assert config.workflow_ref(a) == str((tmp_path / "conf/flows/a.yaml").resolve())
    assert config.workflow_ref(b) == f"{(tmp_path / 'conf/steps.py').resolve()}:wf"
    assert config.workflow_ref(c) == "pkg.mod:wf"
    moved = config.with_overrides(host="::1", port=9000, store="memory://")
    assert (moved.url, moved.store) == ("http://[::1]:9000", "memory://")
    public = config.model_copy(update={"public_url": "https://agents.example.org/"})
    assert public.url == "https://agents.example.org"
    assert config.card_source().name == "n1"  # no card source: the node's name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: bad name\n", "field 'name'"),
        ("- a list\n", "expected a mapping at the top, not list"),
        ("name: n\nlisten: {port: 70000}\n", "field 'listen.port'"),
        (
            "name: n\nskills:\n  - {id: a, workflow: x, default: true}\n"
            "  - {id: b, workflow: y, default: true}\n",
            "at most one skill can be the default",
        ),
        (
            "name: n\nskills: [{id: a, workflow: x}]\npolicy: {skills: {b: ['*']}}\n",
            "policy.skills names skills this node lacks: b",
        ),
        (
            "name: n\nlimits: {max_header: 3}\n",
            "field 'limits.max_header': unknown field 'max_header' (did you mean 'max_headers'?)",
        ),
        ("name: n\nlimits: {max_concurrent_per_caller: -1}\n", "limits.max_concurrent_per_caller"),
        ("name: n\npolicy: {operators: ['']}\n", "is not an identity or glob"),
        # A bare number is no age: read as seconds, it deleted today's work.
        ("name: n\nretention: {finished: 30}\n", "not an age with its unit: 30"),
        ("name: n\nretention: {finished: '30'}\n", "(write '30d'"),
    ],
)
def test_mistakes_name_the_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)


def test_a_missing_file_says_how_to_give_or_make_one(tmp_path: Path) -> None:
    absent = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(absent)
    assert str(caught.value) == (
        f"{absent}: cannot read it: No such file or directory"
        " (pass --config FILE, or make one with `agent-node init NAME`)"
    )


def test_a_missing_card_source_names_the_field(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "name: n\ncard: cards/greter.yaml\n"))
    with pytest.raises(ConfigError) as caught:
        config.card_source()
    card = tmp_path / "conf" / "cards" / "greter.yaml"
    assert str(caught.value) == f"field 'card': {card}: cannot read it: No such file or directory"


def test_a_card_source_mistake_names_the_field_and_says_unknown_field(tmp_path: Path) -> None:
    path = write(tmp_path, "name: n\ncard: card.yaml\n")
    (path.parent / "card.yaml").write_text("name: n\ndescription: d\niconurl: y\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path).card_source()
    assert str(caught.value) == (
        f"field 'card': {path.parent / 'card.yaml'}: line 3: field 'iconurl':"
        " unknown field 'iconurl' (did you mean 'iconUrl'?)"
    )


def test_flags_mistakes_name_the_field_without_pydantic_urls(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "name: n\n"))
    with pytest.raises(ConfigError) as caught:
        config.with_overrides(port=70000)
    assert str(caught.value) == (
        "listen (from the flags): port: Input should be less than or equal to 65535"
    )


def test_every_mistake_is_shown_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: n\n"
        "listen: {host: 127.0.0.1, port: 70000}\n"
        "polcy:\n"
        "  callers: ['*']\n"
        "skills:\n"
        "  - {id: a, workflow: x, defualt: true}\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).splitlines() == [
        f"{path}: 3 mistakes:",
        "  line 2: field 'listen.port': Input should be less than or equal to 65535",
        "  line 3: field 'polcy': unknown field 'polcy' (did you mean 'policy'?)",
        "  line 6: field 'skills[0].defualt': unknown field 'defualt' (did you mean 'default'?)",
    ]


def test_many_mistakes_are_counted_after_the_first_ten(tmp_path: Path) -> None:
    path = write(tmp_path, "name: n\n" + "".join(f"typo{i}: 1\n" for i in range(12)))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path}: 12 mistakes:"
    assert lines[1] == "  line 2: field 'typo0': unknown field 'typo0'"
    assert lines[-1] == "  and 2 more" and len(lines) == 12
