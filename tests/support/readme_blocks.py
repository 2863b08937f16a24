"""The README's code examples, as the tests that run, compile or type-check them read them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_block(section: str) -> str:
    """The first ``python`` code block under the README's ``## section``."""
    return _block(section, "python")


def yaml_block(section: str) -> str:
    """The first ``yaml`` code block under the README's ``## section``."""
    return _block(section, "yaml")


def _block(section: str, language: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"## {re.escape(section)}\s+.*?```{language}\n(.*?)```", readme, re.S)
    assert found is not None, f"README.md has no {language} block under '## {section}'"
    return found.group(1)
