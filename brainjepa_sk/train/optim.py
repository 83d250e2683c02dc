"""AdamW over a Brain-JEPA's trainable parts, with the research recipe's weight-decay groups."""

from __future__ import annotations

import torch

__all__ = ["layer_decay_groups", "make_optimizer", "parameter_groups", "set_hyperparameters"]


def _spared_from_decay(name, param):
    """Whether a parameter gets no weight decay: a bias (by name, whatever its shape, also a
    module's own ``bias``) or any parameter of at most one dimension (LayerNorm)."""
    return param.ndim <= 1 or name.rsplit(".", 1)[-1] == "bias"


def parameter_groups(modules, weight_decay):
    """Split trainable parameters into a decayed group and a group without weight decay.

    Biases and all 1-D parameters (LayerNorm) get no weight decay, as in the research recipe.

    Parameters
    ----------
    modules : iterable of torch.nn.Module
        Modules whose trainable parameters are optimised.
    weight_decay : float
        Weight decay of the decayed group.

    Returns
    -------
    list of dict
        Two parameter groups; the second has ``"no_weight_decay": True``.
    """
    decay, no_decay = [], []
    for module in modules:
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if _spared_from_decay(name, param) else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0, "no_weight_decay": True},
    ]


def _encoder_layer(name, depth):
    """Layer number of an ``EncoderWithHead`` parameter: 0 for the embeddings, ``i + 1`` for
    block ``i``, ``depth + 1`` for the encoder's final norm and the head."""
    if name.startswith(("encoder.patch_embed.", "encoder.pos_embed.")):
        return 0
    if name.startswith("encoder.blocks."):
        return int(name.split(".")[2]) + 1
    return depth + 1


def layer_decay_groups(model, weight_decay, layer_decay):
    """Parameter groups with layer-wise learning-rate decay, for fine-tuning.

    Layer ``l`` of ``L + 1`` (0: embeddings; ``i + 1``: block ``i``; ``L + 1``: final norm and
    head) learns at ``layer_decay ** (L + 1 - l)`` times the learning rate, so the layers near
    the input, which hold the most general features, move least. Biases and 1-D parameters
    get no weight decay. Frozen parameters are left out.

    Parameters
    ----------
    model : :class:`~brainjepa_sk.nn.EncoderWithHead`
        The model (its encoder under ``encoder.``).
    weight_decay : float
        Weight decay of the decayed groups.
    layer_decay : float
        Ratio between the learning rates of consecutive layers (1: no decay).

    Returns
    -------
    list of dict
        One group per (layer, decayed or not) with parameters; each has ``"lr_scale"``, which
        the learning-rate schedule multiplies in, and ``"no_weight_decay"`` where it applies.
    """
    depth = len(model.encoder.blocks)
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = _encoder_layer(name, depth)
        no_decay = _spared_from_decay(name, param)
        group = groups.setdefault((layer, no_decay), {
            "params": [],
            "weight_decay": 0.0 if no_decay else weight_decay,
            "lr_scale": float(layer_decay) ** (depth + 1 - layer),
            **({"no_weight_decay": True} if no_decay else {}),
        })
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]


def make_optimizer(model, lr=1e-3, weight_decay=0.04, betas=(0.9, 0.999), fused=None):
    """AdamW over the context encoder and predictor of a :class:`~brainjepa_sk.nn.BrainJEPA`.

    Parameters
    ----------
    model : :class:`~brainjepa_sk.nn.BrainJEPA`
        The module; its target encoder is not optimised.
    lr : float, default=1e-3
        Initial learning rate (schedules overwrite it each step).
    weight_decay : float, default=0.04
        Initial weight decay (schedules overwrite it each step).
    betas : (float, float), default=(0.9, 0.999)
        Adam betas.
    fused : bool, optional
        Use the fused CUDA kernel; ``None`` picks it when the model is on a CUDA device.

    Returns
    -------
    torch.optim.AdamW
        Over the two groups of :func:`parameter_groups` (decayed, and without weight decay).

    Raises
    ------
    ValueError
        When no parameter of the encoder or predictor is trainable (each step would
        otherwise fail in its backward pass, as its loss needs no gradient).
    """
    if fused is None:
        fused = next(model.parameters()).device.type == "cuda"
    groups = parameter_groups([model.encoder, model.predictor], weight_decay)
    if not any(group["params"] for group in groups):  # torch takes two empty groups
        raise ValueError("the model's encoder and predictor have no trainable parameter "
                         "(all have requires_grad=False): there is nothing to optimise")
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=bool(fused) or None)


def set_hyperparameters(optimizer, lr, weight_decay):
    """Set the learning rate of every group and the weight decay of the decayed groups.

    Groups marked ``"no_weight_decay"`` keep theirs. A group with an ``"lr_scale"``
    (:func:`layer_decay_groups`) gets ``lr`` times its scale; the others get ``lr``.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        The optimizer, changed in place.
    lr : float
        Learning rate.
    weight_decay : float
        Weight decay of the decayed groups.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
        if not group.get("no_weight_decay", False):
            group["weight_decay"] = weight_decay
