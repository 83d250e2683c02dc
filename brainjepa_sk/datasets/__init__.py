"""Data loaders: the published weights, and synthetic ROI time series for demos and tests."""

from ._synthetic import load_group_connectivity, make_brain_dynamics
from ._weights import fetch_ukbiobank_weights, get_data_dir

__all__ = [
    "fetch_ukbiobank_weights",
    "get_data_dir",
    "load_group_connectivity",
    "make_brain_dynamics",
]
