"""Import references: modules, files, and what each failure says."""

from __future__ import annotations

import asyncio
import json
import os.path
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_node.errors import ConfigError
from agent_node.workflow.refs import import_object


@pytest.fixture
def clean_modules(tmp_path: Path) -> Iterator[None]:
    """Forget the modules a test loaded from its own directory."""
    path = list(sys.path)
    yield
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path.resolve())):
            del sys.modules[name]
    assert sys.path == path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_module_reference() -> None:
    assert import_object("json:dumps") is json.dumps
    assert import_object("os.path:join") is os.path.join


def test_dotted_attribute() -> None:
    assert import_object("json:JSONDecoder.decode") is json.JSONDecoder.decode


def test_file_reference_is_loaded_once(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "steps.py", "MARKER = object()\n")
    first = import_object("steps.py:MARKER", base_dir=tmp_path)
    again = import_object(f"{tmp_path / 'steps.py'}:MARKER")
    assert first is again


def test_file_reference_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_modules: None
) -> None:
    write(tmp_path / "sub" / "flow.py", "VALUE = 42\n")
    monkeypatch.chdir(tmp_path)
    assert import_object("./sub/flow.py:VALUE") == 42


def test_file_can_import_its_siblings(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "refs_sibling_helper.py", "def twice(x):\n    return 2 * x\n")
    write(tmp_path / "main.py", "from refs_sibling_helper import twice\nRESULT = twice(21)\n")
    assert import_object("main.py:RESULT", base_dir=tmp_path) == 42
    assert str(tmp_path) not in sys.path


def test_module_name_is_found_next_to_base_dir_first(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "json.py", "dumps = 'local'\n")
    assert import_object("json:dumps", base_dir=tmp_path) == "local"
    assert import_object("json:dumps") is json.dumps


def test_package_next_to_base_dir(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "refs_test_pkg" / "__init__.py", "")
    write(tmp_path / "refs_test_pkg" / "util.py", "VALUE = 'one'\n")
    write(tmp_path / "refs_test_pkg" / "steps.py", "from .util import VALUE\n")
    assert import_object("refs_test_pkg.steps:VALUE", base_dir=tmp_path) == "one"


@pytest.mark.parametrize(
    ("ref", "fragment"),
    [
        ("no_colon_here", "bad import reference 'no_colon_here'"),
        (":attr", "bad import reference"),
        ("json:", "bad import reference"),
        ("1bad:thing", "'1bad' is not a module name"),
        ("json:1x", "'1x' is not an attribute path"),
        ("agent_node_no_such_module:f", "no module named 'agent_node_no_such_module'"),
        ("json:no_such_function", "module has no attribute 'no_such_function'"),
        ("json:JSONDecoder.nope", "module has no attribute 'JSONDecoder.nope'"),
    ],
)
def test_errors_name_the_ref_and_the_problem(ref: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        import_object(ref)
    assert fragment in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        import_object("missing.py:f", base_dir=tmp_path)


def test_exception_while_importing(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "broken.py", "raise RuntimeError('boom')\n")
    for _ in range(2):  # a failed module is not cached half-imported
        with pytest.raises(ConfigError, match="raised RuntimeError: boom"):
            import_object("broken.py:f", base_dir=tmp_path)


def test_import_error_inside_a_module(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "needs.py", "import agent_node_missing_dependency\n")
    with pytest.raises(ConfigError, match="agent_node_missing_dependency"):
        import_object("needs:f", base_dir=tmp_path)


def test_syntax_error_in_file(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "bad_syntax.py", "def f(:\n")
    with pytest.raises(ConfigError, match="SyntaxError"):
        import_object("bad_syntax.py:f", base_dir=tmp_path)


# -- a module imported for a definition does not run its example ------------------

SCRIPT = """
from pydantic import BaseModel
from agent_node import Workflow

wf = Workflow("script-example", version="1", store="memory://")

@wf.state
class State(BaseModel):
    n: int = 0

@wf.step
async def bump(state: State) -> dict:
    return {"n": state.n + 1}

RAN = []
"""


def test_a_top_level_run_ends_the_module_there(tmp_path: Path, clean_modules: None) -> None:
    code = "try:\n    result = wf.run_sync(State())\nexcept Exception:\n    RAN.append('caught')\n"
    write(tmp_path / "script.py", SCRIPT + code + "RAN.append('after')\n")
    wf = import_object("script.py:wf", base_dir=tmp_path)
    ran = import_object("script.py:RAN", base_dir=tmp_path)
    assert ran == []  # neither the run, nor the user's except, nor what follows
    assert import_object("script.py:wf", base_dir=tmp_path) is wf  # executed once
    assert wf.compile().key == "script-example@1"
    with pytest.raises(ConfigError, match=r"no attribute 'result' \(its top-level code stops at"):
        import_object("script.py:result", base_dir=tmp_path)


def test_runs_stopped_under_a_running_loop(tmp_path: Path, clean_modules: None) -> None:
    """As when a worker or ``signal`` loads a script: an event loop runs here,
    and the script's own ``asyncio.run`` starts anyway, then stops at the run."""
    code = (
        "import asyncio\n"
        "async def main():\n"
        "    await wf.run(State())\n"
        "asyncio.run(main())\n"
        "RAN.append('after')\n"
    )
    write(tmp_path / "async_script.py", SCRIPT + code)

    async def load() -> object:
        return import_object("async_script.py:RAN", base_dir=tmp_path)

    assert asyncio.run(load()) == []


def test_a_runtime_started_at_top_level_is_stopped(tmp_path: Path, clean_modules: None) -> None:
    code = (
        "import asyncio\n"
        "from agent_node import Runtime\n"
        "async def main():\n"
        "    async with Runtime('memory://') as rt:\n"
        "        RAN.append(await rt.run(wf.compile(), State()))\n"
        "asyncio.run(main())\n"
    )
    write(tmp_path / "runtime_script.py", SCRIPT + code)
    assert import_object("runtime_script.py:RAN", base_dir=tmp_path) == []


def test_a_script_imported_by_the_module_named_is_refused_clearly(
    tmp_path: Path, clean_modules: None
) -> None:
    write(tmp_path / "refs_script_inner.py", SCRIPT + "wf.run_sync(State())\n")
    write(tmp_path / "outer.py", "from refs_script_inner import wf\n")
    message = (
        r"importing '.*outer.py' stopped at .*refs_script_inner.py:\d+: module"
        r" 'refs_script_inner' runs a workflow at its top level"
    )
    with pytest.raises(ConfigError, match=message):
        import_object("outer.py:wf", base_dir=tmp_path)
    assert import_object("refs_script_inner:RAN", base_dir=tmp_path) == []


def test_nothing_is_refused_outside_an_import(tmp_path: Path, clean_modules: None) -> None:
    write(tmp_path / "defs.py", SCRIPT)
    wf = import_object("defs.py:wf", base_dir=tmp_path)
    state_model = wf.compile().state_model
    assert wf.run_sync(state_model()).state.n == 1
