"""Callbacks of :class:`~brainjepa_sk.train.PretrainLoop`, in the style of skorch's.

A callback subclasses :class:`Callback` and overrides the hooks it needs; every hook receives the
loop, whose ``model``, ``optimizer``, ``step``, ``epoch`` and ``history`` it may read, and whose
``stop_training`` it may set to True to end the run early. Hooks run in the order of the loop's
``callbacks`` list.
"""

from __future__ import annotations

import math
import warnings

import torch

from .._warnings import catch_warnings, warn_user
from ..nn._checks import check_count
from .runtime import all_finite, atomic_save, expand_home, load_file, tensor_checksum

__all__ = [
    "Callback",
    "Checkpoint",
    "CollapseMonitor",
    "NonFiniteLossGuard",
    "ProgressBar",
    "collapse_metrics",
    "peek_training_state",
    "read_training_state",
]


class Callback:
    """Base class: every hook is a no-op.

    A hook ends the run early by setting ``loop.stop_training = True``: the loop stops after
    the step (``on_step_end``) or the epoch (``on_epoch_end``) it is set in, and
    :meth:`PretrainLoop.run` returns (see ``stop_training`` in :class:`PretrainLoop`).
    """

    def on_train_begin(self, loop):
        """Before the first step of :meth:`PretrainLoop.run` (after a resume, if any).

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        """

    def on_epoch_begin(self, loop):
        """Before the first step of an epoch.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        """

    def on_step_end(self, loop, loss):
        """After an optimizer step and the EMA update.

        ``loss`` is a detached, unsynchronised tensor (calling ``.item()`` on it waits for the
        device).

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        loss : torch.Tensor
            The step's scalar loss.
        """

    def on_epoch_end(self, loop):
        """After an epoch; ``loop.history[-1]`` is its record, which callbacks may extend.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        """

    def on_interrupt(self, loop):
        """After the step during which SIGTERM arrived, or after Ctrl-C, before the loop stops.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        """

    def on_train_end(self, loop):
        """When :meth:`PretrainLoop.run` returns or raises.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        """


class ProgressBar(Callback):
    """A tqdm bar over all steps of the run, with the last epoch's loss.

    Parameters
    ----------
    disable : bool, default=False
        Show nothing.
    desc : str, default="pretraining"
        Label of the bar.
    """

    def __init__(self, disable=False, desc="pretraining"):
        self.disable = disable
        self.desc = desc
        self.bar = None

    def on_train_begin(self, loop):
        """Open a bar of ``n_epochs * steps_per_epoch`` steps, starting at the loop's step.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        """
        from tqdm.auto import tqdm

        self.bar = tqdm(total=loop.n_epochs * loop.steps_per_epoch, initial=loop.step,
                        disable=self.disable, desc=self.desc, unit="step")

    def on_step_end(self, loop, loss):
        """Advance the bar by one step (without reading ``loss``).

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        loss : torch.Tensor
            The step's scalar loss, detached and not synchronised.
        """
        self.bar.update()

    def on_epoch_end(self, loop):
        """Show the epoch's mean loss next to the bar.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        """
        self.bar.set_postfix(loss=f"{loop.history[-1]['loss']:.4f}")

    def on_train_end(self, loop):
        """Close the bar, if open.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        """
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
        features (Roy & Vetterli, 2007), between 1 and ``min(n_samples - 1, dim)`` (centring
        takes one dimension: 1 for two samples). Both are NaN
        for fewer than two samples or non-finite features.
    """
    features = features.float().reshape(-1, features.shape[-1])
    # fewer than two samples: no spread to measure (not "collapsed", unknown); non-finite
    # features (a diverged run, which CollapseMonitor reports): none to measure either
    if features.shape[0] < 2 or not bool(torch.isfinite(features).all()):
        return {"std": float("nan"), "effective_rank": float("nan")}
    centred = features - features.mean(0, keepdim=True)
    std = features.std(0).mean()
    singular = torch.linalg.svdvals(centred)
    p = singular / singular.sum().clamp_min(1e-12)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum()
    return {"std": float(std), "effective_rank": float(torch.exp(entropy))}


class CollapseMonitor(Callback):
    """Adds ``target_std`` and ``effective_rank`` to each epoch's record.

    Both are :func:`collapse_metrics` of the target encoder's mean-pooled features of fixed
    windows, computed in eval mode (no stochastic depth) and under the loop's autocast.
    Features that are NaN or infinite stop the run with ``FloatingPointError``.

    Parameters
    ----------
    windows : torch.Tensor
        ``(n_windows, n_frames, n_regions)`` windows on the model's device.
    batch_size : int or None, default=None
        Windows passed through the target encoder at a time (None: all at once). The
        pretrainer passes its micro-batch, so that the monitors take no more memory than a
        training step whatever the number of windows monitored.

    Raises
    ------
    ValueError
        When ``batch_size`` is neither None nor an int >= 1.
    """

    def __init__(self, windows, batch_size=None):
        self.windows = windows
        self.batch_size = None if batch_size is None else check_count("batch_size", batch_size)

    def on_epoch_end(self, loop):
        """Add ``target_std`` and ``effective_rank`` of the fixed windows to the epoch's record.

        The model is put back in the training mode it was in.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.

        Raises
        ------
        FloatingPointError
            When the features are NaN or infinite (a diverged run).
        """
        model = loop.model
        was_training = model.training
        model.eval()
        dtype = loop.autocast_dtype
        with torch.no_grad(), torch.autocast(
            self.windows.device.type, dtype=dtype, enabled=dtype is not None
        ):
            chunk = self.batch_size or len(self.windows)
            features = torch.cat([model.target_encoder(windows).float().mean(1)
                                  for windows in self.windows.split(chunk)])
        model.train(was_training)
        if not bool(torch.isfinite(features).all()):
            # the losses come before each update: a run whose last updates diverged shows here
            raise FloatingPointError(
                f"the target encoder's features became NaN or infinite in epoch "
                f"{loop.history[-1]['epoch']} (its last updates diverged); lower lr or check "
                "the input scaling"
            )
        metrics = collapse_metrics(features)
        loop.history[-1].update(target_std=metrics["std"], effective_rank=metrics["effective_rank"])


class NonFiniteLossGuard(Callback):
    """Stops the run with ``FloatingPointError`` when an epoch's mean loss, or the model's
    weights at its end, are NaN or infinite.

    Checked once per epoch, so that steps never wait for the device. The weights are checked
    too because the losses are computed before each update: a run that diverges at its last
    step has finite losses and NaN weights.
    """

    def on_epoch_end(self, loop):
        """Raise ``FloatingPointError`` if the epoch's mean loss or the weights are not finite.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.

        Raises
        ------
        FloatingPointError
            When ``loop.history[-1]["loss"]`` or a parameter of ``loop.model`` is not finite.
        """
        record = loop.history[-1]
        if not math.isfinite(record["loss"]):
            raise FloatingPointError(
                f"the pretraining loss became {record['loss']} in epoch {record['epoch']}; "
                "lower lr or check the input scaling"
            )
        if not all_finite(loop.model.parameters()):
            raise FloatingPointError(
                f"the model's weights became NaN or infinite in epoch {record['epoch']} (its "
                "last updates diverged); lower lr or check the input scaling"
            )


class Checkpoint(Callback):
    """Saves the loop's state after every epoch (and every ``every_steps`` steps, and on SIGTERM
    or Ctrl-C).

    :meth:`~brainjepa_sk.train.Checkpoint.restore` resumes from it, between epochs or inside one.

    Put it last in the loop's callbacks, so that the saved history holds what the other
    callbacks added to the epoch's record, and call
    :meth:`~brainjepa_sk.train.Checkpoint.restore` before :meth:`PretrainLoop.run`::

        checkpoint = Checkpoint("run/last.pt", key="my-run")
        loop = PretrainLoop(model, loader, masks, schedule, n_epochs, callbacks=[checkpoint])
        checkpoint.restore(loop)  # continues a run that was interrupted
        loop.run()

    Parameters
    ----------
    path : str or path-like
        The state file (written atomically: a kill during a save keeps the previous file).
    key : str or None
        Identifies the run (settings, data, seeds). A file written under another key, or any file
        when ``key`` is None (a run that cannot be reproduced), is not resumed: a warning says so
        and the file is overwritten.
    extra : dict, optional
        Saved with every state (tensors and plain values), e.g. what is needed to rebuild the
        model from the file (:func:`brainjepa_sk.checkpoint.export_training_state`).
    every_steps : int, optional
        Also save after every ``every_steps`` optimizer steps (a killed run then loses at most
        that many steps). Each save waits for the device once.

    Raises
    ------
    TypeError
        When ``path`` is not a str or path-like (None, a number, bytes).
    ValueError
        When ``every_steps`` is neither None nor an int >= 1.
    """

    def __init__(self, path, key, extra=None, every_steps=None):
        self.path = expand_home(path, "path", "a file's path")
        self.key = key
        self.extra = extra
        # 0 never saved between epochs and -2 saved every 2 steps, without a word
        self.every_steps = None if every_steps is None else check_count("every_steps",
                                                                        every_steps)

    def on_step_end(self, loop, loss):
        """Save when ``every_steps`` is set and the loop's step count is a multiple of it.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        loss : torch.Tensor
            The step's scalar loss, detached and not synchronised.
        """
        if self.every_steps and loop.step % self.every_steps == 0:
            self.save(loop)

    def on_interrupt(self, loop):
        """Save before the loop stops on SIGTERM or Ctrl-C.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        """
        self.save(loop)

    def restore(self, loop):
        """Load the saved state into ``loop`` if the file holds this run.

        Parameters
        ----------
        loop : PretrainLoop
            A loop built like the one that wrote the file.

        Returns
        -------
        bool
            Whether the loop was resumed.

        Raises
        ------
        ValueError
            Naming the file, when it is truncated, damaged (its checksum does not match), not
            a training state, or the state of another model under the same key; or when it
            is a folder (or a link to one), which the saves refuse.
        """
        if not self.path.is_file():
            if self.path.is_dir():
                # said before the run: its first save would fail only after an epoch trained
                link = (f" (a link to the folder {self.path.resolve()})"
                        if self.path.is_symlink() else "")
                raise ValueError(
                    f"{self.path} is a folder{link}, where the run's state is to be saved: "
                    "move it out of the way, or save the run elsewhere")
            return False
        if self.key is None:  # never resumed: not read (it may be large, or damaged)
            # the pure-torch caller's key, or the pretrainer's for an unseeded run
            why = ("it has no run key (key=None: the run cannot be reproduced, e.g. its "
                   "random_state is not an int)")
        else:
            try:
                state = read_training_state(self.path)
            except ValueError as error:
                raise ValueError(f"{error}; delete it to start the run afresh") from error
            if state.get("key") == self.key:
                try:
                    loop.load_state_dict(state["loop"])
                except ValueError as error:
                    raise ValueError(f"{self.path}: {error}; delete it to start the run afresh"
                                     ) from error
                return True
            why = "it was written with other settings or data"
        warn_user(
            f"not resuming from {self.path}: {why}; starting afresh and overwriting it",
        )
        return False

    def on_epoch_end(self, loop):
        """Save after every epoch.

        Parameters
        ----------
        loop : PretrainLoop
            The running loop.
        """
        self.save(loop)

    def save(self, loop):
        """Write the loop's state now (atomically).

        The file holds ``loop`` (:meth:`PretrainLoop.state_dict`), ``key``, ``checksum`` (of
        the loop's tensors and values: the optimizer's settings, the step and epoch counters,
        the history), ``extra`` and ``extra_checksum`` (of the key and ``extra``).

        Parameters
        ----------
        loop : PretrainLoop
            The loop whose state is saved.
        """
        state = loop.state_dict()
        atomic_save({"loop": state, "key": self.key,
                     "checksum": tensor_checksum(state, values=True), "checksum_values": True,
                     "extra": self.extra, "extra_checksum": _extra_checksum(self.key, self.extra)},
                    self.path)


#: What every reader of a state file takes from its loop state (exporting its model needs
#: these; resuming needs more, which :meth:`PretrainLoop.load_state_dict` checks).
_LOOP_KEYS = ("model", "epoch", "history")


def _extra_checksum(key, extra):
    return tensor_checksum({"key": key, "extra": extra}, values=True)


def peek_training_state(path):
    """A state file's ``key``, ``extra`` and counters, without reading its tensors.

    The file is memory-mapped, so that the model and optimizer tensors stay on the disk:
    enough to tell which run a file holds (``extra`` is checked against its own checksum).
    Use :func:`~brainjepa_sk.train.read_training_state` to load and verify the whole state.

    Parameters
    ----------
    path : str or path-like
        A state file written by :class:`Checkpoint`.

    Returns
    -------
    dict or None
        The state, its tensors not read; None when the file cannot be read this way or its
        ``extra`` is damaged (:func:`~brainjepa_sk.train.read_training_state` then says why).
    """
    try:
        with catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 -- any failure: the full read reports it
        return None
    if not isinstance(state, dict) or "loop" not in state:
        return None
    if "extra_checksum" in state and state["extra_checksum"] != _extra_checksum(
            state.get("key"), state.get("extra")):
        return None
    return state


def read_training_state(path):
    """Read a state file written by :class:`Checkpoint`, verifying its checksum.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    dict
        ``loop`` (what :meth:`PretrainLoop.state_dict` returned, on the CPU), ``key``,
        ``extra`` and the checksums :meth:`Checkpoint.save` wrote (``checksum``,
        ``checksum_values``, ``extra_checksum``; older files may lack the last two).

    Raises
    ------
    TypeError
        When ``path`` is not a str or path-like (None, a number, bytes).
    ValueError
        Naming the file, when it is truncated, damaged (its checksum does not match), not a
        training state, or its loop state lacks the model, the epoch or the history (what
        every reader takes; :meth:`PretrainLoop.load_state_dict` checks the rest of what
        resuming needs).
    """
    # CPU first: generator states must stay CPU tensors; load_state_dict moves the rest.
    state = load_file(path, map_location="cpu", what="training state")
    if not isinstance(state, dict) or "loop" not in state:
        raise ValueError(f"{path} is not a training state")
    # checked here, not as a KeyError once a resume has loaded part of the state
    missing = ([key for key in _LOOP_KEYS if key not in state["loop"]]
               if isinstance(state["loop"], dict) else list(_LOOP_KEYS))
    if missing:
        raise ValueError(
            f"{path} is an incomplete training state: it has no {missing} (not written by "
            "Checkpoint.save, or by a version of brainjepa_sk that saved other parts)")
    # states saved before the values were counted have a checksum of their tensors only
    if "checksum" in state and state["checksum"] != tensor_checksum(
            state["loop"], values=state.get("checksum_values") is True):
        raise ValueError(
            f"{path} is damaged: its contents do not match the checksum stored with them"
        )
    # states saved before extra_checksum existed have none
    if "extra_checksum" in state and state["extra_checksum"] != _extra_checksum(
            state.get("key"), state.get("extra")):
        raise ValueError(
            f"{path} is damaged: its run key and settings do not match the checksum stored "
            "with them"
        )
    return state
