"""Token pooling: from an encoder's tokens to one feature vector per window.

Tokens are (region, time patch) pairs in region-major order, ``index = r * n_patches + p``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_count

__all__ = ["POOLINGS", "TokenPooling", "check_pooling_patches"]

POOLINGS = ("mean", "roi", "roi_std", "connectivity", "lagged")


def check_pooling_patches(mode, n_patches):
    """Check that a pooling mode has the time patches it needs.

    ``"roi_std"`` and ``"lagged"`` need at least two time patches per region: a spread, or a
    lag, over one time patch is no signal (the lag would be 0 / 0). The estimators check their
    windows with it before any training; :class:`TokenPooling` checks each batch.

    Parameters
    ----------
    mode : str
        The pooling mode, one of :data:`POOLINGS`.
    n_patches : int
        Time patches per region (per window).

    Raises
    ------
    ValueError
        When ``mode`` is ``"roi_std"`` or ``"lagged"`` and ``n_patches`` is below 2.
    """
    if mode in ("roi_std", "lagged") and n_patches < 2:
        raise ValueError(
            f'pooling="{mode}" needs at least 2 time patches per region, got {n_patches} '
            "(use longer windows, n_frames >= 2 * patch_size, or another pooling)"
        )


def _standardise(values, dims):
    """Centre ``values`` over ``dims`` and scale them to unit population standard deviation.

    A region without spread gives zeros: centring a constant leaves only the rounding of its
    mean, which scaled to unit spread would be noise as large as a signal (and 0 / 0 where the
    mean is exact).
    """
    centred = values - values.mean(dims, keepdim=True)
    variance = centred.square().mean(dims, keepdim=True)
    floor = 16 * torch.finfo(values.dtype).eps * values.detach().abs().amax(dims, keepdim=True)
    flat = centred.detach().abs().amax(dims, keepdim=True) <= floor
    # the square root of a flat region's variance is never taken: its gradient there is infinite
    spread = torch.where(flat, torch.ones_like(variance), variance).sqrt()
    return torch.where(flat, torch.zeros_like(centred), centred / spread)


class TokenPooling(nn.Module):
    """Pool ``(batch, n_regions * n_patches, dim)`` tokens into per-window features.

    Differentiable, so that it can sit between an encoder and a head that is trained.

    Parameters
    ----------
    mode : {"mean", "roi", "roi_std", "connectivity", "lagged"}, default="mean"
        ``"mean"``: mean over all tokens, ``(batch, dim)``. ``"roi"``: each region's mean over
        its time patches, flattened region-major, ``(batch, n_regions * dim)``. ``"roi_std"``:
        each region's standard deviation over its time patches (population, no correction),
        same layout. ``"connectivity"``: correlation between every two regions of their
        token features (upper triangle, ``(batch, n_regions * (n_regions - 1) / 2)``).
        ``"lagged"``: lag-one (one time patch) cross-correlation of the standardised token
        features for every ordered pair of regions, ``(batch, n_regions ** 2)``. In both, a
        region whose tokens do not vary (a constant) correlates 0 with every region.
    n_regions : int, optional
        Regions per window; required by every mode but ``"mean"``.
    """

    def __init__(self, mode="mean", n_regions=None):
        super().__init__()
        if mode not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {mode!r}")
        if mode != "mean" and n_regions is None:
            raise ValueError(f"pooling={mode!r} needs n_regions")
        self.mode = mode
        # a float failed in forward's reshape, True pooled as one region
        self.n_regions = None if n_regions is None else check_count("n_regions", n_regions)

    def extra_repr(self):
        """Describe the module in its ``repr``.

        Returns
        -------
        str
            The pooling mode and number of regions.
        """
        return f"mode={self.mode!r}, n_regions={self.n_regions}"

    def n_features(self, dim):
        """Width of the pooled vector for tokens ``dim`` wide.

        Parameters
        ----------
        dim : int
            Token width.

        Returns
        -------
        int
            ``dim`` (``"mean"``), ``n_regions * dim`` (``"roi"``, ``"roi_std"``),
            ``n_regions * (n_regions - 1) // 2`` (``"connectivity"``) or ``n_regions ** 2``
            (``"lagged"``).
        """
        n_regions = self.n_regions
        if self.mode == "mean":
            return dim
        if self.mode in ("roi", "roi_std"):
            return n_regions * dim
        if self.mode == "connectivity":
            return n_regions * (n_regions - 1) // 2
        return n_regions**2

    def forward(self, tokens):
        """Pool ``tokens`` of shape ``(batch, n_tokens, dim)``.

        Parameters
        ----------
        tokens : torch.Tensor
            ``(batch, n_regions * n_patches, dim)`` tokens in region-major order.

        Returns
        -------
        torch.Tensor
            ``(batch, n_features)`` with ``n_features = self.n_features(dim)``.

        Raises
        ------
        ValueError
            When the number of tokens is not a multiple of ``n_regions`` (every mode but
            ``"mean"``), and for ``"roi_std"`` and ``"lagged"`` with fewer than 2 time
            patches per region.
        """
        if self.mode == "mean":
            return tokens.mean(dim=1)
        batch, n_tokens, dim = tokens.shape
        if n_tokens % self.n_regions:
            raise ValueError(f"pooling={self.mode!r} over {self.n_regions} regions needs a "
                             f"multiple of {self.n_regions} tokens, got {n_tokens}")
        grid = tokens.reshape(batch, self.n_regions, n_tokens // self.n_regions, dim)
        check_pooling_patches(self.mode, grid.shape[2])
        if not batch:  # no window: nothing to pool (torch's std warns over an empty batch)
            return tokens.new_zeros(0, self.n_features(dim))
        if self.mode == "roi":
            return grid.mean(2).flatten(1)
        if self.mode == "roi_std":
            return grid.std(2, correction=0).flatten(1)
        if self.mode == "lagged":
            unit = _standardise(grid, (2, 3))
            later, earlier = unit[:, :, 1:].flatten(2), unit[:, :, :-1].flatten(2)
            return (later @ earlier.transpose(1, 2) / later.shape[2]).flatten(1)
        signals = grid.flatten(2)  # (batch, n_regions, n_patches * dim)
        unit = _standardise(signals, 2)
        correlation = unit @ unit.transpose(1, 2) / signals.shape[2]
        rows, cols = torch.triu_indices(self.n_regions, self.n_regions, offset=1,
                                        device=tokens.device)
        return correlation[:, rows, cols]
