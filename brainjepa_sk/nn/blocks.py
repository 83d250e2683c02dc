"""Transformer building blocks: pre-norm blocks on ``F.scaled_dot_product_attention``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_block_settings, check_count, check_drop_path_rate

__all__ = [
    "DropPath",
    "Attention",
    "Mlp",
    "Block",
    "init_patch_embedding",
    "init_weights",
    "stochastic_depth_rates",
    "LAYER_NORM_EPS",
]

#: LayerNorm epsilon used everywhere in the model (as in the research code).
LAYER_NORM_EPS = 1e-6


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch of a sample with probability ``p``.

    Parameters
    ----------
    p : float, default=0.0
        Drop probability, in ``[0, 1)``; 0 makes the module the identity.

    Raises
    ------
    ValueError
        When ``p`` is not a number in ``[0, 1)``.
    """

    def __init__(self, p=0.0):
        super().__init__()
        # p=1 kept no sample and scaled by 1 / 0: NaN outputs in training
        self.p = check_drop_path_rate(p, "DropPath's p")

    def forward(self, x):
        """Scale kept samples by ``1 / (1 - p)`` and zero dropped ones (training only).

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, ...)`` residual branch; one draw per sample (first axis).

        Returns
        -------
        torch.Tensor
            Same shape as ``x``; ``x`` itself in eval mode or when ``p`` is 0.
        """
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self):
        """Describe the module in its ``repr``.

        Returns
        -------
        str
            ``"p=<drop probability>"``.
        """
        return f"p={self.p}"


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection.

    Parameters
    ----------
    dim : int
        Token width.
    num_heads : int
        Number of heads; must divide ``dim``.
    qkv_bias : bool, default=True
        Whether the qkv projection has a bias.

    Raises
    ------
    ValueError
        When ``dim`` or ``num_heads`` is not an int >= 1, or ``num_heads`` does not divide
        ``dim``.
    """

    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        # num_heads=0 failed with "integer modulo by zero", 2.5 heads in forward's reshape
        dim, num_heads = check_count("dim", dim), check_count("num_heads", num_heads)
        if dim % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide the width {dim}")
        self.num_heads = int(num_heads)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        """Attend over all tokens of ``x`` of shape ``(batch, n_tokens, dim)``.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_tokens, dim)`` tokens.

        Returns
        -------
        torch.Tensor
            ``(batch, n_tokens, dim)`` attention output, after the output projection.
        """
        batch, n_tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, n_tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if x.device.type == "cpu":
            # PyTorch's CPU flash kernel ran faster on contiguous (batch, heads, n, d) inputs: a
            # base embedding on a 2-core EPYC took 10.2-11.3 s against 12.6 s (not recorded)
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, n_tokens, dim))


class Mlp(nn.Module):
    """Two-layer perceptron with a GELU in between.

    Parameters
    ----------
    dim : int
        Input and output width.
    hidden_dim : int
        Hidden width.

    Raises
    ------
    ValueError
        When ``dim`` or ``hidden_dim`` is not an int >= 1.
    """

    def __init__(self, dim, hidden_dim):
        super().__init__()
        dim, hidden_dim = check_count("dim", dim), check_count("hidden_dim", hidden_dim)
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x):
        """Apply ``fc2(gelu(fc1(x)))``.

        Parameters
        ----------
        x : torch.Tensor
            ``(..., dim)``, e.g. ``(batch, n_tokens, dim)`` tokens.

        Returns
        -------
        torch.Tensor
            Same shape as ``x``.
        """
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``.

    Parameters
    ----------
    dim : int
        Token width.
    num_heads : int
        Attention heads.
    mlp_ratio : float, default=4.0
        Hidden width of the MLP relative to ``dim``.
    qkv_bias : bool, default=True
        Bias on the qkv projection.
    drop_path : float, default=0.0
        Stochastic-depth probability of both residual branches.

    Raises
    ------
    ValueError
        As the encoder's checks: ``dim`` or ``num_heads`` not an int >= 1, ``mlp_ratio`` not a
        number > 0 that leaves the MLP a hidden unit, ``qkv_bias`` not a bool, ``drop_path``
        not in ``[0, 1)``.
    """

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True, drop_path=0.0):
        super().__init__()
        # as the encoder checks them: int(dim * "4") made an MLP of 44444444 hidden units
        dim = check_count("dim", dim)
        mlp_ratio, qkv_bias, _ = check_block_settings(mlp_ratio, qkv_bias, 0.0, widths=(dim,))
        drop_path = check_drop_path_rate(drop_path, "drop_path")  # named as Block's
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        """Run the block on ``(batch, n_tokens, dim)`` tokens.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_tokens, dim)`` tokens.

        Returns
        -------
        torch.Tensor
            ``(batch, n_tokens, dim)`` tokens after both residual branches.
        """
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def init_weights(module):
    """Initialise a module the Brain-JEPA way (use with ``Module.apply``).

    Linear weights: truncated normal, std 0.02, cut at +-2; biases 0; LayerNorm weight 1, bias 0.
    Other modules are left as they are.

    Parameters
    ----------
    module : torch.nn.Module
        The module to initialise in place (not its children: ``Module.apply`` visits them).
    """
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


PATCH_EMBED_INITS = ("trunc_normal", "xavier")


def init_patch_embedding(linear, scheme="trunc_normal"):
    """Initialise the linear patch embedding ``Linear(patch_size, embed_dim)``.

    Parameters
    ----------
    linear : torch.nn.Linear
        The patch projection.
    scheme : {"trunc_normal", "xavier"}, default="trunc_normal"
        ``"trunc_normal"``: as every other linear layer (std 0.02, the research code's choice).
        ``"xavier"``: Xavier-normal weights, std ``sqrt(2 / (patch_size + embed_dim))``, as MAE and
        timm initialise patch embeddings. A patch of 16 unit-variance samples embedded with
        std-0.02 weights has a root mean square of ~0.08 per channel against ~0.5 for the
        positional code (0.71 for its sine-cosine half), so a small model first learns to predict
        positions; Xavier scaling (0.16 at width 64, 0.05 at width 768) makes the signal as large
        as the positions at small widths. Biases are 0 in both.
    """
    if scheme not in PATCH_EMBED_INITS:
        raise ValueError(f"patch_embed_init must be one of {PATCH_EMBED_INITS}, got {scheme!r}")
    if scheme == "xavier":
        nn.init.xavier_normal_(linear.weight)
    else:
        nn.init.trunc_normal_(linear.weight, std=0.02, a=-2.0, b=2.0)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


def stochastic_depth_rates(drop_path_rate, depth):
    """Linearly increasing stochastic-depth probabilities, 0 for the first block.

    Parameters
    ----------
    drop_path_rate : float
        Probability of the last block.
    depth : int
        Number of blocks.

    Returns
    -------
    list of float
        ``depth`` probabilities from 0 to ``drop_path_rate``; empty when ``depth`` is 0.
    """
    # on the CPU even where a model is built on the meta device (to load weights into); in
    # float64, so that the last block gets the rate itself (float32 made 0.4 0.4000000059604645)
    return (torch.linspace(0, drop_path_rate, depth, dtype=torch.float64, device="cpu").tolist()
            if depth else [])
