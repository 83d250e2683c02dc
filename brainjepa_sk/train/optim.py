"""AdamW over a Brain-JEPA's trainable parts, with the research recipe's weight-decay groups."""

from __future__ import annotations

import torch

__all__ = ["make_optimizer", "parameter_groups", "set_hyperparameters"]


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
            (no_decay if param.ndim <= 1 or name.endswith(".bias") else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0, "no_weight_decay": True},
    ]


def make_optimizer(model, lr=1e-3, weight_decay=0.04, betas=(0.9, 0.999), fused=None):
    """AdamW over the context encoder and predictor of a :class:`BrainJEPA`.

    Parameters
    ----------
    model : :class:`~brainjepa_sk.nn.BrainJEPA`
        The module; its target encoder is not optimised.
    lr, weight_decay : float
        Initial values (schedules overwrite them each step).
    betas : (float, float)
        Adam betas.
    fused : bool, optional
        Use the fused CUDA kernel; ``None`` picks it when the model is on a CUDA device.

    Returns
    -------
    torch.optim.AdamW
    """
    if fused is None:
        fused = next(model.parameters()).device.type == "cuda"
    groups = parameter_groups([model.encoder, model.predictor], weight_decay)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, fused=bool(fused) or None)


def set_hyperparameters(optimizer, lr, weight_decay):
    """Set the learning rate of every group and the weight decay of the decayed groups."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        if not group.get("no_weight_decay", False):
            group["weight_decay"] = weight_decay
