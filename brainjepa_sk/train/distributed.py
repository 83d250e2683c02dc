"""Several processes (``torchrun``): who is who, and the few collective operations the loop needs.

Everything goes through :mod:`torch.distributed`; with one process (or no process group) the
functions answer as a single process would, so the same loop runs everywhere.
"""

from __future__ import annotations

import _thread
import contextlib
import datetime
import itertools
import os
import pickle
import signal
import threading

import torch
import torch.distributed as dist

from .runtime import deferring_ctrl_c

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


#: How often (seconds) the processes waiting in :func:`on_main_process` look for a Ctrl-C, and
#: process 0 for the word of one that got it.
STOP_POLL_SECONDS = 0.1

#: One number for each call of :func:`on_main_process` in this process; every process makes
#: the same calls in the same order, so the n-th calls of all name their keys alike.
_main_process_calls = itertools.count()


def _default_store():
    """The key-value store of the default process group (torchrun's, or the init file's)."""
    return dist.distributed_c10d._get_default_store()


def on_main_process(function, *args, **kwargs):
    """Call ``function`` in process 0 only and return its result in every process.

    For work whose result every process needs and which would give the same result in each
    (e.g. the gradients of the whole corpus): the others wait instead of repeating it, for
    up to ``MAIN_PROCESS_TIMEOUT`` (the result travels through a gloo group of its own,
    on the CPU). An exception raised in process 0 (``KeyboardInterrupt`` included) is raised
    in every process, so none waits for a result that will not come.

    A Ctrl-C (SIGINT) that reaches a waiting process alone (``kill -INT`` of one process)
    stops every process within about ``STOP_POLL_SECONDS``: the waiting process tells process
    0 through the process group's store, process 0's work is interrupted as by a Ctrl-C of its
    own, and every process raises the same ``KeyboardInterrupt``, which names the process
    that got the signal. A second SIGINT to that process raises at once. A waiting process
    otherwise sits in a collective operation, where a signal acts only once it returns:
    after process 0's work, however long it takes. Signals reach the main thread only: called
    in another thread, process 0's work is not interrupted (every process stops once it
    ends), nor is a waiting process's wait.

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

    Raises
    ------
    KeyboardInterrupt
        In every process, when Ctrl-C reached process 0 during the work, or a waiting process.
    """
    rank, world_size = world()
    if world_size == 1:
        return function(*args, **kwargs)
    stop_key = f"brainjepa_sk/on_main_process/{next(_main_process_calls)}/stopped"
    store = _default_store()
    group = dist.new_group(backend="gloo", timeout=MAIN_PROCESS_TIMEOUT)
    receiving = None
    try:
        if rank == 0:
            payload, error = _work_on_main_process(store, stop_key, function, args, kwargs)
            with deferring_ctrl_c():  # a Ctrl-C here must not leave the others waiting
                dist.broadcast_object_list(payload, src=0, group=group)
            if error is not None:
                raise error  # process 0's own error as it was (the others get a copy)
        else:
            receiving = _Receiving(group)
            payload = receiving.wait(store, stop_key, rank, function)
    finally:
        # (not under a receive still running, after a second Ctrl-C: the process stops)
        if receiving is None or not receiving.is_alive():
            dist.destroy_process_group(group)
    succeeded, value = payload[0]
    if not succeeded:
        raise value
    return value


def _work_name(function):
    return getattr(function, "__qualname__", None) or type(function).__name__


def _work_on_main_process(store, stop_key, function, args, kwargs):
    """Process 0's part of :func:`on_main_process`: run ``function``, interrupted (as by
    Ctrl-C) if a waiting process writes ``stop_key``; return the payload to send and the
    error to raise here (None after a result)."""
    # a signal interrupts the main thread only: the work of another thread runs to its end
    watch = _StopWatch(store, stop_key,
                       interrupts=threading.current_thread() is threading.main_thread())
    error = None
    try:
        try:
            payload = [(True, function(*args, **kwargs))]
            pickle.dumps(payload)  # a result that cannot be sent fails here, in the try
        finally:
            # an interrupt the watch made as the work ended is raised by this call at the
            # latest, inside the try
            watch.stop()
    except BaseException as raised:  # sent on, then raised here too
        error = raised
        payload = [(False, _sendable(raised))]
    stopped_by = watch.stopped_by()
    if stopped_by is not None:  # whatever the work became: every process stops
        error = KeyboardInterrupt(
            f"stopped by Ctrl-C (SIGINT) in process {stopped_by}, which waited for process 0 "
            f"to run {_work_name(function)}: every process stops")
        payload = [(False, error)]
    with contextlib.suppress(Exception):
        store.delete_key(stop_key)
    return payload, error


def _interrupt_main_thread():
    """Interrupt the main thread as Ctrl-C would: with a SIGINT sent to it, which also cuts a
    wait in C (a sleep, a read) that ``_thread.interrupt_main`` would let finish first, or
    with ``_thread.interrupt_main`` where signals cannot be sent to a thread (Windows).
    Nothing where SIGINT has no Python handler (ignored, or the default action, which would
    end the process)."""
    if not callable(signal.getsignal(signal.SIGINT)):
        return
    if hasattr(signal, "pthread_kill"):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
    else:
        _thread.interrupt_main()


class _StopWatch:
    """A thread of process 0 that looks for ``stop_key`` in ``store`` while the main thread
    works, and interrupts that work (:func:`_interrupt_main_thread`) once a waiting process
    wrote it; none where the work is not the main thread's (``interrupts=False``)."""

    def __init__(self, store, stop_key, interrupts=True):
        self._store, self._key = store, stop_key
        self._lock = threading.Lock()
        self._working = True
        self._ended = threading.Event()
        self._thread = None
        if interrupts:
            self._thread = threading.Thread(target=self._watch, daemon=True,
                                            name="brainjepa_sk stop watch")
            self._thread.start()

    def _watch(self):
        while not self._ended.wait(STOP_POLL_SECONDS):
            try:
                stopped = self._store.check([self._key])
            except Exception:  # a store that went away: the work's own collective says it
                return
            if stopped:
                with self._lock:
                    if self._working:
                        _interrupt_main_thread()
                return

    def stop(self):
        """End the watch: no interrupt comes after this returns."""
        with self._lock:
            self._working = False
        self._ended.set()
        if self._thread is not None:
            self._thread.join()

    def stopped_by(self):
        """The rank of the waiting process that asked to stop, or None."""
        try:
            if self._store.check([self._key]):
                return int(self._store.get(self._key))
        except Exception:
            pass
        return None


class _Receiving:
    """A waiting process's part of :func:`on_main_process`: process 0's payload, received in
    a thread of its own (a collective operation holds the thread it runs in until it ends,
    signals or not) while the main thread waits where a Ctrl-C reaches it."""

    def __init__(self, group):
        self._received, self._failed = [None], []
        # waited on, not the thread: a join that Ctrl-C interrupts marks it ended (bpo-45274)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._receive, args=(group,), daemon=True,
                                        name="brainjepa_sk on_main_process receive")
        self._thread.start()

    def _receive(self, group):
        try:
            dist.broadcast_object_list(self._received, src=0, group=group)
        except BaseException as error:  # raised in the main thread
            self._failed.append(error)
        finally:
            self._done.set()

    def is_alive(self):
        return not self._done.is_set()

    def wait(self, store, stop_key, rank, function):
        """The payload; at the first Ctrl-C, ask process 0 to stop (``stop_key``) and wait
        on for its answer; at a second, raise at once."""
        interrupted = None
        while not self._done.is_set():
            try:
                self._done.wait(STOP_POLL_SECONDS)
            except KeyboardInterrupt as error:
                if interrupted is not None:
                    raise
                interrupted = error
                try:
                    store.set(stop_key, str(rank))
                except Exception:  # process 0 cannot be told: this process stops alone
                    raise error from None
        if self._failed:
            raise self._failed[0]
        if interrupted is not None and self._received[0][0]:
            # the signal came as process 0's result was on its way: this process stops alone
            raise KeyboardInterrupt(
                f"stopped by Ctrl-C (SIGINT) in process {rank} as process 0's result of "
                f"{_work_name(function)} arrived: the other processes go on, and wait in "
                "their next collective operation until this one ends") from interrupted
        return self._received
