"""``agent-node doctor`` against real components: a fake Ollama on loopback,
certificates from the dev PKI, SQLite stores and a bound port."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.fake_ollama import MODEL, serving
from support.ports import free_port

from agent_node.cli.main import cli
from agent_node.security import pki

CONFIG = """\
name: helper
listen: {{host: 127.0.0.1, port: {port}}}
store: sqlite:///{store}
tls: {{cert: certs/{name}.pem, key: certs/{name}-key.pem, trust: [certs/ca.pem]}}
peers:
  - {{name: other, url: "https://127.0.0.1:1", identity: "spiffe://example.org/agent/other"}}
models: {{default: "{model}"}}
skills: [{{id: answer, workflow: answer.yaml}}]
"""
#: A workflow that calls the default model: what doctor checks the model of.
WORKFLOW = """\
workflow:
  id: answer
  version: "1"
  start: ask
  state_schema: {type: object, properties: {text: {type: string}, answer: {type: string}}}
nodes:
  ask: {type: model, prompt: "{{ state.text }}", output: answer, next: done}
  done: {type: end}
"""


def setup(
    tmp_path: Path, *, name: str = "helper", model: str = f"ollama_chat/{MODEL}", port: int = 0
) -> Path:
    certs = tmp_path / "certs"
    if not (certs / "ca.pem").exists():
        pki.init_ca(certs)
        pki.issue(certs, "helper")
    config = tmp_path / "agent-node.yaml"
    (tmp_path / "answer.yaml").write_text(WORKFLOW)
    store = tmp_path / "state" / "helper.db"
    config.write_text(CONFIG.format(port=port or free_port(), store=store, name=name, model=model))
    return config


def doctor(config: Path, monkeypatch: pytest.MonkeyPatch, ollama: str) -> Result:
    monkeypatch.setenv("OLLAMA_API_BASE", ollama)
    return CliRunner().invoke(cli, ["doctor", "--config", str(config)])


def lines(result: Result) -> dict[str, str]:
    """Each check's line, by its name: 'ok …', 'FAIL …'."""
    found = {}
    for line in result.output.splitlines():
        mark, name, said = line.split(maxsplit=2)
        found[name] = f"{mark} {said}"
    return found


def test_a_working_setup_is_all_ok(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(tmp_path)
    with serving() as ollama:
        result = doctor(config, monkeypatch, ollama.url)
    assert result.exit_code == 0, result.output
    found = lines(result)
    assert list(found) == ["python", "store", "certificates", "model", "port"]
    assert all(line.startswith("ok ") for line in found.values()), found
    assert "none yet; the first run or serve creates it" in found["store"]
    assert found["certificates"].startswith("ok spiffe://example.org/agent/helper, valid until")
    assert found["model"] == f"ok ollama_chat/{MODEL} at Ollama {ollama.url}"


def test_each_problem_is_one_line_saying_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = setup(tmp_path, port=port)
        nothing = f"http://127.0.0.1:{free_port()}"
        result = doctor(config, monkeypatch, nothing)
    assert result.exit_code == 1, result.output
    found = lines(result)
    assert found["model"].startswith(f"FAIL ollama_chat/{MODEL}: no Ollama answers at {nothing}")
    assert "`ollama serve`" in found["model"] and "scripted/echo" in found["model"]
    assert found["port"].startswith(f"FAIL 127.0.0.1:{port} is taken")
    assert "--port" in found["port"]
    assert found["certificates"].startswith("ok ")


def test_a_model_ollama_lacks_is_pulled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(tmp_path, model="ollama_chat/qwen3:0.6b")
    with serving() as ollama:
        found = lines(doctor(config, monkeypatch, ollama.url))
    assert found["model"] == (
        f"FAIL ollama_chat/qwen3:0.6b: Ollama at {ollama.url} does not have it:"
        " `ollama pull qwen3:0.6b`"
    )


@pytest.mark.parametrize("case", ["expired", "other domain", "missing", "another CA"])
def test_certificate_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    certs = tmp_path / "certs"
    pki.init_ca(certs)
    name = "helper"
    if case == "expired":
        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        pki.issue(certs, "helper", days=1, not_before=past)
        expected = "certs/helper.pem expired on"
    elif case == "other domain":
        pki.init_ca(tmp_path / "acme", trust_domain="acme.test")
        pki.issue(tmp_path / "acme", "helper")
        for file in ("helper.pem", "helper-key.pem"):
            (certs / file).write_bytes((tmp_path / "acme" / file).read_bytes())
        (certs / "ca.pem").write_bytes((tmp_path / "acme" / "ca.pem").read_bytes())
        expected = "names spiffe://acme.test/agent/helper, but the configuration's peers and policy"
    elif case == "missing":
        name = "nobody"
        expected = "certs/nobody.pem is missing"
    else:
        pki.init_ca(tmp_path / "rogue")
        pki.issue(tmp_path / "rogue", "helper")
        for file in ("helper.pem", "helper-key.pem"):
            (certs / file).write_bytes((tmp_path / "rogue" / file).read_bytes())
        expected = "certs/helper.pem was not issued by a CA of the trust bundle"
    config = setup(tmp_path, name=name, model="scripted/echo")
    result = doctor(config, monkeypatch, "http://127.0.0.1:1")
    assert result.exit_code == 1, result.output
    said = lines(result)["certificates"]
    assert said.startswith("FAIL ") and expected in said, said
    assert f"certs issue {name} --dir {certs} --force" in said  # the one to issue again


def test_a_bad_store_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = setup(tmp_path, model="scripted/echo")
    result = CliRunner().invoke(cli, ["doctor", "--config", str(config), "--store", "redis://x"])
    assert result.exit_code == 1
    assert lines(result)["store"].startswith("FAIL redis://x: unsupported store URL")


def test_init_says_what_its_agent_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nothing = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("OLLAMA_API_BASE", nothing)
    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(cli, ["init", "helper"])
    assert made.exit_code == 0, made.output
    [line] = [line for line in made.output.splitlines() if line.startswith("FAIL")]
    assert f"no Ollama answers at {nothing}" in line
    offline = CliRunner().invoke(cli, ["init", "quiet", "--model", "scripted/echo"])
    assert offline.exit_code == 0 and "FAIL" not in offline.output
