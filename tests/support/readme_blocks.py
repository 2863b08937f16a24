"""The README's Python examples, as the tests that run or type-check them read them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_block(section: str) -> str:
    """The first ``python`` code block under the README's ``## section``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"## {re.escape(section)}\s+.*?```python\n(.*?)```", readme, re.S)
    assert found is not None, f"README.md has no python block under '## {section}'"
    return found.group(1)
