"""Data loaders: the published weights, synthetic ROI time series for demos and tests, and real
fMRI data sets (through nilearn's fetchers) as ROI time series."""

from ._atlas import fetch_atlas_brainjepa450
from ._real import load_abide, load_development_fmri
from ._synthetic import load_group_connectivity, make_brain_dynamics
from ._weights import fetch_ukbiobank_weights, get_data_dir

__all__ = [
    "fetch_atlas_brainjepa450",
    "fetch_ukbiobank_weights",
    "get_data_dir",
    "load_abide",
    "load_development_fmri",
    "load_group_connectivity",
    "make_brain_dynamics",
]
