"""Several processes (``torchrun``): who is who, and the few collective operations the loop needs.

Everything goes through :mod:`torch.distributed`; with one process (or no process group) the
functions answer as a single process would, so the same loop runs everywhere.
"""

from __future__ import annotations

import os

import torch.distributed as dist

__all__ = ["world", "is_main_process", "init_from_environment", "all_reduce_mean"]


def world():
    """``(rank, world_size)`` of this process; ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process():
    """Whether this process writes files, logs and progress bars (rank 0)."""
    return world()[0] == 0


def init_from_environment(device):
    """Join the process group described by torchrun's environment variables, if any.

    Parameters
    ----------
    device : torch.device
        The training device: NCCL for CUDA, gloo for the CPU.

    Returns
    -------
    bool
        Whether a process group of more than one process is active.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return world()[1] > 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_world_size() > 1


def all_reduce_mean(value):
    """Mean of a tensor over the processes (the tensor itself with one process)."""
    rank, world_size = world()
    if world_size == 1:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world_size
