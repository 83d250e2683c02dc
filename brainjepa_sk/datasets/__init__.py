"""Data loaders: the published weights (and, later, demo and real data sets)."""

from ._weights import fetch_ukbiobank_weights, get_data_dir

__all__ = ["fetch_ukbiobank_weights", "get_data_dir"]
