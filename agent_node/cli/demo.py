"""``agent-node demo``: three agents answer one question, over A2A and mutual TLS.

The coordinator delegates research to the researcher and writing to the
writer, judges the draft, and asks the writer for one revision when the
judge scores it low (``examples/network/``). Each agent is its own process
(:mod:`agent_node.demo.network`); this command asks the question as a client
with its own certificate, shows every agent's steps as they happen
(:mod:`.demo_view`), prints the answer and the timeline, and stops the
agents — on Ctrl-C too. Run again, it resumes a question left unanswered or
starts fresh, as the user chooses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from agent_node.errors import AgentNodeError

from .common import handle_errors, run_async
from .invoked import command_name, shown_path
from .render import make_console, model_usage, plain

if TYPE_CHECKING:
    from agent_node.demo.network import Network

__all__ = ["DEFAULT_QUESTION", "demo"]

DEFAULT_QUESTION = "Why do AI agents that delegate to other agents need durable workflows?"
_A2A = {"A2A-Version": "1.0"}


@click.command()
@click.option(
    "--question",
    "-q",
    default=DEFAULT_QUESTION,
    show_default=True,
    help="The question to ask (given, it is asked even if an earlier one is unanswered).",
)
@click.option(
    "--offline", is_flag=True, help="Use the offline scripted model, even if Ollama answers."
)
@click.option(
    "--model",
    default="llama3.2:1b",
    show_default=True,
    help="The model (of Ollama, or of the --api-base server).",
)
@click.option(
    "--api-base",
    default=None,
    metavar="URL",
    help="An OpenAI-compatible server to use instead of Ollama (llama.cpp's"
    " llama-server, LM Studio, vLLM): its base URL, e.g. http://localhost:8080/v1.",
)
@click.option(
    "--ollama",
    "ollama_url",
    default=None,
    metavar="URL",
    help="Ollama's URL [default: $OLLAMA_API_BASE, else http://localhost:11434].",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".agent-node/demo"),
    show_default=True,
    help="Where the agents' certificates, configurations and stores go.",
)
@click.option(
    "--network",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The network's files [default: examples/network].",
)
@click.option(
    "--port",
    type=int,
    default=8501,
    show_default=True,
    help="The coordinator's port; the researcher and writer take the next two.",
)
@click.option("--fresh", "mode", flag_value="fresh", help="Forget earlier runs: new stores.")
@click.option("--resume", "mode", flag_value="resume", help="Finish a question left unanswered.")
@click.option(
    "--live/--no-live",
    default=None,
    help="Redraw one table in place [default: when the output is a terminal].",
)
@click.option(
    "--pace",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Each scripted answer takes this long [default: 0.3 live, else 0].",
)
@handle_errors
def demo(
    question: str,
    offline: bool,
    model: str,
    api_base: str | None,
    ollama_url: str | None,
    home: Path,
    network: Path | None,
    port: int,
    mode: str | None,
    live: bool | None,
    pace: float | None,
) -> None:
    """Run a network of three agents here and ask it one question.

    A coordinator, a researcher and a writer, each its own process with its
    own certificate (from a dev CA made on first use), Agent Card and SQLite
    store, talking A2A over mutual TLS. Uses Ollama when it answers, else an
    offline scripted model, and says which. Ctrl-C stops all three.
    """
    console = make_console()
    shown_live = console.is_terminal if live is None else live
    options = _Options(question, offline, model, ollama_url, home, network, port, mode)
    options.api_base = api_base
    source = click.get_current_context().get_parameter_source("question")
    options.new_question = source is not ParameterSource.DEFAULT
    options.live, options.pace = (
        shown_live,
        pace if pace is not None else (0.3 if shown_live else 0),
    )
    try:
        run_async(_demo(options, console))
    except KeyboardInterrupt:
        console.print(
            "\n[yellow]stopped[/]: the three agents are down. Run"
            f" `{escape(command_name())} demo` again to resume where they stopped, or"
            f" `{escape(command_name())} demo --fresh` to start over."
        )
        raise click.exceptions.Exit(130) from None


@dataclass
class _Options:
    question: str
    offline: bool
    model: str
    ollama: str | None
    home: Path
    network: Path | None
    port: int
    #: "fresh", "resume", or None: resume an unanswered question if the user agrees.
    mode: str | None
    live: bool = False
    pace: float = 0.0
    #: --question was given: ask it, even with an unanswered question left.
    new_question: bool = False
    #: --api-base: an OpenAI-compatible server instead of Ollama.
    api_base: str | None = None


async def _demo(options: _Options, console: Console) -> None:
    import httpx

    from agent_node.demo.models import choose_model
    from agent_node.demo.network import Network, find_network

    choice = await choose_model(
        offline=options.offline, model=options.model, base=options.ollama, api_base=options.api_base
    )
    style = "bold yellow" if choice.offline else "bold green"
    console.print(f"[{style}]model:[/] {choice.note}")
    if choice.offline and not options.offline and options.api_base is None:
        # What Ollama needs, as `doctor` says it, by this command's flags.
        from .checks import ModelAdvice, check_model
        from .doctor import print_checks

        demo = f"{command_name()} demo"
        advice = ModelAdvice(
            ollama_at=f"give `{demo} --ollama URL` where it runs",
            without=f"`{demo} --offline`",
        )
        print_checks([check_model(f"ollama_chat/{options.model}", options.ollama, advice)])
    net = Network(
        options.home,
        find_network(options.network),
        model=choice.model,
        port=options.port,
        api_base=choice.api_base,
    )
    question, resume = await _what_to_ask(net, options, console)
    began = time.perf_counter()  # the answer's time: not the prompt's, nor Ollama's probe
    # A coordinator with an unfinished task resumes it as it starts: its peers
    # must listen by then, or its first calls fail. Otherwise all three start
    # at once (a second each saved).
    last = net.last_run
    peers_first = (
        options.mode != "fresh"
        and bool(last)
        and await _unfinished(net, str(last.get("task") if last else ""))
    )
    net.prepare(fresh=options.mode == "fresh")
    net.check_ports()
    env = {"AGENT_NODE_SCRIPTED_DELAY": str(options.pace)}
    if choice.ollama:
        env["OLLAMA_API_BASE"] = choice.ollama
    console.print(f"starting coordinator, researcher and writer (mTLS, {net.home}) …")
    try:
        await net.start(env, peers_first=peers_first)
        await _ask_and_show(net, options, console, question, resume, began)
    except httpx.HTTPError as exc:
        raise AgentNodeError(
            f"the demo lost touch with the agents: {exc}. {net.casualties()}"
        ) from None
    finally:
        await net.stop()


async def _what_to_ask(net: Network, options: _Options, console: Console) -> tuple[str, str | None]:
    """The question, and the task to resume (None: ask anew)."""
    last = net.last_run
    if options.mode == "fresh" or not last:
        return options.question, None
    unfinished = await _unfinished(net, str(last.get("task")))
    if not unfinished:
        if options.mode == "resume":
            console.print("nothing to resume: the last question was answered; asking anew")
        return options.question, None
    asked = str(last.get("question"))
    if options.new_question and options.mode != "resume" and options.question != asked:
        console.print(
            f"asking your question; the earlier, unanswered one ({asked!r}) is not"
            " followed: the agents finish it in the background"
        )
        return options.question, None
    if options.mode is None and console.is_terminal:
        if not click.confirm(
            f"An earlier run stopped before answering {asked!r}. Resume it?", default=True
        ):
            options.mode = "fresh"
            return options.question, None
    console.print(plain(f"resuming the question {asked!r} (task {last['task']})"))
    return asked, str(last["task"])


async def _unfinished(net: Network, task: str) -> bool:
    from agent_node.store import TERMINAL

    from .common import open_store

    if not net.has_tasks():
        return False
    async with open_store(net.agents["coordinator"].store) as store:
        record = await store.get(task)
    return record is not None and record.status not in TERMINAL


async def _ask_and_show(
    net: Network,
    options: _Options,
    console: Console,
    question: str,
    resume: str | None,
    began: float,
) -> None:
    from agent_node.a2a.peers.client import http_client
    from agent_node.security.tls import client_context

    from .demo_text import LiveText, read_text
    from .demo_view import Watcher, follow, steps_table

    cert, key, ca = net.user_files()
    text = LiveText()
    async with http_client(client_context(cert, key, [ca]), timeout=30.0) as http:
        coordinator = net.agents["coordinator"].url
        task_id = resume or await _send(http, coordinator, question)
        net.remember(question, task_id)
        console.print(Text.assemble(("question: ", "bold"), plain(question)))
        console.print(plain(f"coordinator task {task_id}", "dim"))
        urls = {name: agent.url for name, agent in net.agents.items()}
        watcher = Watcher(http, urls, task_id)
        reading = asyncio.create_task(read_text(http, coordinator, task_id, text))
        try:
            steps = await follow(
                watcher, console, live=options.live, title="what the agents do", text=text
            )
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
        task = await _rpc(http, coordinator, "GetTask", {"id": task_id})
    took = time.perf_counter() - began
    if not options.live:
        console.print(steps_table(steps, "timeline across the three agents"))
    _show_answer(console, task, watcher.status, took)
    if text.first_at is not None:
        console.print(f"first text seen after {text.first_at - began:.1f} s", style="dim")
    runs = [step.run for step in steps]
    counted = any((run.extra.get("usage") or {}).get("total_tokens") for run in runs)
    if counted:  # the scripted model counts no tokens
        console.print(f"model calls across the three agents: {model_usage(runs)}")
    _show_next(console, net, task_id)


async def _send(http: Any, url: str, question: str) -> str:
    message = {
        "messageId": str(uuid.uuid4()),
        "role": "ROLE_USER",
        "parts": [{"text": question}],
        "metadata": {"skill": "answer"},
    }
    params = {"message": message, "configuration": {"returnImmediately": True}}
    result = await _rpc(http, url, "SendMessage", params)
    task_id: str = result["task"]["id"]
    return task_id


async def _rpc(http: Any, url: str, method: str, params: dict[str, Any]) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    answer = (await http.post(f"{url}/a2a", json=body, headers=_A2A)).json()
    if "error" in answer:
        raise AgentNodeError(f"the coordinator refused {method}: {answer['error'].get('message')}")
    return answer["result"]


def _show_answer(console: Console, task: dict[str, Any], status: str, took: float) -> None:
    parts = [p for a in task.get("artifacts") or [] for p in a.get("parts") or []]
    reply = next((p["text"] for p in parts if isinstance(p.get("text"), str)), None)
    verdict = next(
        (p["data"].get("verdict") for p in parts if isinstance(p.get("data"), dict)), None
    )
    if status != "completed" or reply is None:
        said = (task.get("status") or {}).get("message") or {}
        why = " ".join(p.get("text", "") for p in said.get("parts") or [])
        console.print(Text.assemble((f"the coordinator's task {status} ", "bold red"), plain(why)))
        raise click.exceptions.Exit(1)
    judged = ""
    if isinstance(verdict, dict):
        marks = [f"{s['name']} {s['score']:.2f}" for s in verdict.get("scores", [])]
        judged = (
            f"judge: {'passed' if verdict.get('passed') else 'not passed'} ({', '.join(marks)})"
        )
    subtitle = plain(judged) if judged else None
    console.print(Panel(plain(reply, lines=True), title="answer", subtitle=subtitle, expand=False))
    console.print(f"answered in {took:.1f} s")


def _show_next(console: Console, net: Network, task_id: str) -> None:
    from agent_node.demo.network import USER

    coordinator = net.agents["coordinator"]
    cert, key, ca = (shown_path(path) for path in net.user_files())
    ask = (
        '{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {"message":'
        ' {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "Why do tides happen?"}]}}}'
    )
    store = f"sqlite:///{shown_path(coordinator.config.with_suffix('.db'))}"
    program = escape(command_name())
    serve = [f"    {program} serve --config {shown_path(a.config)}\n" for a in net.agents.values()]
    # The coordinator's configuration names the other two as its peers: the
    # page shows all three, as the user (an operator of each).
    ui = (
        f"    {program} ui --config {shown_path(coordinator.config)}"
        f" --cert-dir {shown_path(net.certs)} --identity {USER}\n"
    )
    console.print(
        "\n[bold]next[/]\n"
        "  the coordinator's timeline, with each delegation, score and model call:\n"
        f"    {program} inspect {task_id} --store {store}\n"
        "  run the agents by hand, one terminal each:\n"
        + "".join(serve)
        + "  then see them in your browser (tasks, delegations, questions to answer),"
        " at the address it prints:\n"
        + ui
        + "  and ask the coordinator yourself (as the demo's user certificate):\n"
        f"    curl -s --cacert {ca} --cert {cert} --key {key} {coordinator.url}/a2a"
        f" -H 'A2A-Version: 1.0' -H 'Content-Type: application/json' -d '{ask}'\n"
        f"  the network's files, explained: {shown_path(net.source / 'README.md')}",
        highlight=False,
        soft_wrap=True,
    )
