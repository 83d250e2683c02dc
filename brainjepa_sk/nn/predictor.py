"""The Brain-JEPA predictor: from context tokens to latent predictions at target positions."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_block_settings, check_count
from .blocks import LAYER_NORM_EPS, Block, init_weights, stochastic_depth_rates
from .encoder import gather_tokens
from .pos_embed import GradientPositionalEmbedding

__all__ = ["BrainPredictor"]


class BrainPredictor(nn.Module):
    """Narrow transformer that predicts target-token representations from context tokens.

    Parameters
    ----------
    gradients : torch.Tensor or array-like of shape (n_regions, n_components)
        Gradient coordinates of the regions; the predictor has its own gradient map.
    embed_dim : int, default=768
        Width of the encoder tokens it reads and predicts.
    predictor_embed_dim : int, default=384
        Internal width ``Dp``.
    depth : int, default=6
        Number of blocks.
    num_heads : int, default=12
        Attention heads (the encoder's).
    mlp_ratio : float, default=4.0
        MLP hidden width relative to ``predictor_embed_dim``.
    qkv_bias : bool, default=True
        Bias on the qkv projections.
    drop_path_rate : float, default=0.0
        Stochastic-depth probability of the last block.
    n_patches : int, optional
        Default number of time patches, used to decode token indices when ``forward`` is not
        told. ``BrainJEPA`` always passes the input's value.
    """

    def __init__(
        self,
        gradients,
        embed_dim=768,
        predictor_embed_dim=384,
        depth=6,
        num_heads=12,
        mlp_ratio=4.0,
        qkv_bias=True,
        drop_path_rate=0.0,
        n_patches=None,
    ):
        super().__init__()
        # int() would cut 2.5 to 2 and take True as 1; a float is refused as the mask sampler
        # and PatchEmbed refuse one
        embed_dim, predictor_embed_dim, depth, num_heads = (
            check_count(name, value, minimum) for name, value, minimum in (
                ("embed_dim", embed_dim, 1), ("predictor_embed_dim", predictor_embed_dim, 1),
                ("depth", depth, 0), ("num_heads", num_heads, 1)))
        mlp_ratio, qkv_bias, drop_path_rate = check_block_settings(
            mlp_ratio, qkv_bias, drop_path_rate, widths=(predictor_embed_dim,))
        self.n_patches = None if n_patches is None else check_count("n_patches", n_patches)
        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, predictor_embed_dim))
        self.pos_embed = GradientPositionalEmbedding(gradients, predictor_embed_dim)
        self.blocks = nn.ModuleList(
            Block(predictor_embed_dim, num_heads, mlp_ratio, qkv_bias, drop_path=p)
            for p in stochastic_depth_rates(drop_path_rate, depth)
        )
        self.norm = nn.LayerNorm(predictor_embed_dim, eps=LAYER_NORM_EPS)
        self.proj = nn.Linear(predictor_embed_dim, embed_dim)
        self.apply(init_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02, a=-2.0, b=2.0)

    def forward(self, context_tokens, context_idx, target_idx, n_patches=None):
        """Predict the encoder's representation of the target tokens.

        Parameters
        ----------
        context_tokens : torch.Tensor
            ``(batch, n_context, embed_dim)`` context-encoder output.
        context_idx : torch.Tensor
            ``(batch, n_context)`` token indices of the context tokens.
        target_idx : torch.Tensor
            ``(batch, n_target)`` token indices to predict.
        n_patches : int, optional
            Time patches of the input; defaults to the ``n_patches`` given at construction.

        Returns
        -------
        torch.Tensor
            ``(batch, n_target, embed_dim)`` predictions.
        """
        n_patches = self.n_patches if n_patches is None else check_count("n_patches", n_patches)
        if n_patches is None:
            raise ValueError("n_patches is needed to decode token indices; pass it to forward")
        pos = self.pos_embed(n_patches).to(self.predictor_embed.weight.dtype)
        pos = pos[None].expand(context_tokens.shape[0], -1, -1)
        context = self.predictor_embed(context_tokens) + gather_tokens(pos, context_idx)
        queries = self.mask_token + gather_tokens(pos, target_idx)
        tokens = torch.cat([context, queries.to(context.dtype)], dim=1)
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens[:, context.shape[1] :])
        return self.proj(tokens)
