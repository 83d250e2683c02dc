"""Pure-torch Brain-JEPA: patch embedding, gradient positioning, blocks, encoder, predictor.

Also spatiotemporal masking, token pooling and supervised heads. Nothing here imports
scikit-learn; training lives in :mod:`brainjepa_sk.train`.
"""

from .blocks import Attention, Block, DropPath, Mlp, init_patch_embedding, init_weights
from .encoder import BrainEncoder, PatchEmbed, gather_tokens
from .heads import HEAD_KINDS, EncoderWithHead, PooledHead
from .model import LOSSES, MODEL_PRESETS, BrainJEPA, jepa_loss
from .pooling import POOLINGS, TokenPooling
from .pos_embed import GradientPositionalEmbedding, sincos_time_embedding
from .predictor import BrainPredictor

__all__ = [
    "Attention",
    "Block",
    "BrainEncoder",
    "BrainJEPA",
    "BrainPredictor",
    "DropPath",
    "EncoderWithHead",
    "GradientPositionalEmbedding",
    "HEAD_KINDS",
    "LOSSES",
    "MODEL_PRESETS",
    "Mlp",
    "PatchEmbed",
    "PooledHead",
    "POOLINGS",
    "TokenPooling",
    "gather_tokens",
    "init_patch_embedding",
    "init_weights",
    "jepa_loss",
    "sincos_time_embedding",
]
