"""The full Brain-JEPA module: context encoder, predictor and EMA target encoder."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_block_settings, check_count
from .blocks import DropPath
from .encoder import BrainEncoder, check_time_series, gather_tokens
from .predictor import BrainPredictor

__all__ = ["BrainJEPA", "MODEL_PRESETS", "jepa_loss", "LOSSES"]

#: Encoder sizes by name: width, depth, heads.
MODEL_PRESETS = {
    "tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3},
    "small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
    "large": {"embed_dim": 1024, "depth": 24, "num_heads": 16},
}

#: Objectives ``BrainJEPA`` knows.
LOSSES = ("l2", "smooth_l1")


def jepa_loss(predictions, targets, loss="l2"):
    """Latent prediction loss, averaged over target tokens.

    Parameters
    ----------
    predictions, targets : torch.Tensor
        ``(batch, n_target, dim)``; targets carry no gradient.
    loss : {"l2", "smooth_l1"}, default="l2"
        ``"l2"``: the paper's objective, the squared L2 distance between prediction and target
        summed over the ``dim`` features and averaged over target tokens (``dim`` times the
        mean squared error). ``"smooth_l1"``: Huber loss with ``beta=1`` averaged over tokens
        and features (the research code's choice).

    Returns
    -------
    torch.Tensor
        Scalar loss in float32 (float64 for float64 inputs: a module cast with ``.double()``).

    Raises
    ------
    ValueError
        When ``predictions`` and ``targets`` differ in shape (they would broadcast), or there
        is no target token to average over (the loss would be NaN).
    """
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions of shape {tuple(predictions.shape)} and targets of "
                         f"shape {tuple(targets.shape)} differ")
    if not predictions.numel():
        raise ValueError(f"no target token to average the loss over (predictions of shape "
                         f"{tuple(predictions.shape)}): target_idx must select at least one")
    # at least float32: bf16 and fp16 inputs would round the sum; float64 is kept
    dtype = torch.promote_types(predictions.dtype, torch.float32)
    predictions, targets = predictions.to(dtype), targets.to(dtype)
    if loss == "l2":
        # summed over the features (the paper's distance), averaged over the target tokens
        return (predictions - targets).square().sum(-1).mean()
    if loss == "smooth_l1":
        return F.smooth_l1_loss(predictions, targets)
    raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")


class BrainJEPA(nn.Module):
    """Brain-JEPA: joint-embedding predictive architecture over ROI time series.

    Parameters
    ----------
    gradients : torch.Tensor or array-like of shape (n_regions, n_components)
        Gradient coordinates of the regions; they pin the number of regions.
    patch_size : int, default=16
        Frames per time patch.
    embed_dim, depth, num_heads : int, default=768, 12, 12
        Encoder width, depth and heads (see ``MODEL_PRESETS`` and :meth:`from_preset`).
    predictor_embed_dim, predictor_depth : int, default=384, 6
        Predictor width and depth; the predictor uses ``num_heads`` heads.
    mlp_ratio : float, default=4.0
        MLP hidden width relative to the token width.
    qkv_bias : bool, default=True
        Bias on the qkv projections.
    drop_path_rate : float, default=0.0
        Stochastic depth of the context encoder and the predictor.
    loss : {"l2", "smooth_l1"}, default="l2"
        Objective, see :func:`jepa_loss`.
    n_patches : int, optional
        Default number of time patches for calling the predictor on its own.
    patch_embed_init : {"trunc_normal", "xavier"}, default="trunc_normal"
        Initialisation of the patch embedding (:func:`~brainjepa_sk.nn.init_patch_embedding`):
        the research code's std 0.02, or Xavier scaling, which keeps small models from first
        learning to predict positions only.

    Attributes
    ----------
    encoder : BrainEncoder
        The context encoder (trained by gradient descent).
    predictor : BrainPredictor
        The predictor.
    target_encoder : BrainEncoder
        Exponential moving average of ``encoder``; never receives gradients.
    config : dict
        The constructor arguments, enough to rebuild the module with
        ``BrainJEPA(gradients, **config)``.
    preprocessing : dict or None
        How its input was preprocessed (``Preprocessor.to_dict()``: window, scaling with its
        statistics, TR), when known: set by :class:`~brainjepa_sk.BrainJEPAPretrainer` and
        :func:`~brainjepa_sk.checkpoint.load_checkpoint`. The estimators given this module as
        ``weights`` apply it, as they do for a saved file. None for a module built here.
    region_names : list of str or None
        Names of the regions it was pretrained on, in order, when known (as ``preprocessing``).
    """

    def __init__(
        self,
        gradients,
        patch_size=16,
        embed_dim=768,
        depth=12,
        num_heads=12,
        predictor_embed_dim=384,
        predictor_depth=6,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_path_rate=0.0,
        loss="l2",
        n_patches=None,
        patch_embed_init="trunc_normal",
    ):
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
        # checked before any conversion: int() had failed on "abc" with Python's message, cut
        # 2.5 to 2 and taken True as 1, float() taken "4" and bool() "no". PatchEmbed checks
        # patch_size and the predictor n_patches, as given; the config keeps what they took.
        embed_dim, depth, num_heads, predictor_embed_dim, predictor_depth = (
            check_count(name, value, minimum) for name, value, minimum in (
                ("embed_dim", embed_dim, 1), ("depth", depth, 0), ("num_heads", num_heads, 1),
                ("predictor_embed_dim", predictor_embed_dim, 1),
                ("predictor_depth", predictor_depth, 0)))
        mlp_ratio, qkv_bias, drop_path_rate = check_block_settings(
            mlp_ratio, qkv_bias, drop_path_rate, widths=(embed_dim, predictor_embed_dim))
        self.loss = loss
        self.encoder = BrainEncoder(
            gradients,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            patch_embed_init=patch_embed_init,
        )
        self.predictor = BrainPredictor(
            gradients,
            embed_dim=embed_dim,
            predictor_embed_dim=predictor_embed_dim,
            depth=predictor_depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            n_patches=n_patches,
        )
        self.config = dict(
            patch_size=self.encoder.patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            predictor_embed_dim=predictor_embed_dim,
            predictor_depth=predictor_depth,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path_rate=drop_path_rate,
            loss=loss,
            n_patches=self.predictor.n_patches,
            patch_embed_init=patch_embed_init,
        )
        self.target_encoder = copy.deepcopy(self.encoder)
        # The EMA copy has no stochastic depth: it produces the targets.
        for module in self.target_encoder.modules():
            if isinstance(module, DropPath):
                module.p = 0.0
        self.target_encoder.requires_grad_(False)
        # plain data (not tensors, not in the state dict): what the estimators need to feed it
        self.preprocessing = None
        self.region_names = None

    @classmethod
    def from_preset(cls, preset, gradients, **overrides):
        """Build a model of a named size.

        Parameters
        ----------
        preset : {"tiny", "small", "base", "large"}
            Encoder size, see ``MODEL_PRESETS``.
        gradients : array-like of shape (n_regions, n_components)
            Gradient coordinates.
        **overrides
            Any other constructor argument (``patch_size``, ``predictor_depth``, ...).

        Returns
        -------
        BrainJEPA
        """
        if preset not in MODEL_PRESETS:
            raise ValueError(f"preset must be one of {sorted(MODEL_PRESETS)}, got {preset!r}")
        return cls(gradients, **{**MODEL_PRESETS[preset], **overrides})

    @property
    def gradients(self):
        """The ``(n_regions, n_components)`` gradient buffer."""
        return self.encoder.pos_embed.gradients

    @property
    def n_regions(self):
        """Number of regions."""
        return self.encoder.n_regions

    @property
    def patch_size(self):
        """Frames per time patch."""
        return self.encoder.patch_size

    @property
    def embed_dim(self):
        """Encoder token width."""
        return self.encoder.embed_dim

    def n_patches_of(self, x):
        """Number of time patches of a batch, after checking its shape.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_frames, n_regions)``.

        Returns
        -------
        int
            ``n_frames // patch_size``.
        """
        return check_time_series(x, self.n_regions, self.patch_size)

    @torch.no_grad()
    def targets(self, x, target_idx):
        """Layer-normed target-encoder features at the target tokens (no gradient).

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_frames, n_regions)``.
        target_idx : torch.Tensor
            ``(batch, n_target)`` token indices.

        Returns
        -------
        torch.Tensor
            ``(batch, n_target, embed_dim)``.
        """
        features = self.target_encoder(x)
        features = F.layer_norm(features, features.shape[-1:])
        return gather_tokens(features, target_idx)

    def forward(self, x, context_idx, target_idx):
        """JEPA loss of a batch.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_frames, n_regions)``.
        context_idx, target_idx : torch.Tensor
            ``(batch, n_context)`` and ``(batch, n_target)`` token indices (region-major).

        Returns
        -------
        dict
            ``loss`` (scalar with gradient), ``predictions`` and ``targets``.
        """
        n_patches = self.n_patches_of(x)
        targets = self.targets(x, target_idx)
        context = self.encoder(x, context_idx)
        predictions = self.predictor(context, context_idx, target_idx, n_patches=n_patches)
        loss = jepa_loss(predictions, targets, self.loss)
        return {"loss": loss, "predictions": predictions, "targets": targets}

    @torch.no_grad()
    def ema_update(self, momentum):
        """Move the target encoder towards the context encoder.

        ``target = momentum * target + (1 - momentum) * encoder``, for every parameter, in one
        fused update. Buffers (the gradients) are shared values and are left alone.

        Parameters
        ----------
        momentum : float
            EMA momentum in ``[0, 1]``; 1 freezes the target encoder.
        """
        momentum = float(momentum)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum}")
        target = list(self.target_encoder.parameters())
        online = [p.detach() for p in self.encoder.parameters()]
        torch._foreach_lerp_(target, online, 1.0 - momentum)
