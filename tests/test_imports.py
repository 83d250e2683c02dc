"""Import-time properties: a pure-torch model layer, optional heavy imports, no side effects."""

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "brainjepa_sk"


def test_nn_and_train_are_pure_torch():
    paths = [*(PACKAGE / "nn").glob("*.py"), *(PACKAGE / "train").glob("*.py")]
    assert len(paths) > 10
    for path in paths:
        source = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+(sklearn|skorch|nilearn|brainspace|pandas)",
                             source, re.M), path.name
        assert ".cuda()" not in source, path.name


def test_package_imports_without_brainspace_nilearn_and_skorch():
    # e.g. on a bare GPU image: they are imported only by the code that uses them
    code = (
        "import sys\n"
        "for name in ('brainspace', 'nilearn', 'skorch'):\n"
        "    sys.modules[name] = None\n"
        "import torch\n"
        "state = torch.random.get_rng_state()\n"
        "import brainjepa_sk, brainjepa_sk.nn, brainjepa_sk.train, brainjepa_sk.checkpoint\n"
        "import brainjepa_sk.datasets\n"
        "assert torch.equal(state, torch.random.get_rng_state())  # no seeding at import\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


def test_the_model_layers_import_without_scikit_learn_or_pandas():
    """nn/ and train/ are pure torch at run time too: importing them (through the package)
    loads neither scikit-learn nor pandas; the estimators load them when first used."""
    code = (
        "import sys\n"
        "import brainjepa_sk.nn, brainjepa_sk.train\n"
        "assert not {'sklearn', 'pandas'} & set(sys.modules), sorted(sys.modules)\n"
        "from brainjepa_sk import BrainJEPAEmbedder\n"
        "assert 'sklearn' in sys.modules\n"
        "import brainjepa_sk\n"  # the submodules stay reachable as attributes
        "for name in ('checkpoint', 'datasets', 'files', 'finetune', 'preprocessing',\n"
        "             'validation'):\n"
        "    assert getattr(brainjepa_sk, name).__name__ == 'brainjepa_sk.' + name\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


def test_the_package_catches_warnings_only_through_its_thread_safe_helper():
    # warnings.catch_warnings swaps the filters of the whole process: two blocks overlapping
    # in threads left one's filters in force; _warnings.catch_warnings takes one lock
    paths = [path for path in PACKAGE.rglob("*.py") if path.name != "_warnings.py"]
    assert len(paths) > 20
    for path in paths:
        assert "warnings.catch_warnings(" not in path.read_text(), path.relative_to(PACKAGE)
