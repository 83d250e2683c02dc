"""The Python code of README.md and of the user guide runs as written, on tiny models and data,
and the user guide's cross-references lead to pages of the API reference.

Each page's blocks run in order in one namespace (later blocks use names of earlier ones), in a
folder that holds the files they name (``my_pretrained.pt``, ``my_atlas_gradients.csv``, a
``derivatives/`` corpus, the research checkpoint's file names). Only the sizes are shrunk:
``BrainJEPAPretrainer`` defaults to a one-block model, 32-frame windows and one epoch, the
published weights are the 24-region test checkpoint, and the few values a block spells out
that would be heavy are replaced (each replacement must still find its text, so that a block
edited later is not silently left unshrunk).
"""

import re
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import brainjepa_sk
from brainjepa_sk.datasets import make_brain_dynamics

ROOT = Path(__file__).parents[1]
TINY = {"embed_dim": 32, "depth": 1, "num_heads": 2}
N_SUBJECTS = 20
N_REGIONS = 40  # the default GradientPositioner needs at least 32 (30 components)

# Blocks that cannot run here, by a text they hold, and why.
SKIPPED = {
    "fetch_atlas_brainjepa450()": "downloads the atlases and needs BOLD images",
}
# (page, text in the block, replacement): values a block spells out that would be heavy here.
SHRINK = [
    ("README.md", 'model_size="tiny"', "model_size=TINY"),
    ("README.md", "n_frames=160", "n_frames=32"),
    ("README.md", "n_epochs=50", "n_epochs=1"),
    ("README.md", "cv=5", "cv=2"),
    ("README.md", "torch.randn(2, 160, 450)", "torch.randn(2, 40, 24)"),  # the test checkpoint
    ("README.md", 'gradients="gradient_mapping_450.csv")',
     'gradients="gradient_mapping_450.csv", num_heads=4)'),
    ("README.md", "torch.randn(64, 160, 100)", "torch.randn(64, 32, 100)"),
    ("README.md", "n_patches=10", "n_patches=2"),
    ("docs/user_guide/finetuning.rst", "max_epochs=20", "max_epochs=1"),
    ("docs/user_guide/finetuning.rst", "cv=5", "cv=2"),
    ("docs/user_guide/finetuning.rst", '"max_epochs": [10, 20]', '"max_epochs": [1, 2]'),
    ("docs/user_guide/gradients.rst", "cv=5", "cv=2"),
    ("docs/user_guide/preprocessing.rst", "Preprocessor(160,", "Preprocessor(32,"),
    ("docs/user_guide/preprocessing.rst", "stride=80", "stride=16"),
    ("docs/user_guide/pretraining.rst", 'model_size="small"', "model_size=TINY"),
    ("docs/user_guide/pretraining.rst", "n_frames=160", "n_frames=32"),
    ("docs/user_guide/pretraining.rst", "n_epochs=100", "n_epochs=1"),
    ("docs/user_guide/scale.rst", 'model_size="base"', "model_size=TINY"),
    ("docs/user_guide/scale.rst", "n_frames=160", "n_frames=32"),
    ("docs/user_guide/scale.rst", "num_workers=4", "num_workers=0"),
]


def _blocks(page):
    """The Python code blocks of a page, in order."""
    text = (ROOT / page).read_text()
    if page.endswith(".md"):
        return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)
    blocks = []
    for match in re.finditer(r"^( *)\.\. code-block:: python\n((?:\1   .*\n|[ \t]*\n)+)",
                             text, flags=re.M):
        blocks.append(textwrap.dedent(match.group(2)))
    return blocks


# the pages with Python blocks
PAGES = [page for page in ["README.md", *sorted(path.relative_to(ROOT).as_posix() for path
                                                 in (ROOT / "docs" / "user_guide").glob("*.rst"))]
         if _blocks(page)]
_PRETRAINER = brainjepa_sk.BrainJEPAPretrainer


class BrainJEPAPretrainer(_PRETRAINER):
    """The pretrainer with tiny defaults (same name: ``make_pipeline`` names its step by it)."""

    def __init__(self, gradients=None, *, model_size=TINY, predictor_depth=1, n_frames=32,
                 n_epochs=1, verbose=0, **params):
        super().__init__(gradients, model_size=model_size, predictor_depth=predictor_depth,
                         n_frames=n_frames, n_epochs=n_epochs, verbose=verbose, **params)

    @classmethod
    def _get_param_names(cls):  # scikit-learn reads them from __init__, which takes **params
        return _PRETRAINER._get_param_names()


def _fetch_abide_pcp(derivatives=None, n_subjects=None, **kwargs):
    """nilearn's ABIDE fetcher without the download: one subject each of NYU, PITT, SBL, CMU's
    2.0 s sample and LEUVEN_1 (no common TR), 40 to 56 frames of 8 regions."""
    from sklearn.utils import Bunch

    sites = ["NYU", "PITT", "SBL", "CMU", "LEUVEN_1"]
    samples = ["NYU", "Pitt", "SBL", "CMU_a", "Leuven_1"]
    rng = np.random.default_rng(0)
    phenotypic = pd.DataFrame({
        "SUB_ID": range(50001, 50006),
        "FILE_ID": [f"{sample}_00{50001 + i}" for i, sample in enumerate(samples)],
        "SITE_ID": sites,
        "DX_GROUP": [1, 2, 1, 2, 1],
        "AGE_AT_SCAN": [12.0, 14.5, 20.0, 25.0, 30.0],
        "SEX": [1, 2, 1, 1, 2],
    })
    series = [rng.standard_normal((40 + 4 * i, 8)) for i in range(len(sites))]
    return Bunch(description="", phenotypic=phenotypic, **{derivatives[0]: series})


@pytest.fixture
def doc_folder(tmp_path, monkeypatch, official_dir):
    """A working folder with the files the blocks name, and the subjects ``X``, ``y``."""
    from conftest import use_local_ukbiobank

    use_local_ukbiobank(monkeypatch, official_dir)  # the 24-region test checkpoint
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(brainjepa_sk, "BrainJEPAPretrainer", BrainJEPAPretrainer)
    monkeypatch.setattr("nilearn.datasets.fetch_abide_pcp", _fetch_abide_pcp)
    X, y = make_brain_dynamics(n_subjects=N_SUBJECTS, n_timepoints=64, n_regions=N_REGIONS,
                               random_state=0)
    BrainJEPAPretrainer(random_state=0).fit(X).save("my_pretrained.pt")
    np.savetxt("my_atlas_gradients.csv", np.random.default_rng(0).normal(size=(N_REGIONS, 5)),
               delimiter=",")
    for i, x in enumerate(X[:6]):
        folder = Path(f"derivatives/sub-{i:02d}/func")
        folder.mkdir(parents=True)
        np.save(folder / f"sub-{i:02d}_timeseries.npy", x.astype("float32"))
        # with a header of region names, as fMRIPrep and XCP-D write them
        pd.DataFrame(x, columns=[f"roi{j}" for j in range(N_REGIONS)]).to_csv(
            folder / f"sub-{i:02d}_timeseries.tsv", sep="\t", index=False)
    shutil.copy(official_dir / "checkpoint.pth.tar", "jepa-ep300.pth.tar")
    shutil.copy(official_dir / "gradient.csv", "gradient_mapping_450.csv")
    return X, y["group"].to_numpy()


def test_the_pages_have_python_blocks():
    assert len(_blocks("README.md")) >= 3
    assert len(PAGES) >= 8
    assert sum(len(_blocks(page)) for page in PAGES) >= 20


@pytest.mark.parametrize("page", PAGES)
def test_the_python_blocks_of_a_page_run(page, doc_folder):
    X, y = doc_folder
    blocks = _blocks(page)
    namespace = {"TINY": TINY, "path": "my_pretrained.pt"}
    for find, replace in [(f, r) for p, f, r in SHRINK if p == page]:
        assert any(find in block for block in blocks), f"{page} no longer holds {find!r}"
        blocks = [block.replace(find, replace) for block in blocks]
    for number, block in enumerate(blocks):
        if any(text in block for text in SKIPPED):
            continue
        # the published weights' blocks take the test checkpoint's 24 regions
        published = "BrainJEPAEmbedder(t_r" in block or "jepa-ep300" in block
        namespace.update(X=[x[:, :24] for x in X] if published else X, y=y)
        try:
            exec(compile(block, f"{page}, Python block {number + 1}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"{page}, Python block {number + 1} failed:\n{block}") from error


def _api_entries():
    """The dotted names docs/api.rst documents: its ``automodule`` modules and the entries of
    its ``autosummary`` tables, under their ``currentmodule``."""
    entries, module = set(), None
    for line in (ROOT / "docs" / "api.rst").read_text().splitlines():
        if match := re.match(r"\.\. (currentmodule|automodule):: (\S+)", line):
            module = match.group(2)
            if match.group(1) == "automodule":
                entries.add(module)
        elif module and (match := re.fullmatch(r"   ([A-Za-z_][\w.]*)", line)):
            entries.add(f"{module}.{match.group(1)}")
    return entries


def _resolve(target):
    """The object a dotted name names (a module, then attributes)."""
    import importlib

    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:end]))
        except ImportError:
            continue
        for part in parts[end:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(target)


def test_the_functions_and_classes_of_the_api_reference_are_in_their_modules_all():
    """What docs/api.rst documents as a module's function or class is in that module's
    ``__all__`` (``peek_training_state`` and ``worker_context`` were not: ``from
    brainjepa_sk.train.callbacks import *`` left them out)."""
    import importlib
    import inspect

    left_out = []
    for entry in _api_entries():
        parent, name = entry.rsplit(".", 1)
        try:
            module = importlib.import_module(parent)
        except ImportError:  # a class's member
            continue
        if not inspect.ismodule(getattr(module, name)) and name not in getattr(
                module, "__all__", [name]):
            left_out.append(entry)
    assert sorted(left_out) == []


def test_the_references_of_the_pages_are_in_the_api_reference():
    """Every ``:mod:``, ``:class:``, ``:func:``, ``:meth:`` or ``:exc:`` target of the user guide
    names an object of the package that docs/api.rst documents (itself, or the class or module
    it belongs to): a target missing there renders as plain text, not as a link."""
    entries = _api_entries()
    pages = [ROOT / "docs" / "index.rst", *(ROOT / "docs" / "user_guide").glob("*.rst")]
    missing, checked = [], 0
    for page in pages:
        for target in re.findall(r":(?:mod|class|func|meth|exc|attr):`(?:[^`<]*<)?~?([^`>]+)>?`",
                                 page.read_text()):
            _resolve(target)  # raises for a name that does not exist
            parts = target.split(".")
            if not any(".".join(parts[:end]) in entries for end in range(len(parts), 1, -1)):
                missing.append(f"{page.name}: {target}")
            checked += 1
    assert missing == []
    assert checked >= 40


def test_the_public_functions_and_classes_are_in_the_api_reference():
    """Each function or class in the ``__all__`` of a public module has a page in docs/api.rst
    (under that module, or the package or subpackage that exports it): four region checks of
    ``brainjepa_sk.validation`` and ``brainjepa_sk.files.is_path`` had none."""
    import importlib
    import inspect

    entries = _api_entries()
    documented = {entry.rsplit(".", 1)[-1] for entry in entries}
    missing = []
    for module_name in ["brainjepa_sk", "brainjepa_sk.nn", "brainjepa_sk.nn.masking",
                        "brainjepa_sk.train", "brainjepa_sk.checkpoint",
                        "brainjepa_sk.datasets", "brainjepa_sk.preprocessing",
                        "brainjepa_sk.gradients", "brainjepa_sk.files",
                        "brainjepa_sk.validation", "brainjepa_sk.finetune"]:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and name not in documented:
                missing.append(f"{module_name}.{name}")
    assert missing == []
