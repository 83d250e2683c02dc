"""The one dataset abstraction used for training: preprocessed windows of ROI time series."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["WindowDataset"]


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

    def batches(self, batch_size, generator, drop_last=True):
        """One epoch of shuffled batches.

        Parameters
        ----------
        batch_size : int
            Windows per batch (capped at the dataset size).
        generator : torch.Generator
            CPU generator that decides the order (its state is part of a training checkpoint).
        drop_last : bool, default=True
            Drop the last incomplete batch, so every step has the same shape.

        Yields
        ------
        torch.Tensor
            ``(batch, n_frames, n_regions)`` float32 batches on the CPU.
        """
        batch_size = min(int(batch_size), len(self))
        order = torch.randperm(len(self), generator=generator)
        stop = len(order) - len(order) % batch_size if drop_last else len(order)
        for start in range(0, stop, batch_size):
            yield self.windows[order[start : start + batch_size]]

    def steps_per_epoch(self, batch_size, drop_last=True):
        """Number of batches :meth:`batches` yields per epoch."""
        batch_size = min(int(batch_size), len(self))
        return len(self) // batch_size if drop_last else -(-len(self) // batch_size)
