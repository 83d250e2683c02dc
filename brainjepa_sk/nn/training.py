"""One Brain-JEPA training step and the research recipe's schedules.

:func:`train_step` is a small pure function of (model, optimizer, batch, masks, momentum): no
global state, no randomness of its own (masks come from a
:class:`~brainjepa_sk.nn.masking.SpatiotemporalMaskSampler`). Schedules are plain functions of
the step number, so a resumed run recomputes them exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "parameter_groups",
    "make_optimizer",
    "set_hyperparameters",
    "train_step",
    "warmup_cosine",
    "linear_ramp",
    "cosine_ramp",
    "PretrainSchedule",
    "collapse_metrics",
]


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


def train_step(model, optimizer, x, masks, momentum, autocast_dtype=None):
    """One JEPA step: targets, context, prediction, loss, backward, optimizer step, EMA.

    Parameters
    ----------
    model : BrainJEPA
        In training mode, on the device of ``x``.
    optimizer : torch.optim.Optimizer
        Over the encoder and predictor parameters (see :func:`make_optimizer`), with this step's
        learning rate and weight decay already set.
    x : torch.Tensor
        ``(batch, n_frames, n_regions)`` batch.
    masks : MaskBatch
        Context and target indices for this batch.
    momentum : float
        EMA momentum for the target encoder after the step.
    autocast_dtype : torch.dtype, optional
        Run the forward pass under autocast with this dtype (``torch.bfloat16`` on GPU).

    Returns
    -------
    torch.Tensor
        The loss, detached (not synchronised: call ``.item()`` only when you need the number).
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        loss = model(x, masks.context_idx, masks.target_idx)["loss"]
    loss.backward()
    optimizer.step()
    model.ema_update(momentum)
    return loss.detach()


def warmup_cosine(step, total_steps, warmup_steps, start_value, ref_value, final_value):
    """Linear warm-up from ``start_value`` to ``ref_value``, then cosine decay to ``final_value``.

    Parameters
    ----------
    step : int
        Current step (0-based).
    total_steps, warmup_steps : int
        Length of the schedule and of its warm-up.
    start_value, ref_value, final_value : float
        Values at step 0, at the end of warm-up and at the last step.

    Returns
    -------
    float
    """
    if step < warmup_steps:
        return start_value + (ref_value - start_value) * step / max(warmup_steps, 1)
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    progress = min(progress, 1.0)
    return final_value + 0.5 * (ref_value - final_value) * (1.0 + math.cos(math.pi * progress))


def cosine_ramp(step, total_steps, start_value, final_value):
    """Cosine interpolation from ``start_value`` (step 0) to ``final_value`` (last step)."""
    progress = min(step / max(total_steps, 1), 1.0)
    return final_value + 0.5 * (start_value - final_value) * (1.0 + math.cos(math.pi * progress))


def linear_ramp(step, total_steps, start_value, final_value):
    """Linear interpolation from ``start_value`` (step 0) to ``final_value`` (last step)."""
    progress = min(step / max(total_steps, 1), 1.0)
    return start_value + (final_value - start_value) * progress


@dataclass
class PretrainSchedule:
    """Learning-rate, weight-decay and EMA schedules of the research recipe.

    Defaults are the research code's values for a 300-epoch run: lr warm-up 5e-5 -> 1e-3 over
    40 epochs then cosine to 1e-6; weight decay cosine 0.04 -> 0.4; EMA momentum linear
    0.996 -> 1.0 over all steps.

    Parameters
    ----------
    total_steps : int
        Optimizer steps in the whole run.
    warmup_steps : int
        Steps of linear learning-rate warm-up.
    start_lr, lr, final_lr : float
        Learning rate at step 0, at the end of warm-up and at the last step.
    weight_decay, final_weight_decay : float
        Weight decay at step 0 and at the last step (cosine in between).
    ema_momentum, final_ema_momentum : float
        Target-encoder EMA momentum at step 0 and at the last step (linear in between).
    """

    total_steps: int
    warmup_steps: int
    start_lr: float = 5e-5
    lr: float = 1e-3
    final_lr: float = 1e-6
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    ema_momentum: float = 0.996
    final_ema_momentum: float = 1.0

    @classmethod
    def from_epochs(cls, n_epochs, steps_per_epoch, warmup_epochs=None, **values):
        """Scale the recipe to a run.

        Parameters
        ----------
        n_epochs : int
            Epochs of the run.
        steps_per_epoch : int
            Optimizer steps per epoch.
        warmup_epochs : float, optional
            Epochs of warm-up; by default 40/300 of ``n_epochs``, as in the research recipe.
        **values
            Any other field (``lr``, ``final_weight_decay``, ...).

        Returns
        -------
        PretrainSchedule
        """
        if warmup_epochs is None:
            warmup_epochs = n_epochs * 40 / 300
        return cls(
            total_steps=int(n_epochs * steps_per_epoch),
            warmup_steps=int(round(warmup_epochs * steps_per_epoch)),
            **values,
        )

    def __call__(self, step):
        """Hyper-parameters at a step.

        Parameters
        ----------
        step : int
            Optimizer step (0-based).

        Returns
        -------
        tuple of float
            ``(lr, weight_decay, ema_momentum)``.
        """
        return (
            warmup_cosine(
                step, self.total_steps, self.warmup_steps, self.start_lr, self.lr, self.final_lr
            ),
            cosine_ramp(step, self.total_steps, self.weight_decay, self.final_weight_decay),
            linear_ramp(step, self.total_steps, self.ema_momentum, self.final_ema_momentum),
        )


@torch.no_grad()
def collapse_metrics(features):
    """Monitors of representation collapse.

    Parameters
    ----------
    features : torch.Tensor
        ``(n_samples, dim)`` features (for example target features pooled per sample, or tokens).

    Returns
    -------
    dict
        ``std``: mean over features of the standard deviation across samples (0 when collapsed);
        ``effective_rank``: exp of the entropy of the normalised singular values of the centred
        features (Roy & Vetterli, 2007), between 1 and ``min(n_samples, dim)``. Both are NaN
        for fewer than two samples.
    """
    features = features.float().reshape(-1, features.shape[-1])
    if features.shape[0] < 2:  # no spread to measure: not "collapsed", unknown
        return {"std": float("nan"), "effective_rank": float("nan")}
    centred = features - features.mean(0, keepdim=True)
    std = features.std(0).mean()
    singular = torch.linalg.svdvals(centred)
    p = singular / singular.sum().clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return {"std": float(std), "effective_rank": float(torch.exp(entropy))}
