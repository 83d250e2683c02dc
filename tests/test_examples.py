"""The gallery examples run (headless, quickly) as part of the test suite."""

import runpy
from pathlib import Path

import pytest

# Examples that pretrain a model take tens of seconds each; the documentation build (make docs,
# run by CI) executes them all, so the default test run keeps only the quick ones.
_SLOW = {"plot_pretraining.py", "plot_phenotype_prediction.py", "plot_embeddings_2d.py",
         "plot_finetuning.py", "plot_readouts.py"}
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


def _run_edited(name, line, edited, monkeypatch, tmp_path, more_edits=()):
    """Run the example ``name`` with its ``line`` replaced by ``edited`` (headless), and each
    ``(line, edited)`` pair of ``more_edits`` too; its namespace."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    source = (Path(__file__).parents[1] / "examples" / name).read_text()
    for old, new in [(line, edited), *more_edits]:
        assert old in source
        source = source.replace(old, new)
    script = tmp_path / name
    script.write_text(source)
    monkeypatch.chdir(tmp_path)
    return runpy.run_path(str(script), run_name="__main__")


@pytest.mark.parametrize("grid", ["100, 6, 1", "7, 2, 2", "450, 10, 4"])
def test_the_masks_example_runs_on_other_grids_and_sample_counts(grid, monkeypatch, tmp_path):
    """Its regions, patches and samples are one line to change, one sample included."""
    namespace = _run_edited("plot_spatiotemporal_masks.py",
                            "n_regions, n_patches, n_samples = 100, 10, 3\n",
                            f"n_regions, n_patches, n_samples = {grid}\n", monkeypatch, tmp_path)
    import matplotlib.pyplot as plt

    n_regions, n_patches, n_samples = (int(size) for size in grid.split(", "))
    assert namespace["grid"].shape == (n_samples, n_regions, n_patches)
    assert len(plt.gcf().axes) == n_samples  # one panel a sample
    plt.close("all")


def test_the_gradients_example_runs_on_another_schaefer_atlas(monkeypatch, tmp_path):
    """Its atlas is one line to change: the matrix, the communities and the labels follow."""
    namespace = _run_edited("plot_gradients.py", "n_regions = 400  #", "n_regions = 200  #",
                            monkeypatch, tmp_path)
    import matplotlib.pyplot as plt

    assert namespace["gradients"].shape == (200, 30)
    assert namespace["communities"].shape == (200,)
    first = plt.figure(plt.get_fignums()[0])
    assert first.axes[0].get_title() == "Schaefer-200 regions, gradient 1 vs 2"
    plt.close("all")


def test_the_phenotype_example_holds_out_whole_sites(monkeypatch, tmp_path):
    """Its folds are the simulated scanner sites: no test subject shares a site with a training
    subject, and every site is held out once, for every feature set and both phenotypes."""
    import sklearn.model_selection

    cross_val_score = sklearn.model_selection.cross_val_score
    splits = []

    def recording_cross_val_score(estimator, X, y=None, *, groups=None, cv=None, **kwargs):
        splits.append(list(cv.split(X, y, groups)))
        return cross_val_score(estimator, X, y, groups=groups, cv=cv, **kwargs)

    monkeypatch.setattr(sklearn.model_selection, "cross_val_score", recording_cross_val_score)
    # the same subjects and sites, smaller scans and one pretraining epoch: the folds, not the
    # scores, are under test
    namespace = _run_edited("plot_phenotype_prediction.py", "n_epochs=8,", "n_epochs=1,",
                            monkeypatch, tmp_path, more_edits=[(
                                "n_timepoints=200, n_regions=100,",
                                "n_timepoints=100, n_regions=40,")])
    import matplotlib.pyplot as plt

    plt.close("all")
    sites = namespace["y"]["site"].to_numpy()
    assert len(splits) == 3 * 2  # (mean, roi, tangent FC) x (group, age)
    for folds in splits:
        held_out = []
        for train, test in folds:
            assert len(set(sites[test])) == 1
            assert set(sites[test]).isdisjoint(sites[train])
            held_out.append(sites[test][0])
        assert sorted(held_out) == [0, 1, 2]
    # the cost it gives for refitting the pretrainer in every fold (a nested evaluation)
    source = (Path(__file__).parents[1] / "examples" / "plot_phenotype_prediction.py").read_text()
    assert "it is refitted in every fold, at three times the cost" in source


def test_demo_runs_end_to_end_on_a_tiny_cohort(tmp_path, capsys):
    """``make demo``'s script, shrunk: every method is scored and the figure is written."""
    pytest.importorskip("matplotlib")
    demo = runpy.run_path(str(Path(__file__).parents[1] / "examples" / "demo.py"))
    figure = tmp_path / "demo.png"
    demo["main"]([
        "--n-subjects", "20", "--n-timepoints", "100", "--n-regions", "40",
        "--n-epochs", "2", "--warmup-epochs", "1", "--n-random", "2", "--output", str(figure),
    ])
    out = capsys.readouterr().out
    for method in ("Brain-JEPA, roi_std before final norm", "random encoder (2 draws), mean",
                   "gradient features", "tangent FC", "regional power spectra"):
        assert method in out
    assert figure.stat().st_size > 10_000
