"""Import references: modules, files, and what each failure says."""

from __future__ import annotations

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
