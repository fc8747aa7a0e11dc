"""The generated spec and docs page of every registered machine match its table.

DESIGN.md: "Each machine is exported to `specs/machines/<name>.json` and drawn as a Mermaid
diagram in `docs/`; a test fails when the export drifts from the table." This runs the same
functions as `scripts/export_machines.py` (loaded from its file, no subprocess). When a test here
fails, run `.venv/bin/python scripts/export_machines.py` and commit the result.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from mcp_core.core.machines._fsm import mermaid
from mcp_core.core.machines.registry import MACHINES
from mcp_core.core.machines.session import TABLE, SessionState

from .machine_testing import assert_spec_file_matches_table, assert_text_file_is

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "export_machines.py"


@pytest.fixture(scope="module")
def exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_machines", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_registered_machine_export_drifted(exporter: ModuleType) -> None:
    assert exporter.drift(ROOT) == [], "run .venv/bin/python scripts/export_machines.py"


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_generated_files_are_current(exporter: ModuleType, name: str) -> None:
    expected = exporter.expected_files()
    for relative in (Path("specs/machines") / f"{name}.json", Path("docs/machines") / f"{name}.md"):
        assert_text_file_is(ROOT / relative, expected[relative])


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_spec_file_holds_what_the_machine_exports(name: str) -> None:
    spec = json.loads((ROOT / "specs" / "machines" / f"{name}.json").read_text("utf-8"))
    assert spec == MACHINES[name]()


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_registry_name_is_the_exported_machine_name(name: str) -> None:
    assert MACHINES[name]()["machine"] == name


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_doc_page_draws_the_diagram_from_the_table(name: str) -> None:
    page = (ROOT / "docs" / "machines" / f"{name}.md").read_text("utf-8")
    assert f"```mermaid\n{mermaid(MACHINES[name]())}```\n" in page


def test_session_spec_file_matches_the_session_table() -> None:
    assert_spec_file_matches_table(
        ROOT / "specs" / "machines" / "session.json",
        "session",
        SessionState,
        SessionState.NEW,
        TABLE,
    )


def test_every_machine_module_is_registered() -> None:
    registered = {spec_function.__module__ for spec_function in MACHINES.values()}
    folder = ROOT / "core" / "machines"
    modules = {
        f"mcp_core.core.machines.{path.stem}"
        for path in folder.glob("*.py")
        if not path.name.startswith("_") and path.stem != "registry"
    }
    missing = sorted(modules - registered)
    assert not missing, f"add these machines to core/machines/registry.py: {missing}"


def test_check_mode_names_missing_files_and_fails(
    exporter: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exporter.main(["--check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    for name in MACHINES:
        assert f"specs/machines/{name}.json: missing" in out
        assert f"docs/machines/{name}.md: missing" in out


def test_check_mode_passes_after_writing(exporter: ModuleType, tmp_path: Path) -> None:
    assert exporter.main(["--root", str(tmp_path)]) == 0
    assert exporter.main(["--check", "--root", str(tmp_path)]) == 0
    # Writing again changes nothing.
    assert exporter.write(tmp_path) == []


def test_check_mode_names_edited_and_stale_files(
    exporter: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exporter.main(["--root", str(tmp_path)])
    capsys.readouterr()
    (tmp_path / "specs" / "machines" / "session.json").write_text("{}\n", "utf-8")
    (tmp_path / "docs" / "machines" / "gone.md").write_text("# old\n", "utf-8")
    assert exporter.main(["--check", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "specs/machines/session.json: differs from the table" in out
    assert "docs/machines/gone.md: stale" in out
