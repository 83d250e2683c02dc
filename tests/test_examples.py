"""The gallery examples run (headless, quickly) as part of the test suite."""

import runpy
from pathlib import Path

import pytest

# Examples that pretrain a model take tens of seconds each; the documentation build (make docs,
# run by CI) executes them all, so the default test run keeps only the quick ones.
_SLOW = {"plot_pretraining.py", "plot_phenotype_prediction.py", "plot_embeddings_2d.py"}
EXAMPLES = [
    pytest.param(path, id=path.name, marks=[pytest.mark.slow] if path.name in _SLOW else [])
    for path in sorted((Path(__file__).parents[1] / "examples").glob("plot_*.py"))
]


@pytest.mark.parametrize("path", EXAMPLES)
def test_example_runs(path, monkeypatch, tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(path), run_name="__main__")
    import matplotlib.pyplot as plt

    assert plt.get_fignums(), "the example drew no figure"
    plt.close("all")
