"""Training data: preprocessed windows as a torch ``Dataset``, and a seeded, resumable sampler.

The loop only iterates a :class:`torch.utils.data.DataLoader`; where the windows come from (memory
here, files later) and how they are split (one process, or a ``DistributedSampler``) is decided
when the loader is built.
"""

from __future__ import annotations

import multiprocessing
import numbers
import signal
import threading

import numpy as np
import torch

from ..nn._checks import check_count

__all__ = ["LazyWindowDataset", "ShuffleSampler", "WindowDataset", "ignore_sigterm",
           "stop_persistent_workers", "window_loader", "worker_context"]


class WindowDataset(torch.utils.data.Dataset):
    """Preprocessed fixed-length windows, one training sample each.

    Parameters
    ----------
    windows : numpy.ndarray
        ``(n_windows, n_frames, n_regions)`` float32 windows (nilearn orientation).
    subject_index : numpy.ndarray, optional
        ``(n_windows,)`` subject of each window.
    """

    def __init__(self, windows, subject_index=None):
        self.windows = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        self.subject_index = (
            None if subject_index is None else torch.as_tensor(subject_index, dtype=torch.long)
        )

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, index):
        return self.windows[index]

    def __getitems__(self, indices):
        # One gather per batch instead of one indexing call per window (DataLoader uses it).
        return self.windows[torch.as_tensor(indices, dtype=torch.long)]


class LazyWindowDataset(torch.utils.data.Dataset):
    """Windows read when they are indexed (by the loader's workers), e.g. from files.

    Only the table of where each window starts is held; a corpus larger than memory trains
    with the memory of a few batches.

    Parameters
    ----------
    subject_index : numpy.ndarray
        ``(n_windows,)`` subject of each window.
    starts : numpy.ndarray
        ``(n_windows,)`` first frame of each window in its subject's series.
    read_window : callable
        ``read_window(subject, start)`` returns one ``(n_frames, n_regions)`` float32 window.
        It must pickle, for loader workers started by ``spawn`` or ``forkserver``.
    """

    def __init__(self, subject_index, starts, read_window):
        self.subject_index = torch.as_tensor(np.asarray(subject_index), dtype=torch.long)
        self.starts = np.asarray(starts, dtype=np.int64)
        self.read_window = read_window

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, index):
        index = int(index)
        window = self.read_window(int(self.subject_index[index]), int(self.starts[index]))
        return torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))

    def __getitems__(self, indices):
        return torch.stack([self[index] for index in indices])


class ShuffleSampler(torch.utils.data.Sampler):
    """A new random order of ``n_samples`` indices at every pass, from one seeded generator.

    Each pass draws one permutation, so the order of pass ``k`` depends only on the seed and
    ``k``. :meth:`state_dict` holds the generator state, which is all a run resumed between
    passes needs; :meth:`resume_pass` continues a pass that was cut off.

    Under data parallelism every process draws the same permutation, cuts it into global
    batches of ``batch_size`` (the last incomplete one dropped) and takes its share of each
    (places ``rank, rank + num_replicas, ...``, where :class:`PretrainLoop` takes its masks),
    so ``num_replicas`` processes of batch ``batch_size / num_replicas`` see, step by step, the
    windows that one process of batch ``batch_size`` sees. The state does not depend on the
    number of processes: a run saved by one process count resumes under another.

    Parameters
    ----------
    n_samples : int
        Size of the dataset.
    seed : int
        Seed of the sampler's own CPU generator (the global generator is not used).
    num_replicas : int, default=1
        Number of processes sharing each global batch.
    rank : int, default=0
        This process's place among them.
    batch_size : int, optional
        The global batch, a multiple of ``num_replicas``; needed when ``num_replicas > 1``.

    Raises
    ------
    ValueError
        When a count is not an int (``n_samples`` and ``rank`` >= 0, ``num_replicas`` and
        ``batch_size`` >= 1), ``seed`` is not an int, ``rank`` is not below ``num_replicas``, or
        ``batch_size`` is not a multiple of ``num_replicas`` (``num_replicas > 1``).
    """

    def __init__(self, n_samples, seed, *, num_replicas=1, rank=0, batch_size=None):
        # ints only: int() took 10.5 samples as 10 and a seed of 1.5 as 1
        self.n_samples = check_count("n_samples", n_samples, 0)
        self.num_replicas = check_count("num_replicas", num_replicas)
        self.rank = check_count("rank", rank, 0)
        if batch_size is not None:
            batch_size = check_count("batch_size", batch_size)
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        if self.num_replicas > 1:
            if batch_size is None or batch_size % self.num_replicas:
                raise ValueError(
                    f"batch_size={batch_size} must be a multiple of num_replicas="
                    f"{self.num_replicas}")
            if not 0 <= self.rank < self.num_replicas:
                raise ValueError(f"rank={rank} is not in [0, {self.num_replicas})")
        self.batch_size = None if batch_size is None else int(batch_size)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._pass_start = None
        self._skip = 0

    def __len__(self):
        if self.num_replicas == 1:
            return self.n_samples
        return self.n_samples // self.batch_size * (self.batch_size // self.num_replicas)

    def __iter__(self):
        self._pass_start = self.generator.get_state()
        order = torch.randperm(self.n_samples, generator=self.generator)
        if self.num_replicas > 1:
            share = self.batch_size // self.num_replicas
            n_batches = self.n_samples // self.batch_size
            # rank r takes places r, r + P, r + 2P, ... of each global batch, as the loop
            # takes the masks of the global batch (and as DistributedSampler interleaves)
            order = order[: n_batches * self.batch_size].view(n_batches, share, self.num_replicas)
            order = order[:, :, self.rank].reshape(-1)
        skip, self._skip = self._skip, 0
        yield from order[skip:].tolist()

    def set_epoch(self, epoch):
        """No-op, for the interface of :class:`torch.utils.data.DistributedSampler`.

        The order already changes at every pass; the generator state carries it across a resume.

        Parameters
        ----------
        epoch : int
            Ignored.
        """

    def state_dict(self):
        """The generator state now, and at the start of the last pass.

        Returns
        -------
        dict
            ``generator`` (a ``ByteTensor``) and ``pass_start`` (the state before the last
            pass's permutation; ``None`` before the first pass).
        """
        return {"generator": self.generator.get_state(), "pass_start": self._pass_start}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned (the next pass is a new one).

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned; only its ``generator`` is used.
        """
        self.generator.set_state(state["generator"])
        self._skip = 0  # the rest of a pass that resume_pass had set up is not this new pass

    def resume_pass(self, state, position):
        """Make the next pass the rest of the pass that ``state`` was taken in.

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned during that pass.
        position : int
            How many indices of that pass this process used.
        """
        self.generator.set_state(state["pass_start"])
        self._skip = int(position)


def ignore_sigterm(worker_id):
    """A loader's ``worker_init_fn``: the worker ignores SIGTERM.

    Launchers signal the whole process group (torchrun's killpg, SLURM's --signal): a worker
    killed by it would fail the step or batch the main process is finishing before it stops
    (torch raises on a worker's exit). Workers end with the main process anyway.

    Parameters
    ----------
    worker_id : int
        The worker's number (unused).
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def loader_length(loader):
    """The batches a loader says it yields per pass: ``len(loader)``, or None without one.

    A loader of one's own may have no ``__len__`` (iterating it is all it promises), and a
    ``DataLoader`` has one that fails (``TypeError``) when its sampler or its
    ``IterableDataset`` has no length.

    Parameters
    ----------
    loader : iterable
        The loader.

    Returns
    -------
    int or None
        Its length, or None when ``len(loader)`` raises ``TypeError``.
    """
    try:
        return len(loader)
    except TypeError:
        return None


def stop_persistent_workers(loader):
    """Stop the worker processes a ``DataLoader`` with ``persistent_workers`` keeps between
    its passes; a later pass starts new ones.

    After an error, its traceback (which a notebook keeps) holds the loader, and with it
    workers that lived on, each holding a copy of the data (and ignoring SIGTERM: see
    :func:`ignore_sigterm`). torch has no public way to stop them (checked on torch 2.13): the
    iterator's own shutdown is called, as its ``__del__`` does.

    Parameters
    ----------
    loader : iterable
        A ``DataLoader``; anything else (no ``_iterator``) is left as it is.
    """
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
        loader._iterator = None


def _ignore_stop_signals(worker_id):
    """:func:`window_loader`'s ``worker_init_fn``: the worker ignores SIGTERM and SIGINT.

    Under several processes the pretraining loop finishes steps after either signal, until
    the processes agree to stop, and torchrun passes Ctrl-C on to each process's whole group
    (``killpg``): a worker that SIGINT ended (torch's workers end quietly on
    ``KeyboardInterrupt``) would fail those steps. In a single process, the loop stops its
    workers when Ctrl-C stops it.
    """
    ignore_sigterm(worker_id)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_context(num_workers):
    """The multiprocessing context for ``num_workers`` loader workers (None: torch's default).

    joblib's loky workers, which run ``cross_val_score(..., n_jobs=2)`` and ``GridSearchCV``
    fits, make their own ``"loky"`` the default start method, whose processes cannot start
    torch's workers (``AttributeError: 'Process' object has no attribute 'env'``); there the
    platform's default method is used instead.

    Parameters
    ----------
    num_workers : int
        Loader worker processes.

    Returns
    -------
    multiprocessing.context.BaseContext or None
        The platform's default context when the process's start method is not a standard one
        and workers are asked for (its processes start with it as the default method, which a
        spawned child sets); else None.
    """
    if not num_workers:
        return None
    standard = multiprocessing.get_all_start_methods()  # the first is the platform's default
    with _LAUNCH_LOCK:  # not the standard method another thread's loader switched to for now
        method = multiprocessing.get_start_method(allow_none=True)
    if method in (None, *standard):
        return None
    if standard[0] == "fork":
        # a forked child sets no start method, and one forked while the lock is held (as
        # _StandardContext's launches hold it) would wait on it for ever here
        return multiprocessing.get_context("fork")
    return _StandardContext(standard[0])


# one process starts at a time while the default start method is switched for it
_LAUNCH_LOCK = threading.Lock()


class _StandardContext(multiprocessing.context.BaseContext):
    """The context of a standard start method whose processes start with it as the default.

    A child started by ``spawn`` or ``forkserver`` (macOS's and Windows' default, and
    Python 3.14's on Linux) first sets the start method its parent had: "loky" in a joblib
    worker, which the new interpreter does not know ("cannot find context for 'loky'").
    """

    def __init__(self, method):
        self._method = method

    def get_start_method(self, allow_none=False):
        return self._method

    def Process(self, *args, **kwargs):  # noqa: N802 (multiprocessing's name)
        process = _WorkerProcess(*args, **kwargs)
        process._base = multiprocessing.get_context(self._method).Process
        return process


class _WorkerProcess(multiprocessing.process.BaseProcess):
    """A process of ``_base``'s method, started while that method is the default one."""

    @staticmethod
    def _Popen(process_obj):  # noqa: N802 (multiprocessing's name)
        base = process_obj.__dict__.pop("_base")
        process_obj.__class__ = base  # a plain process of its method, here and in the child
        with _LAUNCH_LOCK:
            previous = multiprocessing.get_start_method(allow_none=True)
            multiprocessing.set_start_method(base._start_method, force=True)
            try:
                return base._Popen(process_obj)
            finally:
                multiprocessing.set_start_method(previous, force=True)


def _stack(batch):
    # WindowDataset.__getitems__ already returns the stacked batch.
    return batch if isinstance(batch, torch.Tensor) else torch.stack(batch)


def window_loader(dataset, batch_size, sampler, *, pin_memory=False, num_workers=0,
                  prefetch_factor=None):
    """A loader of full batches in ``sampler``'s order (the last incomplete batch is dropped).

    Every step then has the same shape, which a compiled step needs.

    Parameters
    ----------
    dataset : torch.utils.data.Dataset
        Windows, one ``(n_frames, n_regions)`` tensor per index.
    batch_size : int
        Windows per batch (capped at the number of windows the sampler gives this process).
    sampler : torch.utils.data.Sampler
        Order of the windows, e.g. a :class:`ShuffleSampler` or a ``DistributedSampler``.
    pin_memory : bool, default=False
        Page-lock batches (for fast copies to a GPU).
    num_workers : int, default=0
        Loader worker processes (kept alive between epochs). They ignore SIGTERM and SIGINT
        (Ctrl-C), which launchers and terminals send to the whole process group: the main
        process handles them.
    prefetch_factor : int, optional
        Batches each worker loads ahead (torch's default, 2, when None).

    Returns
    -------
    torch.utils.data.DataLoader
        ``len(loader)`` is the number of steps per epoch.

    Raises
    ------
    ValueError
        When the sampler gives no window (an empty dataset, or a :class:`ShuffleSampler` of
        several processes whose windows make no whole global batch), or ``batch_size`` is not
        an int >= 1.
    """
    if not len(sampler):  # torch would complain of a batch_size of 0, which was not asked for
        if isinstance(sampler, ShuffleSampler) and sampler.n_samples:
            # not an empty dataset: the processes' sampler keeps whole global batches only
            raise ValueError(
                f"the sampler gives no window to load: its {sampler.n_samples} windows make no "
                f"whole global batch of {sampler.batch_size} (shared by {sampler.num_replicas} "
                "processes); use a global batch_size of at most the number of windows")
        raise ValueError("the sampler gives no window to load (is the dataset empty?)")
    # an int only: int() took 2.5 windows as 2 and "8" as 8
    batch_size = check_count("batch_size", batch_size)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=min(batch_size, len(sampler)),
        sampler=sampler,
        drop_last=True,
        collate_fn=_stack,
        pin_memory=pin_memory,
        num_workers=num_workers,
        multiprocessing_context=worker_context(num_workers),
        persistent_workers=num_workers > 0,
        worker_init_fn=_ignore_stop_signals if num_workers > 0 else None,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        # Its own generator: starting an epoch otherwise draws a worker seed from torch's
        # global generator, which stochastic depth uses, and a run resumed inside an epoch
        # would draw it at another point of the stream.
        generator=torch.Generator(),
    )
