"""examples/quickstart.ipynb runs top to bottom in a real kernel, as a new user would run it.

It runs headless (nbclient) with a home folder and git configuration of its own: no global
or system git identity, so the notebook must set up its scratch repository by itself.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs nbformat, nbclient and ipykernel")
nbclient = pytest.importorskip("nbclient", reason="needs nbformat, nbclient and ipykernel")
pytest.importorskip("ipykernel", reason="needs nbformat, nbclient and ipykernel")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The quickstart, run once top to bottom in a real kernel on a bare machine: a home
    without any git configuration, which the kernel inherits. Both tests read its outputs."""
    folder = tmp_path_factory.mktemp("quickstart")
    home = folder / "home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "no-gitconfig"))
        monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
        for name in list(os.environ):
            if name.startswith(("GIT_AUTHOR_", "GIT_COMMITTER_")) or name in (
                "EMAIL",
                "TREEFORK_HOME",
            ):
                monkeypatch.delenv(name)
        notebook = nbformat.read(NOTEBOOK, as_version=4)
        client = nbclient.NotebookClient(
            notebook,
            timeout=90,
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
            extra_arguments=[f"--HistoryManager.hist_file={folder / 'history.sqlite'}"],
        )
        client.execute()  # raises CellExecutionError on the first failing cell
    return notebook


def _text(cell: dict[str, object]) -> str:
    outputs = cell.get("outputs") or []
    return "".join(str(output.get("text", "")) for output in outputs)  # type: ignore[union-attr]


def test_quickstart_runs_without_errors_and_merges_twice(executed: Any) -> None:
    notebook = executed
    printed = "\n".join(_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "question: Merge treefork/" in printed
    assert printed.count("merged - merged into main") == 2
    assert "[api] agent ops: succeeded" in printed
    assert "all tests passed: True | status: succeeded" in printed
    assert "report.html" in printed
    assert sys.executable  # the kernel is this interpreter's (ipykernel's own kernel spec)


def test_quickstart_shows_rich_html_and_prints_no_warning(executed: Any) -> None:
    notebook = executed
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    html = [output["data"]["text/html"] for output in outputs if "text/html" in output.get("data", {})]
    assert any('class="treefork-job"' in page and "succeeded" in page for page in html)
    assert any(page.startswith("<iframe srcdoc=") and "timeline" in page for page in html)
    # The progress table: one display per run, updated in place (no widget library).
    def progress_tables(cell: Any) -> list[Any]:
        return [
            o for o in cell.get("outputs", [])
            if o.get("output_type") == "display_data"
            and o.get("data", {}).get("text/plain") == "progress"
        ]  # fmt: skip

    per_cell = [len(progress_tables(c)) for c in notebook.cells if c.cell_type == "code"]
    assert sum(per_cell) >= 2 and max(per_cell) == 1, per_cell  # one table per run, updated
    finished = [t for c in notebook.cells for t in progress_tables(c)]
    assert all("treefork job" in t["data"]["text/html"] for t in finished)
    assert any(">succeeded<" in t["data"]["text/html"] for t in finished)
    stderr = [output.get("text", "") for output in outputs if output.get("name") == "stderr"]
    assert stderr == [], stderr  # no warning of any kind
