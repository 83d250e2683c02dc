"""brainjepa_sk: Brain-JEPA for neuroimaging researchers, as scikit-learn estimators.

Estimators: :class:`GradientPositioner` (region positions on connectivity gradients),
:class:`BrainJEPAPretrainer` (self-supervised pretraining) and :class:`BrainJEPAEmbedder`
(frozen features from pretrained weights), :class:`BrainJEPAClassifier` and
:class:`BrainJEPARegressor` (fine-tuning and linear probing, skorch nets). The pure-torch model lives in
:mod:`brainjepa_sk.nn`.
"""

__version__ = "0.1.0.dev0"

from .embed import BrainJEPAEmbedder
from .gradients import GradientPositioner, load_gradients
from .pretrain import BrainJEPAPretrainer

__all__ = [
    "BrainJEPAClassifier",
    "BrainJEPARegressor",
    "BrainJEPAEmbedder",
    "BrainJEPAPretrainer",
    "GradientPositioner",
    "load_gradients",
    "__version__",
]


def __getattr__(name):
    # The fine-tuning estimators import skorch: only when asked for (PEP 562).
    if name in ("BrainJEPAClassifier", "BrainJEPARegressor"):
        from . import finetune

        return getattr(finetune, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
