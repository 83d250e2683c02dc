"""Heads for supervised training: pooled encoder tokens -> normalisation -> linear map.

Two heads, after the research code's downstream models:

- fine-tuning: pooled tokens -> ``LayerNorm`` -> ``Linear`` (the encoder is trained too);
- linear probe: pooled tokens -> ``BatchNorm1d`` without affine parameters -> ``Linear``
  (the encoder is frozen).
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_count
from .blocks import LAYER_NORM_EPS
from .pooling import TokenPooling

__all__ = ["HEAD_KINDS", "PooledHead", "EncoderWithHead"]

HEAD_KINDS = ("layernorm", "batchnorm")

#: Standard deviation of the head's initial weights: the fine-tuning recipe starts from almost
#: constant outputs (2e-5); the linear probe from 0.01.
HEAD_INIT_STD = {"layernorm": 2e-5, "batchnorm": 0.01}


class PooledHead(nn.Module):
    """Normalise a pooled feature vector and map it linearly to the outputs.

    Parameters
    ----------
    n_features : int
        Width of the pooled vector.
    n_outputs : int
        Classes (logits) or regression targets.
    kind : {"layernorm", "batchnorm"}, default="layernorm"
        ``"layernorm"``: a ``LayerNorm`` with affine parameters (fine-tuning);
        ``"batchnorm"``: ``BatchNorm1d(affine=False)`` (the linear probe: a standardisation of
        each feature with running statistics, then a linear model).

    Raises
    ------
    ValueError
        When ``n_features`` or ``n_outputs`` is not an int >= 1, or ``kind`` is not one of
        ``HEAD_KINDS``.
    """

    def __init__(self, n_features, n_outputs, kind="layernorm"):
        super().__init__()
        if kind not in HEAD_KINDS:
            raise ValueError(f"kind must be one of {HEAD_KINDS}, got {kind!r}")
        # torch failed on 2.5 outputs with "empty(): argument 'size'" and built 0 outputs
        n_features, n_outputs = (check_count(name, value) for name, value in (
            ("n_features", n_features), ("n_outputs", n_outputs)))
        self.kind = kind
        if kind == "layernorm":
            self.norm = nn.LayerNorm(n_features, eps=LAYER_NORM_EPS)
        else:
            self.norm = nn.BatchNorm1d(n_features, affine=False, eps=LAYER_NORM_EPS)
        self.linear = nn.Linear(n_features, n_outputs)
        nn.init.trunc_normal_(self.linear.weight, std=HEAD_INIT_STD[kind])
        nn.init.zeros_(self.linear.bias)

    def forward(self, features):
        """Map ``(batch, n_features)`` to ``(batch, n_outputs)``.

        In training mode, a ``"batchnorm"`` head given a batch of one uses (and does not
        update) its running statistics, as in evaluation.

        Parameters
        ----------
        features : torch.Tensor
            ``(batch, n_features)`` pooled features.

        Returns
        -------
        torch.Tensor
            ``(batch, n_outputs)`` logits or regression outputs.
        """
        if self.kind == "batchnorm" and self.training and len(features) == 1:
            # a batch of one window has no spread to standardise with: use (and leave) the
            # running statistics, as in evaluation
            norm = self.norm
            normed = nn.functional.batch_norm(features, norm.running_mean, norm.running_var,
                                              training=False, eps=norm.eps)
            return self.linear(normed)
        return self.linear(self.norm(features))


class EncoderWithHead(nn.Module):
    """A Brain-JEPA encoder, a token pooling and a :class:`PooledHead`: windows -> outputs.

    Parameters
    ----------
    encoder : BrainEncoder
        The (pretrained) encoder; used as given, not copied.
    n_outputs : int
        Output width.
    pooling : str, default="mean"
        A :class:`~brainjepa_sk.nn.TokenPooling` mode.
    head : {"layernorm", "batchnorm"}, default="layernorm"
        The head's normalisation, see :class:`PooledHead`.
    final_norm : bool, default=True
        Pool the encoder's output after its final LayerNorm.
    freeze_encoder : bool, default=False
        Keep the encoder fixed: no gradients, always in eval mode (no stochastic depth), so
        that only the head learns (the linear probe).

    Raises
    ------
    ValueError
        For a ``"layernorm"`` head over a pooling of one feature (``"connectivity"`` on 2
        regions): the LayerNorm would make the outputs constant.
    """

    def __init__(self, encoder, n_outputs, pooling="mean", head="layernorm", final_norm=True,
                 freeze_encoder=False):
        super().__init__()
        self.encoder = encoder
        self.pooling = TokenPooling(pooling, n_regions=encoder.n_regions)
        n_features = self.pooling.n_features(encoder.embed_dim)
        if head == "layernorm" and n_features == 1:
            # a LayerNorm over one feature outputs its bias whatever the input
            raise ValueError(
                f'pooling="{pooling}" gives 1 feature per window on {encoder.n_regions} '
                "regions, which the fine-tuning head's LayerNorm turns into a constant (the "
                "predictions would not depend on the input): use another pooling, more "
                "regions, or the linear probe's head (head=\"batchnorm\"; freeze_encoder=True "
                "in BrainJEPAClassifier and BrainJEPARegressor)"
            )
        self.head = PooledHead(n_features, n_outputs, kind=head)
        self.final_norm = bool(final_norm)
        self.freeze_encoder = bool(freeze_encoder)
        if self.freeze_encoder:
            self.encoder.requires_grad_(False).eval()

    def train(self, mode=True):
        """Set training mode; a frozen encoder stays in eval mode.

        Parameters
        ----------
        mode : bool, default=True
            Training (``True``) or evaluation (``False``) mode.

        Returns
        -------
        EncoderWithHead
            The module itself.
        """
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()
        return self

    def forward_features(self, x):
        """Pooled features of windows ``(batch, n_frames, n_regions)``.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_frames, n_regions)`` windows; ``n_frames`` a multiple of the patch size.

        Returns
        -------
        torch.Tensor
            ``(batch, n_features)`` features, ``n_features`` being
            ``pooling.n_features(encoder.embed_dim)``; no gradient reaches a frozen encoder.
            float32 (also under autocast and for a bfloat16 or float16 encoder), float64 for a
            float64 encoder.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            tokens = self.encoder(x, final_norm=self.final_norm)
        # pooled in float32 even under autocast (as the embedders pool): a bf16 matmul would
        # round the correlations of "connectivity" and "lagged" to about 3 digits
        with torch.autocast(tokens.device.type, enabled=False):
            return self.pooling(tokens.to(torch.promote_types(tokens.dtype, torch.float32)))

    def forward(self, x):
        """Outputs ``(batch, n_outputs)`` for windows ``(batch, n_frames, n_regions)``.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_frames, n_regions)`` windows.

        Returns
        -------
        torch.Tensor
            ``(batch, n_outputs)`` head outputs.
        """
        # the features in the head's dtype (a module cast with .double() or .to(torch.bfloat16))
        return self.head(self.forward_features(x).to(self.head.linear.weight.dtype))
