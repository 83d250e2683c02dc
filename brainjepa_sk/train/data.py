"""Training data: preprocessed windows as a torch ``Dataset``, and a seeded, resumable sampler.

The loop only iterates a :class:`torch.utils.data.DataLoader`; where the windows come from (memory
here, files later) and how they are split (one process, or a ``DistributedSampler``) is decided
when the loader is built.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["LazyWindowDataset", "ShuffleSampler", "WindowDataset", "window_loader"]


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

    Parameters
    ----------
    n_samples : int
        Size of the dataset.
    seed : int
        Seed of the sampler's own CPU generator (the global generator is not used).
    """

    def __init__(self, n_samples, seed):
        self.n_samples = int(n_samples)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._pass_start = None
        self._skip = 0

    def __len__(self):
        return self.n_samples

    def __iter__(self):
        self._pass_start = self.generator.get_state()
        order = torch.randperm(self.n_samples, generator=self.generator)
        skip, self._skip = self._skip, 0
        yield from order[skip:].tolist()

    def set_epoch(self, epoch):
        """No-op, for the interface of :class:`torch.utils.data.DistributedSampler`.

        The order already changes at every pass; the generator state carries it across a resume.
        """

    def state_dict(self):
        """The generator state now, and at the start of the last pass."""
        return {"generator": self.generator.get_state(), "pass_start": self._pass_start}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned (the next pass is a new one)."""
        self.generator.set_state(state["generator"])

    def resume_pass(self, state, position):
        """Make the next pass the rest of the pass that ``state`` was taken in.

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned during that pass.
        position : int
            How many indices of that pass were used.
        """
        self.generator.set_state(state["pass_start"])
        self._skip = int(position)


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
        Windows per batch (capped at the dataset size).
    sampler : torch.utils.data.Sampler
        Order of the windows, e.g. a :class:`ShuffleSampler` or a ``DistributedSampler``.
    pin_memory : bool, default=False
        Page-lock batches (for fast copies to a GPU).
    num_workers : int, default=0
        Loader worker processes (kept alive between epochs).
    prefetch_factor : int, optional
        Batches each worker loads ahead (torch's default, 2, when None).

    Returns
    -------
    torch.utils.data.DataLoader
        ``len(loader)`` is the number of steps per epoch.
    """
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=min(int(batch_size), len(sampler)),
        sampler=sampler,
        drop_last=True,
        collate_fn=_stack,
        pin_memory=pin_memory,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        prefetch_factor=prefetch_factor if num_workers > 0 else None,
        # Its own generator: starting an epoch otherwise draws a worker seed from torch's
        # global generator, which stochastic depth uses, and a run resumed inside an epoch
        # would draw it at another point of the stream.
        generator=torch.Generator(),
    )
