"""Patch embedding and the Brain-JEPA encoder (context and target encoders share this class)."""

from __future__ import annotations

import numbers

import torch
from torch import nn

from ._checks import (
    check_block_settings,
    check_count,
    check_drop_path_rate,
    check_time_patches,
    with_article,
)
from .blocks import (
    LAYER_NORM_EPS,
    Block,
    init_patch_embedding,
    init_weights,
    stochastic_depth_rates,
)
from .pos_embed import GradientPositionalEmbedding

__all__ = ["PatchEmbed", "BrainEncoder", "gather_tokens"]


def gather_tokens(tokens, index):
    """Select tokens by index, per sample.

    Parameters
    ----------
    tokens : torch.Tensor
        ``(batch, n_tokens, dim)``.
    index : torch.Tensor
        ``(batch, k)`` integer token indices.

    Returns
    -------
    torch.Tensor
        ``(batch, k, dim)``.

    Raises
    ------
    ValueError
        When ``index`` is not 2-D or has another batch size than ``tokens`` (``torch.gather``
        would silently keep the first samples only).
    """
    if index.ndim != 2 or index.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"token indices must be of shape (batch, k) with the batch of the tokens "
            f"({tokens.shape[0]}), got shape {tuple(index.shape)}"
        )
    return torch.gather(tokens, 1, index[..., None].expand(-1, -1, tokens.shape[-1]))


def check_time_series(x, n_regions, patch_size):
    """Check a batch in nilearn orientation; return the number of time patches.

    Raises a ``ValueError`` that names the expected layout when the shape is wrong.

    Parameters
    ----------
    x : torch.Tensor
        ``(batch, n_frames, n_regions)`` batch.
    n_regions : int
        Regions the model expects on the last axis.
    patch_size : int
        Frames per time patch; ``n_frames`` must be a positive multiple of it.

    Returns
    -------
    int
        ``n_frames // patch_size``.

    Raises
    ------
    ValueError
        When ``x`` is not 3-D, has another number of regions, or ``n_frames`` is not a positive
        multiple of ``patch_size``.
    """
    if x.ndim != 3:
        raise ValueError(
            "expected a batch of shape (batch, n_frames, n_regions), "
            f"got {with_article(f'{x.ndim}-D')} tensor of shape {tuple(x.shape)}"
        )
    if x.shape[2] != n_regions:
        hint = " (it looks transposed: time must be axis 1)" if x.shape[1] == n_regions else ""
        raise ValueError(
            f"the model has {n_regions} regions but the input has {x.shape[2]} on its last axis; "
            f"expected (batch, n_frames, n_regions){hint}"
        )
    return check_time_patches(x.shape[1], patch_size)


class PatchEmbed(nn.Module):
    """Embed each region's non-overlapping windows of ``patch_size`` frames linearly.

    The research code writes this as ``Conv2d(1, D, (1, s), stride=(1, s))``; a linear map of each
    patch is the same computation.

    Parameters
    ----------
    patch_size : int
        Frames per patch ``s``.
    embed_dim : int
        Token width ``D``.

    Raises
    ------
    ValueError
        When ``patch_size`` or ``embed_dim`` is not an int >= 1.
    """

    def __init__(self, patch_size, embed_dim):
        super().__init__()
        # int() would cut 4.5 frames to 4-frame patches and take True as 1
        if (not isinstance(patch_size, numbers.Integral) or isinstance(patch_size, bool)
                or patch_size < 1):
            raise ValueError(f"patch_size must be a positive number of frames (an int), got "
                             f"{patch_size!r}")
        self.patch_size = int(patch_size)
        self.proj = nn.Linear(self.patch_size, check_count("embed_dim", embed_dim))

    def forward(self, x):
        """Map ``(batch, n_frames, n_regions)`` to region-major tokens ``(batch, R * P, D)``.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_frames, n_regions)``; ``n_frames`` a multiple of ``patch_size`` (not
            checked here).

        Returns
        -------
        torch.Tensor
            ``(batch, n_regions * n_patches, embed_dim)`` tokens, ``n_patches = n_frames //
            patch_size``, token ``r * n_patches + p`` for region ``r`` and time patch ``p``.
        """
        batch, n_frames, n_regions = x.shape
        patches = x.transpose(1, 2).reshape(batch, n_regions * (n_frames // self.patch_size),
                                            self.patch_size)
        return self.proj(patches)


class BrainEncoder(nn.Module):
    """Vision-transformer encoder over region x time-patch tokens.

    Parameters
    ----------
    gradients : torch.Tensor or array-like of shape (n_regions, n_components)
        Gradient coordinates of the regions (gradient positioning).
    patch_size : int, default=16
        Frames per time patch.
    embed_dim : int, default=768
        Token width.
    depth : int, default=12
        Number of transformer blocks.
    num_heads : int, default=12
        Attention heads.
    mlp_ratio : float, default=4.0
        MLP hidden width relative to ``embed_dim``.
    qkv_bias : bool, default=True
        Bias on the qkv projections.
    drop_path_rate : float, default=0.0
        Stochastic-depth probability of the last block (linearly increasing from 0).
    patch_embed_init : {"trunc_normal", "xavier"}, default="trunc_normal"
        Initialisation of the patch embedding, see :func:`~brainjepa_sk.nn.init_patch_embedding`.

    Attributes
    ----------
    preprocessing : dict or None
        How its input was preprocessed (``Preprocessor.to_dict()``: window, scaling with its
        statistics, TR), when known: set on the encoder a fine-tuning estimator trains
        (``module_.encoder``). The estimators given this module as ``weights`` apply it, and
        take its window length as theirs. None for an encoder built here.
    region_names : list of str or None
        Names of the regions it was trained on, in order, when known (as ``preprocessing``).
    trained_n_patches : int or None
        The most time patches per window its time positions were trained on, in pretraining
        and fine-tuning, when known (as ``preprocessing``, whose window is the fine-tuning's
        only): the estimators given this module as ``weights`` warn of longer windows. None
        for an encoder built here, or fine-tuned from weights that do not say their window.
    frozen_by_fine_tuner : bool
        Whether the fine-tuner whose ``preprocessing`` it carries kept its weights frozen
        (``freeze_encoder=True``, a linear probe): its weights are those it was given, its
        preprocessing only the probe's; the estimators given this module as ``weights`` say
        so in their warnings. False for an encoder built here.
    """

    # what an encoder pickled before these existed has (its __dict__ lacks them)
    preprocessing = None
    region_names = None
    trained_n_patches = None
    frozen_by_fine_tuner = False

    def __init__(
        self,
        gradients,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_path_rate=0.0,
        patch_embed_init="trunc_normal",
    ):
        super().__init__()
        # checked as given (int() would cut 2.5 layers to 2, float() take "4")
        embed_dim, depth, num_heads = (check_count(name, value, minimum) for name, value, minimum
                                       in (("embed_dim", embed_dim, 1), ("depth", depth, 0),
                                           ("num_heads", num_heads, 1)))
        mlp_ratio, qkv_bias, drop_path_rate = check_block_settings(
            mlp_ratio, qkv_bias, drop_path_rate, widths=(embed_dim,))
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.pos_embed = GradientPositionalEmbedding(gradients, embed_dim)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path=p)
            for p in stochastic_depth_rates(drop_path_rate, depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.apply(init_weights)
        init_patch_embedding(self.patch_embed.proj, patch_embed_init)

    @property
    def n_regions(self):
        """Number of regions (pinned by the gradients)."""
        return self.pos_embed.n_regions

    @property
    def patch_size(self):
        """Frames per time patch."""
        return self.patch_embed.patch_size

    def set_drop_path_rate(self, drop_path_rate):
        """Set stochastic depth on existing blocks.

        0 for the first, ``drop_path_rate`` for the last, linear in between (as at
        construction). Used to fine-tune pretrained weights.

        Parameters
        ----------
        drop_path_rate : float
            Stochastic-depth probability of the last block, in ``[0, 1)``.

        Returns
        -------
        BrainEncoder
            The encoder itself, changed in place.

        Raises
        ------
        ValueError
            When ``drop_path_rate`` is not a number in ``[0, 1)`` (as at construction).
        """
        # as at construction: float() took "0.3" and True, and failed on "a" naming nothing;
        # a float (torch.linspace fails on a Fraction)
        drop_path_rate = check_drop_path_rate(drop_path_rate)
        for block, rate in zip(self.blocks, stochastic_depth_rates(drop_path_rate,
                                                                   len(self.blocks))):
            block.drop_path.p = float(rate)
        return self

    def forward(self, x, context_idx=None, *, final_norm=True):
        """Encode a batch of ROI time series.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_frames, n_regions)``; ``n_frames`` a multiple of ``patch_size``.
        context_idx : torch.Tensor, optional
            ``(batch, n_context)`` region-major token indices to keep (``r * P + p``). All tokens
            when omitted.
        final_norm : bool, default=True
            Apply the final LayerNorm (the model's output). ``False`` returns the last block's
            residual stream, whose tokens keep their scale.

        Returns
        -------
        torch.Tensor
            ``(batch, n_tokens, embed_dim)`` encoded tokens, in the order of ``context_idx``.
        """
        n_patches = check_time_series(x, self.n_regions, self.patch_size)
        # the input and the (float32) positions follow the weights (float64, bfloat16 ...);
        # under autocast the weights stay float32, and so do the positions
        dtype = self.patch_embed.proj.weight.dtype
        tokens = self.patch_embed(x.to(dtype)) + self.pos_embed(n_patches).to(dtype)
        if context_idx is not None:
            tokens = gather_tokens(tokens, context_idx)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens) if final_norm else tokens
