"""protocols/a2a-1.0/ holds exactly what the models generate."""

from __future__ import annotations

from pathlib import Path

from agent_node.a2a.schemas import SCHEMA_DIR, generate_schemas, render, write_schemas

PROTOCOLS = Path(__file__).parents[2] / "protocols"
HOW_TO_FIX = "run `python -m agent_node.a2a.schemas --write protocols/` and commit the result"


def test_schema_files_match_the_models() -> None:
    folder = PROTOCOLS / SCHEMA_DIR
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.schema.json")}
    expected = {f"{name}.schema.json": render(s) for name, s in generate_schemas().items()}
    assert sorted(on_disk) == sorted(expected), f"schema files differ; {HOW_TO_FIX}"
    drifted = sorted(name for name in expected if on_disk[name] != expected[name])
    assert not drifted, f"schemas drifted from the models: {drifted}; {HOW_TO_FIX}"


def test_write_schemas_replaces_stale_files(tmp_path: Path) -> None:
    stale = tmp_path / SCHEMA_DIR / "Gone.schema.json"
    stale.parent.mkdir()
    stale.write_text("{}\n")
    written = write_schemas(tmp_path)
    assert not stale.exists()
    assert {p.name for p in written} == {f"{n}.schema.json" for n in generate_schemas()}
    assert all(p.read_text().endswith("}\n") for p in written)
