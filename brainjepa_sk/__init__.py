"""brainjepa_sk: Brain-JEPA for neuroimaging researchers, as scikit-learn estimators."""

__version__ = "0.1.0.dev0"
