"""``agent-node doctor`` checks the models a node's workflows call, no other,
and every piece of advice it prints can be followed as printed: a flag it
names belongs to the command it names. Against real components: the
examples, a fake Ollama on loopback, a bound port, a fresh PostgreSQL."""

from __future__ import annotations

import re
import shlex
import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from support.fake_ollama import MODEL, serving
from support.ports import free_port

from agent_node.cli.main import cli
from agent_node.security import pki

ROOT = Path(__file__).resolve().parents[2]

#: A model node on the default model and a judge naming its own: both are called.
JUDGED = """\
workflow:
  id: judged
  version: "1"
  start: draft
  state_schema: {type: object, properties: {text: {type: string, default: ""}}}
nodes:
  draft: {type: model, prompt: "Write.", output: text, next: review}
  review:
    type: eval
    scorers: [{type: llm_judge, rubric: "Good?", input: "{{ state.text }}", model: "JUDGE"}]
    next: done
  done: {type: end}
"""

CONFIG = """\
name: judged
listen: {{host: 127.0.0.1, port: {port}}}
store: sqlite:///{store}
skills: [{{id: judge, workflow: {workflow}}}]
{models}"""


def node(tmp_path: Path, *, judge: str, models: str = "", port: int = 0) -> Path:
    """A node with one skill (``JUDGED``, its judge on ``judge``)."""
    workflow = tmp_path / "judged.yaml"
    workflow.write_text(JUDGED.replace("JUDGE", judge))
    config = tmp_path / "agent-node.yaml"
    text = CONFIG.format(
        port=port or free_port(), store=tmp_path / "n.db", workflow=workflow, models=models
    )
    config.write_text(text)
    return config


def doctor(monkeypatch: pytest.MonkeyPatch, ollama: str, *args: str) -> Result:
    monkeypatch.setenv("OLLAMA_API_BASE", ollama)
    monkeypatch.delenv("AGENT_NODE_MODEL", raising=False)
    return CliRunner().invoke(cli, ["doctor", *args])


def checks(result: Result) -> list[tuple[str, str, str]]:
    """(mark, name, line) of each check printed."""
    found = []
    for line in result.output.splitlines():
        mark, name, said = line.split(maxsplit=2)
        if mark in ("ok", "skip", "warn", "FAIL"):
            found.append((mark, name, said))
    return found


def closed() -> str:
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    "example", ["examples/greeter/agent-node.yaml", "examples/delegation/worker.yaml"]
)
def test_a_node_without_models_needs_no_model_backend(
    monkeypatch: pytest.MonkeyPatch, example: str
) -> None:
    result = doctor(monkeypatch, closed(), "--config", str(ROOT / example))
    found = {name: (mark, said) for mark, name, said in checks(result)}
    assert found["model"] == ("skip", "no workflow of this node calls a model"), result.output
    # The example's fixed port may be taken on this machine: that alone may fail.
    assert result.exit_code == (0 if found["port"][0] == "ok" else 1), result.output


def test_without_a_configuration_no_model_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = doctor(monkeypatch, closed())
    assert result.exit_code == 0, result.output
    assert ("skip", "model", "no configuration read, so no workflow calls a model") in checks(
        result
    )


def test_each_model_the_workflows_call_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = node(tmp_path, judge="ollama_chat/qwen3:0.6b")
    with serving() as ollama:
        result = doctor(monkeypatch, ollama.url, "--config", str(config))
    assert result.exit_code == 1, result.output
    models = [(mark, said) for mark, name, said in checks(result) if name == "model"]
    assert models == [
        ("ok", f"ollama_chat/{MODEL} at Ollama {ollama.url}"),  # the model node's, by default
        (
            "FAIL",
            f"ollama_chat/qwen3:0.6b: Ollama at {ollama.url} does not have it:"
            " `ollama pull qwen3:0.6b`",
        ),
    ]


def test_an_unreachable_model_fails_saying_where_it_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = node(tmp_path, judge="ollama_chat/qwen3:0.6b")
    nothing = closed()
    result = doctor(monkeypatch, nothing, "--config", str(config))
    assert result.exit_code == 1, result.output
    default, judge = [said for mark, name, said in checks(result) if name == "model"]
    assert default.startswith(f"ollama_chat/{MODEL}: no Ollama answers at {nothing}")
    assert default.endswith(
        f"models.default: scripted/echo in {config} (or AGENT_NODE_MODEL=scripted/echo)"
    )
    assert judge.endswith("model: scripted/echo on judge/review's llm_judge (skill/node)")


def test_a_workflow_that_does_not_load_fails_the_model_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = node(tmp_path, judge="x")
    (tmp_path / "judged.yaml").write_text("workflow: {id: broken}\n")
    result = doctor(monkeypatch, closed(), "--config", str(config))
    assert result.exit_code == 1
    [(mark, said)] = [(mark, said) for mark, name, said in checks(result) if name == "model"]
    assert mark == "FAIL" and said.startswith("skill 'judge': ") and "calls is unknown" in said


def test_every_hint_names_flags_of_the_command_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = node(tmp_path, judge="ollama_chat/qwen3:0.6b", port=taken.getsockname()[1])
        result = doctor(monkeypatch, closed(), "--config", str(config))
    found = checks(result)
    hints = {name: said for mark, name, said in found if mark in ("warn", "FAIL")}
    assert set(hints) == {"certificates", "model", "port"}, result.output
    assert "`agent-node serve --config" in hints["port"] and "--port PORT`" in hints["port"]
    assert "--insecure-dev`" in hints["certificates"]
    named = [command for _, _, said in found for command in commands_in(said)]
    assert len(named) >= 5, named  # serve twice, certs init and issue, serve --port
    for command in named:
        assert_flags_exist(command)
    assert "--model" not in result.output  # doctor has none


def test_following_the_certificate_advice_mends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki.init_ca(tmp_path / "certs")
    config = node(tmp_path, judge="scripted/echo", models="models: {default: scripted/echo}\n")
    tls = "tls: {cert: certs/helper.pem, key: certs/helper-key.pem, trust: [certs/ca.pem]}\n"
    config.write_text(config.read_text() + tls)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # not where the certificates are
    before = doctor(monkeypatch, closed(), "--config", str(config))
    [said] = [said for mark, name, said in checks(before) if name == "certificates"]
    [advice] = commands_in(said)
    certs = str(tmp_path / "certs")
    assert advice == ["agent-node", "certs", "issue", "helper", "--dir", certs, "--force"]
    assert CliRunner().invoke(cli, advice[1:]).exit_code == 0
    after = doctor(monkeypatch, closed(), "--config", str(config))
    assert after.exit_code == 0, after.output
    assert [mark for mark, _, _ in checks(after)] == ["ok"] * 5  # python, store, certs, model, port


def test_a_database_without_tables_is_a_store_to_be(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    result = doctor(monkeypatch, closed(), "--store", pg_url)
    assert result.exit_code == 0, result.output
    [store] = [(mark, said) for mark, name, said in checks(result) if name == "store"]
    assert store == ("ok", f"{pg_url}: no tables yet; the first run or serve makes them")


def commands_in(line: str) -> list[list[str]]:
    """The ``agent-node …`` commands quoted in ``line``."""
    quoted = [shlex.split(text) for text in re.findall(r"`([^`]+)`", line)]
    return [words for words in quoted if words and words[0] == "agent-node"]


def assert_flags_exist(words: list[str]) -> None:
    """Each ``--flag`` of ``words`` is an option of the (sub)command they name."""
    command: click.Command = cli
    ctx = click.Context(cli)
    rest = words[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest.pop(0))
        assert sub is not None, words
        command = sub
    options = {opt for param in command.params for opt in param.opts + param.secondary_opts}
    unknown = [word for word in rest if word.startswith("--") and word not in options]
    assert unknown == [], f"{shlex.join(words)}: no {unknown}"


def test_a_checks_line_shows_what_a_server_said_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    # A model server's words (an error's reason phrase) reach a check's line:
    # they cannot set the terminal's title or write its clipboard.
    from agent_node.cli.checks import Check
    from agent_node.cli.doctor import print_checks

    said = "no Ollama answers (500 \x1b]0;owned\x07\x1b]52;c;aGk=\x07\x9b)"
    assert not print_checks([Check("model", "fail", said)])
    out = capsys.readouterr().out
    assert "\x1b]" not in out and "\x07" not in out and "\x9b" not in out
    assert "(500 \\x1b]0;owned\\x07\\x1b]52;c;aGk=\\x07\\x9b)" in out
