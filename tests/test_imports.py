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
