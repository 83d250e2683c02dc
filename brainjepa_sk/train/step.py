"""One Brain-JEPA training step, a pure function of (model, optimizer, batch, masks, momentum),
and the same loss of a batch without training (for held-out windows).

No global state and no randomness of its own: masks come from a
:class:`~brainjepa_sk.nn.masking.SpatiotemporalMaskSampler`, schedule values from the caller.
"""

from __future__ import annotations

import contextlib

import torch

from ..nn._checks import check_count

__all__ = ["train_step", "eval_step"]


def train_step(model, optimizer, x, masks, momentum, autocast_dtype=None, forward=None,
               accumulation_steps=1, no_sync=None):
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
    accumulation_steps : int, default=1
        Split the batch into this many equal micro-batches, run forward and backward on each
        in turn and sum their gradients (each loss divided by ``accumulation_steps``), then
        take one optimizer step: the gradient of the whole batch's mean loss, with the
        activations of one micro-batch in memory. ``len(x)`` must be a multiple of it.
    no_sync : callable, optional
        A context manager factory that skips the gradient all-reduce
        (``DistributedDataParallel.no_sync``): the micro-batches before the last run under
        it, so that the processes communicate once per step.

    Returns
    -------
    torch.Tensor
        The batch's loss (the mean of its micro-batches' losses), detached (not synchronised:
        call ``.item()`` only when you need the number).

    Raises
    ------
    ValueError
        When ``momentum`` is not in ``[0, 1]``, or ``accumulation_steps`` is not an int >= 1
        of which ``len(x)`` is a multiple (before anything is changed).
    """
    forward = model if forward is None else forward
    if not 0.0 <= float(momentum) <= 1.0:  # before the update, not after it (by ema_update)
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    # an int only (int() ran 2.5 as 2 micro-batches and True as 1), checked as PretrainLoop does
    n_micro = check_count("accumulation_steps", accumulation_steps)
    if len(x) % n_micro:
        raise ValueError(f"a batch of {len(x)} windows cannot be split into "
                         f"accumulation_steps={n_micro} equal micro-batches")
    size = len(x) // n_micro
    optimizer.zero_grad(set_to_none=True)
    total = None
    for k in range(n_micro):
        part = slice(k * size, (k + 1) * size) if n_micro > 1 else slice(None)
        last = k == n_micro - 1
        with (no_sync() if no_sync is not None and not last else contextlib.nullcontext()):
            with torch.autocast(x.device.type, dtype=autocast_dtype,
                                enabled=autocast_dtype is not None):
                loss = forward(x[part], masks.context_idx[part], masks.target_idx[part])["loss"]
            (loss / n_micro if n_micro > 1 else loss).backward()
        total = loss.detach() if total is None else total + loss.detach()
    optimizer.step()
    model.ema_update(momentum)
    return total / n_micro if n_micro > 1 else total


def eval_step(model, x, masks, autocast_dtype=None):
    """The JEPA loss of a batch without training: no gradient, no optimizer step, no EMA.

    The loss :func:`train_step` minimises (the model's own, targets from its EMA target
    encoder), for held-out windows: :meth:`BrainJEPAPretrainer.score
    <brainjepa_sk.BrainJEPAPretrainer.score>` averages it.

    Parameters
    ----------
    model : BrainJEPA
        On the device of ``x``; in eval mode for a loss without stochastic depth (the mode is
        the caller's: this function does not change it).
    x : torch.Tensor
        ``(batch, n_frames, n_regions)`` batch.
    masks : MaskBatch
        Context and target indices for this batch, on the device of ``x``.
    autocast_dtype : torch.dtype, optional
        Run the forward pass under autocast with this dtype (``torch.bfloat16`` on GPU).

    Returns
    -------
    torch.Tensor
        The batch's loss, a float32 scalar computed under ``torch.inference_mode`` (not
        synchronised: call ``.item()`` only when you need the number).
    """
    with torch.inference_mode(), torch.autocast(x.device.type, dtype=autocast_dtype,
                                                enabled=autocast_dtype is not None):
        return model(x, masks.context_idx, masks.target_idx)["loss"].float()
