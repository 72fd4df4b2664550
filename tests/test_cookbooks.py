"""The cookbook notebooks run, print nothing unasked, and their stored outputs are still fresh.

Regenerate the stored outputs with ``python cookbooks/run_notebooks.py`` after a change that
alters them; this test then passes again.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

COOKBOOKS = Path(__file__).resolve().parents[1] / "cookbooks"
# Beyond the package's extras, from the "test" dependency group (skipped, with why, if absent).
NEEDS = {
    "langchain_late_interaction.ipynb": ["langchain_classic"],
    "llamaindex_late_interaction.ipynb": ["llama_index.retrievers.bm25"],
}
_spec = importlib.util.spec_from_file_location("run_notebooks", COOKBOOKS / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_notebooks)


@pytest.mark.notebook
@pytest.mark.parametrize("path", run_notebooks.NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_are_fresh_and_quiet(path):
    for module in NEEDS.get(path.name, []):
        pytest.importorskip(module, reason=f"{path.name} imports {module} (test dependency group)")
    stored = nbformat.read(path, as_version=4)
    printing = [c for c in stored.cells if c.cell_type == "code" and "print(" in c.source]
    assert printing and all(c.get("outputs") for c in printing)  # committed with outputs
    fresh = run_notebooks.execute(path)
    assert run_notebooks.noise(fresh) == []
    assert run_notebooks.stale(stored, fresh, atol=0.02) == [], (
        "stored outputs are stale: run python cookbooks/run_notebooks.py"
    )
