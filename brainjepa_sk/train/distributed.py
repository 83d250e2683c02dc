"""Several processes (``torchrun``): who is who, and the few collective operations the loop needs.

Everything goes through :mod:`torch.distributed`; with one process (or no process group) the
functions answer as a single process would, so the same loop runs everywhere.
"""

from __future__ import annotations

import datetime
import os
import pickle

import torch
import torch.distributed as dist

__all__ = [
    "world",
    "is_main_process",
    "init_from_environment",
    "process_device",
    "all_reduce_mean",
    "all_gather_objects",
    "any_process",
    "any_process_each",
    "on_main_process",
]


def world():
    """``(rank, world_size)`` of this process; ``(0, 1)`` without a process group.

    Returns
    -------
    tuple of int
        ``(rank, world_size)``.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process():
    """Whether this process is process 0, the one that warns, writes files and shows progress.

    Before the process group is joined, the launcher's ``RANK`` says (``torchrun`` sets it
    with ``WORLD_SIZE``), so that work done before joining is not repeated by every process.

    Returns
    -------
    bool
        ``True`` in process 0, and in a process on its own.
    """
    rank, world_size = world()
    if world_size > 1:
        return rank == 0
    try:
        if _launcher_world_size() > 1:
            return int(os.environ.get("RANK", "0")) == 0
    except ValueError:  # not a launcher's numbers: a process on its own
        pass
    return True


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

    Raises
    ------
    ValueError
        Naming ``WORLD_SIZE``, when it asks for several processes but the launcher's other
        variables (``RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) are missing.
    """
    size = _launcher_world_size()
    if size <= 1 or not dist.is_available():
        return world()[1] > 1
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        except ValueError as error:  # env:// without RANK, MASTER_ADDR or MASTER_PORT
            raise ValueError(
                f"WORLD_SIZE={size} is set in the environment, so this process joins a "
                f"process group of {size} processes, as under torchrun, but it cannot: "
                f"{error}; start the script with torchrun (which also sets RANK, LOCAL_RANK, "
                "MASTER_ADDR and MASTER_PORT), or unset WORLD_SIZE to run in one process"
            ) from error
    return dist.get_world_size() > 1


def _launcher_world_size():
    """The launcher's ``WORLD_SIZE``: 1 when unset or not a number (another program's
    variable, not a launcher's: a process on its own, as :func:`is_main_process` takes it)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def process_device(device):
    """Join torchrun's process group if there is one, and return this process's device.

    Under torchrun, ``"cuda"`` without an index means this process's GPU, ``cuda:LOCAL_RANK``
    (made the current device, which NCCL's collectives use).

    Parameters
    ----------
    device : torch.device
        The device asked for.

    Returns
    -------
    torch.device
        This process's device.

    Raises
    ------
    ValueError
        When torchrun started more processes on this machine than it has GPUs.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    per_process_gpu = device.type == "cuda" and device.index is None
    if (per_process_gpu and _launcher_world_size() > 1
            and local_rank >= torch.cuda.device_count()):
        # before joining the group: torchrun then stops the other processes
        raise ValueError(
            f"torchrun started process LOCAL_RANK={local_rank} but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s): start at most one process per GPU "
            "(--nproc-per-node)")
    if init_from_environment(device) and per_process_gpu:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def all_gather_objects(items):
    """Every process's list of picklable ``items``, concatenated in rank order.

    A collective operation: every process must call it.

    Parameters
    ----------
    items : iterable
        This process's picklable items.

    Returns
    -------
    list
        The items of process 0, then of process 1, ...; ``list(items)`` with one process.
    """
    rank, world_size = world()
    if world_size == 1:
        return list(items)
    gathered = [None] * world_size
    dist.all_gather_object(gathered, list(items))
    return [item for part in gathered for item in part]


def any_process(flag, device):
    """Whether ``flag`` is true in any process (every process gets the same answer).

    Parameters
    ----------
    flag : bool
        This process's value.
    device : torch.device
        Where the collective runs (a CUDA device with NCCL).

    Returns
    -------
    bool
        Whether any process passed a true ``flag``.
    """
    if world()[1] == 1:
        return bool(flag)
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def any_process_each(flags, device):
    """For each flag, whether it is true in any process (one collective operation for all).

    Parameters
    ----------
    flags : sequence of bool
        This process's values, in the same order in every process.
    device : torch.device
        Where the collective runs (a CUDA device with NCCL).

    Returns
    -------
    list of bool
        For each flag, whether any process passed it true (the same list in every process).
    """
    if world()[1] == 1:
        return [bool(flag) for flag in flags]
    values = torch.tensor([float(flag) for flag in flags], device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(value) for value in values.tolist()]


def all_reduce_mean(value):
    """Mean of a tensor over the processes (the tensor itself with one process).

    A collective operation: every process must call it.

    Parameters
    ----------
    value : torch.Tensor
        This process's value, on a device the process group's backend supports.

    Returns
    -------
    torch.Tensor
        The mean over the processes, a new tensor (``value`` is not modified); ``value``
        itself with one process.
    """
    rank, world_size = world()
    if world_size == 1:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world_size


#: How long the other processes wait for the work of process 0 in :func:`on_main_process`.
#: The process group's own timeout (10 minutes with NCCL) would end a longer wait with an
#: error; torchrun stops every process when one fails, so a long wait does not hang a job.
MAIN_PROCESS_TIMEOUT = datetime.timedelta(hours=24)


def _sendable(error):
    """``error`` if it survives pickling both ways, else a ``RuntimeError`` with its text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return RuntimeError(f"process 0 failed: {type(error).__name__}: {error}")


def on_main_process(function, *args, **kwargs):
    """Call ``function`` in process 0 only and return its result in every process.

    For work whose result every process needs and which would give the same result in each
    (e.g. the gradients of the whole corpus): the others wait instead of repeating it, for
    up to ``MAIN_PROCESS_TIMEOUT`` (the result travels through a gloo group of its own,
    on the CPU). An exception raised in process 0 (``KeyboardInterrupt`` included) is raised
    in every process, so none waits for a result that will not come.

    Parameters
    ----------
    function : callable
        Returns a picklable result.
    *args, **kwargs
        Its arguments.

    Returns
    -------
    object
        What ``function`` returned in process 0.
    """
    rank, world_size = world()
    if world_size == 1:
        return function(*args, **kwargs)
    group = dist.new_group(backend="gloo", timeout=MAIN_PROCESS_TIMEOUT)
    try:
        payload = [None]
        if rank == 0:
            try:
                payload = [(True, function(*args, **kwargs))]
                pickle.dumps(payload)  # a result that cannot be sent fails here, in the try
            except BaseException as error:  # sent on, then raised here too
                dist.broadcast_object_list([(False, _sendable(error))], src=0, group=group)
                raise
        dist.broadcast_object_list(payload, src=0, group=group)
    finally:
        dist.destroy_process_group(group)
    succeeded, value = payload[0]
    if not succeeded:
        raise value
    return value
