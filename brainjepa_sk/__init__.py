"""brainjepa_sk: Brain-JEPA for neuroimaging researchers, as scikit-learn estimators.

Estimators: :class:`GradientPositioner` (region positions on connectivity gradients),
:class:`BrainJEPAPretrainer` (self-supervised pretraining) and :class:`BrainJEPAEmbedder`
(frozen features from pretrained weights), :class:`BrainJEPAClassifier` and
:class:`BrainJEPARegressor` (fine-tuning and linear probing, skorch nets). The pure-torch model lives in
:mod:`brainjepa_sk.nn`.
"""

__version__ = "0.1.0.dev0"

__all__ = [
    "BrainJEPAClassifier",
    "BrainJEPARegressor",
    "BrainJEPAEmbedder",
    "BrainJEPAPretrainer",
    "GradientPositioner",
    "load_gradients",
    "__version__",
]

#: Where each public name lives. They are imported when first asked for (PEP 562), so that
#: ``import brainjepa_sk.nn`` (pure torch) loads neither scikit-learn nor pandas, and the
#: fine-tuning estimators' skorch only where they are used.
_LOCATIONS = {
    "BrainJEPAClassifier": "finetune",
    "BrainJEPARegressor": "finetune",
    "BrainJEPAEmbedder": "embed",
    "BrainJEPAPretrainer": "pretrain",
    "GradientPositioner": "gradients",
    "load_gradients": "gradients",
}


#: The submodules, reachable as attributes (``brainjepa_sk.checkpoint``) once asked for.
_SUBMODULES = ("checkpoint", "datasets", "embed", "files", "finetune", "gradients", "nn",
               "preprocessing", "pretrain", "train", "validation")


def __getattr__(name):
    import importlib

    if name in _LOCATIONS:
        return getattr(importlib.import_module(f".{_LOCATIONS[name]}", __name__), name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})
