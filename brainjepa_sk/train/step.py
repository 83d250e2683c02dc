"""One Brain-JEPA training step, a pure function of (model, optimizer, batch, masks, momentum).

No global state and no randomness of its own: masks come from a
:class:`~brainjepa_sk.nn.masking.SpatiotemporalMaskSampler`, schedule values from the caller.
"""

from __future__ import annotations

import torch

__all__ = ["train_step"]


def train_step(model, optimizer, x, masks, momentum, autocast_dtype=None, forward=None):
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
    forward : torch.nn.Module, optional
        What computes the loss, when it is a wrapper of ``model`` (``torch.compile``,
        ``DistributedDataParallel``); the EMA is always applied to ``model`` itself.

    Returns
    -------
    torch.Tensor
        The loss, detached (not synchronised: call ``.item()`` only when you need the number).
    """
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        loss = (model if forward is None else forward)(x, masks.context_idx, masks.target_idx)
        loss = loss["loss"]
    loss.backward()
    optimizer.step()
    model.ema_update(momentum)
    return loss.detach()
