"""Every notebook runs top to bottom (papermill), with small sizes injected into its
``parameters`` cell so that each takes seconds; notebooks are committed without outputs.

Notebooks import the package and never re-implement a formula; executing them
here keeps them in step with the code.
"""

from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

SMALL = {
    "01_definitions_saturation_depth_trace": dict(depth=3, width=16, seq_len=8, seeds=2, batch=1),
    "02_variance_approximation": dict(widths=[16, 32], depth=3, seq_len=8, seeds=[0, 1], batch=1, layers=[0, 1]),
    "03_stability_across_depth": dict(depth=4, width=16, seq_len=8, seeds=2, meanfield_depth=3, jacobian_depth=3,
                                      probes=4),
    "04_trained_regime": dict(preset="quick", schemes=["rmsnorm", "bhyt"], seeds=[0, 1], steps=10),
    "05_efficiency_and_claims": dict(width=16, heads=2, seq_len=4, batch=1, rounds=2, compute_missing=False),
}


def test_every_notebook_has_small_sizes_here():
    assert {path.stem for path in NOTEBOOKS} == set(SMALL)


CLOSING_HEADING = "## What this run showed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_closes_with_findings_computed_from_the_run(path):
    """The closing note is produced by code from the run's numbers, not written in advance:
    a heading, then one code cell that renders Markdown; no markdown cell follows the heading."""
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not any(cell.get("outputs") or cell.get("execution_count") for cell in code), "commit without outputs"
    assert sum("parameters" in cell.metadata.get("tags", []) for cell in code) == 1
    heading, closing = notebook.cells[-2:]
    assert heading.cell_type == "markdown" and heading.source.startswith(CLOSING_HEADING)
    assert closing.cell_type == "code" and "Markdown(" in closing.source
    assert not any(CLOSING_HEADING in cell.source or "What the plots showed" in cell.source
                   for cell in notebook.cells[:-2])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_with_small_sizes(path, tmp_path):
    parameters = dict(SMALL[path.stem])
    if "compute_missing" in parameters:
        parameters["results_folder"] = str(tmp_path / "results")
    papermill.execute_notebook(str(path), str(tmp_path / path.name), parameters=parameters, kernel_name="python3",
                               cwd=str(path.parent), progress_bar=False, execution_timeout=120)
    executed = nbformat.read(tmp_path / path.name, as_version=4)
    closing = [output.get("data", {}).get("text/markdown", "") for output in executed.cells[-1].outputs]
    assert any(text.startswith("- ") for text in closing), "the closing cell renders the run's findings"
