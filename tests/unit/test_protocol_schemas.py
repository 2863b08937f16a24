"""protocols/a2a-1.0/ and protocols/a2a-0.3/ hold exactly what the models generate."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_node.a2a.protocol.schemas import (
    SCHEMA_DIR,
    SCHEMA_DIR_V03,
    SCHEMA_MODELS,
    SCHEMA_SETS,
    generate_schemas,
    render,
    write_schemas,
)

PROTOCOLS = Path(__file__).parents[2] / "protocols"
HOW_TO_FIX = (
    "run `python -m agent_node.a2a.protocol.schemas --write protocols/` and commit the result"
)


def test_both_protocol_versions_have_a_folder() -> None:
    assert set(SCHEMA_SETS) == {SCHEMA_DIR, SCHEMA_DIR_V03} == {"a2a-1.0", "a2a-0.3"}
    assert SCHEMA_SETS[SCHEMA_DIR] == SCHEMA_MODELS
    assert generate_schemas() == generate_schemas(SCHEMA_DIR)


@pytest.mark.parametrize("folder", sorted(SCHEMA_SETS))
def test_schema_files_match_the_models(folder: str) -> None:
    on_disk = {
        p.name: p.read_text(encoding="utf-8") for p in (PROTOCOLS / folder).glob("*.schema.json")
    }
    expected = {f"{name}.schema.json": render(s) for name, s in generate_schemas(folder).items()}
    assert sorted(on_disk) == sorted(expected), f"{folder}: schema files differ; {HOW_TO_FIX}"
    drifted = sorted(name for name in expected if on_disk[name] != expected[name])
    assert not drifted, f"{folder}: schemas drifted from the models: {drifted}; {HOW_TO_FIX}"


@pytest.mark.parametrize("folder", sorted(SCHEMA_SETS))
def test_write_schemas_replaces_stale_files(tmp_path: Path, folder: str) -> None:
    stale = tmp_path / folder / "Gone.schema.json"
    stale.parent.mkdir()
    stale.write_text("{}\n")
    written = write_schemas(tmp_path)
    assert not stale.exists()
    assert {p.relative_to(tmp_path).as_posix() for p in written} == {
        f"{name}/{model}.schema.json" for name in SCHEMA_SETS for model in generate_schemas(name)
    }
    assert all(p.read_text().endswith("}\n") for p in written)
