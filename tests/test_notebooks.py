"""The worked analyses in ``notebooks/`` run from top to bottom, on the public API only.

Each is a jupytext percent file (readable diffs, no stored outputs); the test
reads it into a notebook and runs every cell in a fresh kernel (nbclient). A
cell that raises fails the suite, and each notebook checks its own findings
with ``assert`` (the planted hot spots found, the proposal balanced, the
review's headline equal to the CLI's).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.py"))


def test_there_are_the_three_studies():
    assert [p.stem for p in NOTEBOOKS] == ["hotspot_study", "rebalancing_study", "weekly_review"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_uses_only_the_public_api(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# ---\n# jupyter:") and "format_name: percent" in text
    private = re.findall(r"from gis_grid[\w.]* import [^\n]*\b_\w+|gis_grid(?:\.\w+)*\._\w+", text)
    assert not private, private
    assert "# %% [markdown]" in text  # it explains itself, not only code


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_runs_from_top_to_bottom(path, tmp_path, monkeypatch):
    import jupytext
    import nbclient

    monkeypatch.delenv("GIS_GRID_STORE", raising=False)
    notebook = jupytext.read(path)
    assert len(notebook.cells) >= 6
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, when one fails
    errors = [
        o for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]  # fmt: skip
    assert not errors
