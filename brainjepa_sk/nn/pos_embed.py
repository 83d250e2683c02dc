"""Gradient positioning: the one positional-embedding implementation.

A token (region ``r``, time patch ``p``) gets a ``D``-wide position code made of two halves:

* the first ``D/2`` entries are a fixed 1-D sine-cosine code of ``p``;
* the last ``D/2`` entries are a learned linear map of region ``r``'s coordinates on the
  functional-connectivity gradients, min-max scaled to ``[-1, 1]`` over the whole half.

Nothing here assumes a number of time patches: the table is built for the ``n_patches`` asked for.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._checks import check_count

__all__ = ["sincos_time_embedding", "GradientPositionalEmbedding"]


def sincos_time_embedding(n_patches, dim, *, device=None, dtype=torch.float32):
    """Fixed 1-D sine-cosine code of the time-patch index.

    Parameters
    ----------
    n_patches : int
        Number of time patches ``P``.
    dim : int
        Width of the code; must be even. Frequencies are ``1 / 10000 ** (k / (dim / 2))`` for
        ``k = 0 .. dim/2 - 1``; the sines come first, then the cosines.
    device : str or torch.device, optional
        Where to build the table (torch's default device when None).
    dtype : torch.dtype, default=torch.float32
        dtype of the table (computed in float64, then cast).

    Returns
    -------
    torch.Tensor
        ``(n_patches, dim)`` table.
    """
    if dim % 2:
        raise ValueError(f"the sine-cosine code needs an even width, got {dim}")
    half = dim // 2
    # Built in float64 so the table does not depend on where it is computed.
    omega = torch.arange(half, dtype=torch.float64, device=device) / half
    omega = 1.0 / 10000.0**omega
    angles = torch.arange(n_patches, dtype=torch.float64, device=device)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).to(dtype)


class GradientPositionalEmbedding(nn.Module):
    """Positional embedding from time-patch index and functional gradients.

    Parameters
    ----------
    gradients : torch.Tensor or array-like of shape (n_regions, n_components)
        Each region's coordinates on the connectivity gradients, finite, at least one region.
        Stored as a buffer, so it moves with the module and is saved in its state dict.
    embed_dim : int
        Width ``D`` of the code; must be a multiple of 4.

    Raises
    ------
    ValueError
        When ``gradients`` is not a 2-D table of finite values with a row per region, or
        ``embed_dim`` is not a positive int multiple of 4.

    Attributes
    ----------
    gradient_proj : torch.nn.Linear
        The learned ``Linear(n_components, embed_dim / 2)`` map of the gradients.
    """

    def __init__(self, gradients, embed_dim):
        super().__init__()
        if isinstance(gradients, torch.Tensor):
            gradients = gradients.to(torch.float32)
        else:
            # through NumPy: torch.as_tensor read a DataFrame by its columns ("expected
            # sequence of length 4 at dim 0 (got 2)") and refused text with a dtype list
            try:
                # a C-ordered copy: torch takes no negative strides (a table read backwards)
                array = np.array(gradients, dtype=np.float32, order="C")
            except (TypeError, ValueError) as error:
                raise ValueError(f"gradients must be a numeric table (n_regions, n_components), "
                                 f"got {type(gradients).__name__}: {error}") from None
            gradients = torch.from_numpy(array)
        if gradients.ndim != 2:
            raise ValueError(
                f"gradients must be 2-D (n_regions, n_components), got shape {tuple(gradients.shape)}"
            )
        if not gradients.shape[0]:
            raise ValueError("gradients must have a row per region, got none (shape "
                             f"{tuple(gradients.shape)})")
        # one NaN would make every region's position NaN (the min-max scaling spans them all)
        if gradients.device.type != "meta" and not bool(torch.isfinite(gradients).all()):
            raise ValueError("gradients must be finite: they hold NaN or infinite values")
        # an int (torch failed on 8.0 with "empty(): argument 'size'"), whose half is even
        if check_count("embed_dim", embed_dim) % 4:
            raise ValueError(f"embed_dim must be a multiple of 4, got {embed_dim}")
        self.embed_dim = int(embed_dim)
        self.register_buffer("gradients", gradients.clone())
        self.gradient_proj = nn.Linear(gradients.shape[1], embed_dim // 2)
        # fixed time tables by (n_patches, device): built once, not saved with the weights
        self._time_tables = {}

    def __getstate__(self):
        # copies and pickles start with an empty cache (it may hold tables on a GPU)
        state = self.__dict__.copy()
        state["_time_tables"] = {}
        return state

    def _apply(self, fn, *args, **kwargs):
        # moved to another device or dtype (.to, .cpu, .float...): drop the cached tables
        self._time_tables = {}
        return super()._apply(fn, *args, **kwargs)

    def time_table(self, n_patches, device, dtype=torch.float32):
        """The cached ``(n_patches, embed_dim / 2)`` sine-cosine half on ``device``.

        Parameters
        ----------
        n_patches : int
            Number of time patches ``P``.
        device : str or torch.device
            Where the table lives; one table is cached per ``(n_patches, device, dtype)``
            (none while ``torch.compile`` traces).
        dtype : torch.dtype, default=torch.float32
            dtype of the table (float64 for a float64 module).

        Returns
        -------
        torch.Tensor
            ``(n_patches, embed_dim // 2)`` table (the cached tensor itself: do not modify it
            in place).
        """
        if torch.compiler.is_compiling():
            # a compiled graph folds the table into a constant; filling the cache there would
            # change what the graph guards on and force a recompilation
            return sincos_time_embedding(n_patches, self.embed_dim // 2, device=device,
                                         dtype=dtype)
        key = (int(n_patches), torch.device(device), dtype)
        table = self._time_tables.get(key)
        if table is None:
            table = sincos_time_embedding(n_patches, self.embed_dim // 2, device=device,
                                          dtype=dtype)
            self._time_tables[key] = table
        return table

    @property
    def n_regions(self):
        """Number of regions the embedding was built for."""
        return self.gradients.shape[0]

    def forward(self, n_patches):
        """Position codes for every token.

        Parameters
        ----------
        n_patches : int
            Number of time patches ``P``.

        Returns
        -------
        torch.Tensor
            ``(n_regions * n_patches, embed_dim)`` table in region-major token order
            (``index = r * P + p``), time half first. float32, also under autocast and for a
            module cast to bfloat16 or float16 (the callers cast it to their tokens' dtype);
            float64 for a float64 module.
        """
        half = self.embed_dim // 2
        # At least float32: a bf16 min-max scaling would visibly quantise the positions.
        weight, bias = self.gradient_proj.weight, self.gradient_proj.bias
        dtype = torch.promote_types(weight.dtype, torch.float32)
        with torch.autocast(self.gradients.device.type, enabled=False):
            space = nn.functional.linear(self.gradients.to(dtype), weight.to(dtype),
                                         None if bias is None else bias.to(dtype))
            lo, hi = space.min(), space.max()
            # an all-zero gradient table maps every region to one value (the map's bias, zero
            # at initialisation): no spread to scale by, and 0 / 0 would make every position NaN
            space = 2.0 * (space - lo) / (hi - lo).clamp_min(torch.finfo(space.dtype).tiny) - 1.0
        time = self.time_table(n_patches, space.device, dtype)
        n_regions = self.n_regions
        table = torch.cat(
            [
                time[None].expand(n_regions, n_patches, half),
                space[:, None].expand(n_regions, n_patches, half),
            ],
            dim=-1,
        )
        return table.reshape(n_regions * n_patches, self.embed_dim)
