"""The Brain-JEPA pretraining loop: epochs of JEPA steps, with callbacks and a resumable state."""

from __future__ import annotations

import contextlib

import torch

from .._warnings import warn_user
from ..nn._checks import check_count, type_with_article
from .data import stop_persistent_workers
from .distributed import all_reduce_mean, any_process, any_process_each, world
from .optim import make_optimizer, set_hyperparameters
from .runtime import (
    deferring_ctrl_c,
    global_rng_state,
    noting_ctrl_c,
    noting_first_ctrl_c,
    noting_sigterm,
    set_global_rng_state,
)
from .step import train_step

__all__ = ["PretrainLoop", "TrainingInterrupted"]


#: The signals that stop a run at a step boundary (with several processes, Ctrl-C too), by the
#: key their handler notes, and their names in messages.
_STOP_SIGNALS = {"sigterm": "SIGTERM", "ctrl_c": "Ctrl-C"}

#: What :meth:`PretrainLoop.load_state_dict` needs of a state (states saved before the others
#: existed lack them).
_STATE_KEYS = ("model", "optimizer", "mask_sampler", "data_sampler", "global_rng", "epoch",
               "step", "history")


def _class_name(obj):
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _generator_state(generator):
    """The state of a CPU ``generator``, torch's global one for None."""
    return torch.get_rng_state() if generator is None else generator.get_state()


def _set_generator_state(generator, state):
    if generator is None:
        torch.set_rng_state(state)
    else:
        generator.set_state(state)


class TrainingInterrupted(KeyboardInterrupt):
    """Raised by :meth:`PretrainLoop.run` after SIGTERM or Ctrl-C.

    Raised once the current step has finished (SIGTERM; with several processes, Ctrl-C too, at
    a step they agree on) or been undone (Ctrl-C inside a step's forward or backward pass) and
    the callbacks' ``on_interrupt`` hooks (e.g. :class:`Checkpoint`) have run. The fine-tuning
    estimators' ``fit`` and ``partial_fit`` raise it too (SIGTERM after the current batch,
    Ctrl-C at once), leaving the estimator as it was.

    A ``KeyboardInterrupt``, so that scikit-learn's cross-validation does not take it for a
    failed fit and go on with the next fold.
    """


class PretrainLoop:
    """Pretrain a :class:`~brainjepa_sk.nn.BrainJEPA` over a loader of windows.

    Each step takes the schedule's values for the step number, draws masks, and runs
    :func:`~brainjepa_sk.train.train_step` (forward, backward, optimizer step, EMA of the target
    encoder). Each epoch appends a record to ``history`` and calls the callbacks. The loop
    reads no global state except torch's global generator, which stochastic depth draws from
    and which :meth:`state_dict` records.

    Parameters
    ----------
    model : BrainJEPA
        On the device to train on.
    loader : iterable of torch.Tensor
        Yields ``(batch, n_frames, n_regions)`` windows; ``len(loader)`` steps per epoch (the
        first pass of a run that yields another count warns: a pass that yields more ends
        after that many steps, one that yields fewer leaves a schedule sized by that len
        short of its end). When
        its ``sampler`` has ``state_dict`` (e.g. :class:`~brainjepa_sk.train.ShuffleSampler`),
        that state is part of the loop's; one with ``set_epoch`` (e.g. a
        ``DistributedSampler``) is told the epoch before each pass. A sampler without a state
        draws from the loader's ``generator`` (e.g. ``DataLoader(shuffle=True,
        generator=torch.Generator().manual_seed(0))``), from torch's global generator (the
        same without ``generator``), or from its own ``generator`` (e.g. a
        ``RandomSampler(..., generator=...)``): the loop keeps these generators' states at the
        start of each pass, so that a loop stopped inside an epoch and run again, or resumed
        from its state, draws that pass's order again and skips the batches done (they are
        loaded again, then dropped). Orders drawn from generators the loop does not see
        (NumPy's, or the own generator of a sampler inside a custom ``batch_sampler``) do not
        resume a pass exactly: the steps done are skipped in a new order, so some windows of
        that epoch are seen twice and others not at all.
    mask_sampler : SpatiotemporalMaskSampler
        Draws the context and target tokens of each step.
    schedule : callable
        ``schedule(step) -> (lr, weight_decay, ema_momentum)``, e.g.
        :class:`~brainjepa_sk.train.PretrainSchedule`.
    n_epochs : int
        Epochs of the whole run (a resumed run continues up to it).
    optimizer : torch.optim.Optimizer, optional
        Default: :func:`~brainjepa_sk.train.make_optimizer` over the encoder and predictor.
    autocast_dtype : torch.dtype, optional
        Autocast dtype of the forward passes (``torch.bfloat16`` on GPU); ``None``: float32.
    callbacks : list of Callback, optional
        Called in order at each hook (see :class:`~brainjepa_sk.train.Callback`).
    compile : bool or dict, default=False
        Run the forward pass (targets, context, prediction, loss) through ``torch.compile``
        (a dict: its keyword arguments, e.g. ``{"backend": "aot_eager"}``). Shapes are static
        (``dynamic=False``): with a mask sampler of ``static_shapes=True`` and full batches,
        every step reuses one compiled graph. The optimizer step and the EMA stay eager, so
        the schedule's values never cause a recompilation.
    accumulation_steps : int, default=1
        Micro-batches per step (gradient accumulation; see
        :func:`~brainjepa_sk.train.train_step`): each step still takes one batch of the
        loader, but runs it in ``accumulation_steps`` pieces, so that a batch too large for the
        device's memory trains as if it fitted. The loader's batch size (and its last batch,
        when it keeps an incomplete one) must be a multiple.

    Raises
    ------
    TypeError
        When the loader has no ``len()`` (a loader class without ``__len__``, or a
        ``DataLoader`` whose sampler or ``IterableDataset`` has none).
    ValueError
        When ``n_epochs`` is not an int >= 0, ``accumulation_steps`` is not an int >= 1 or
        does not divide the loader's batch size (or its incomplete last batch, which a loader
        with ``drop_last=False`` yields), or the loader yields no batch
        (``len(loader) == 0``: fewer windows than one batch, with incomplete batches dropped).

    Attributes
    ----------
    epoch : int
        Epochs completed.
    step : int
        Optimizer steps completed.
    history : list of dict
        Per completed epoch: ``epoch``, ``loss`` (mean over its steps), ``lr`` (at its last
        step), and what the callbacks add. An epoch stopped inside (``stop_training``, SIGTERM,
        Ctrl-C, an error) has no record until a later :meth:`run` finishes it; what it trained
        so far is in ``step`` and the state (``step_in_epoch``, its loss so far).
    stop_training : bool
        Set it to True in a callback's hook to end :meth:`run` early: checked after each
        step's ``on_step_end`` hooks and after each epoch's ``on_epoch_end`` hooks (set at an
        epoch's last step, that epoch's record and hooks come first). The run then returns
        its ``history`` as a finished one does (``on_train_end`` is called, and no
        ``on_interrupt``); stopped inside an epoch, it is left as a loop stopped there by an
        error: :meth:`state_dict` resumes it exactly, and a later :meth:`run`, which sets the
        flag back to False, finishes that epoch and goes on up to ``n_epochs``. It is not part
        of the state. With several processes, they agree on it (any process's) at each
        epoch's end, every :attr:`stop_agreement_every` steps and when a SIGTERM or Ctrl-C
        stops the run (before the ``on_interrupt`` hooks), and all stop after the same step.
    """

    def __init__(self, model, loader, mask_sampler, schedule, n_epochs, *, optimizer=None,
                 autocast_dtype=None, callbacks=None, compile=False, accumulation_steps=1):
        self.model = model
        self.loader = loader
        self.mask_sampler = mask_sampler
        self.schedule = schedule
        self.n_epochs = check_count("n_epochs", n_epochs, minimum=0)
        if optimizer is None:
            lr, weight_decay, _ = schedule(0)
            optimizer = make_optimizer(model, lr=lr, weight_decay=weight_decay)
        self.optimizer = optimizer
        self.autocast_dtype = autocast_dtype
        self.callbacks = list(callbacks or [])
        self.device = next(model.parameters()).device
        self.compile = compile
        self.rank, self.world_size = world()
        self.accumulation_steps = check_count("accumulation_steps", accumulation_steps)
        try:  # the loop, its progress bar and a schedule of epochs count steps by it
            steps_per_epoch = len(loader)
        except TypeError as error:  # no __len__, or a DataLoader whose sampler has none
            raise TypeError(
                f"the loader must have a len(), the batches (steps) it yields per epoch, "
                f"which the loop counts by (as PretrainSchedule.from_epochs and ProgressBar "
                f"do), but {type_with_article(loader)} has none ({error}): give it a __len__ "
                "that returns them (a DataLoader over a map-style dataset, as window_loader "
                "makes, has one)") from error
        batch_size = getattr(loader, "batch_size", None)
        if batch_size is not None and batch_size % self.accumulation_steps:
            raise ValueError(
                f"accumulation_steps={accumulation_steps} must be a positive divisor of the "
                f"loader's batch size ({batch_size})")
        # a loader that keeps its incomplete last batch (drop_last=False) would fail at the
        # epoch's last step, after the others trained, and again at every run after it
        sampler = getattr(loader, "sampler", None)
        if (batch_size is not None and not getattr(loader, "drop_last", True)
                and hasattr(sampler, "__len__")
                and len(sampler) % batch_size % self.accumulation_steps):
            raise ValueError(
                f"accumulation_steps={accumulation_steps} does not divide the loader's last "
                f"batch ({len(sampler) % batch_size} of {len(sampler)} windows in batches of "
                f"{batch_size}): drop incomplete batches (drop_last=True, as window_loader "
                "does)")
        if not steps_per_epoch:  # an epoch without steps: no loss to average, nothing trained
            raise ValueError(
                f"the loader yields no batch: it has fewer windows than one batch "
                f"({batch_size}) and drops incomplete batches; use a smaller batch size or "
                "more windows")
        # wrappers share the model's parameters; state dicts and the EMA use the model itself
        self._forward = model
        self._no_sync = None
        if self.world_size > 1:
            self._forward = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=None if self.device.type == "cpu" else [self.device])
            # accumulated micro-batches all-reduce their gradients once, with the last one
            self._no_sync = self._forward.no_sync
        if compile:
            options = {"dynamic": False, **(compile if isinstance(compile, dict) else {})}
            self._forward = torch.compile(self._forward, **options)
        self.epoch = 0
        self.step = 0
        self.step_in_epoch = 0
        self.history = []
        self._epoch_loss = None
        self._skip_batches = 0
        self._pass = None  # where the pass being run was drawn from (see _order_generators)
        self._replay = None  # that of a pass stopped inside, to draw again before skipping
        # noted by run's handlers: SIGTERM, and with several processes a first Ctrl-C
        self._stop_signals = {}
        self._stopping = False  # the on_interrupt hooks of a stop at a step boundary began
        self.stop_training = False
        self._miscount_warned = False  # a pass of another length than len(loader) was told
        self._pass_cut = False  # the pass being run yielded more than len(loader) batches
        self._counting = None  # the running step's ExitStack, between its start and its count
        #: With several processes, how often (in steps) they agree on a SIGTERM or Ctrl-C: each
        #: may get it between other steps, and all must stop after the same one. Agreeing costs
        #: one small all-reduce and a host synchronisation, so it is not done at every step.
        self.stop_agreement_every = 8

    @property
    def steps_per_epoch(self):
        """Optimizer steps per epoch (``len(loader)``)."""
        return len(self.loader)

    def _notify(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def run(self):
        """Train from the current state up to ``n_epochs``.

        A loop stopped inside an epoch (an exception, a SIGTERM) and run again finishes that
        epoch first, with the rest of its data, as a resume from its saved state would. A step
        stopped part-way (before the optimizer updated the weights: Ctrl-C in its forward or
        backward pass) is not counted: it is run again, with the masks and stochastic-depth
        draws it had. Ctrl-C from the optimizer step on (a ``torch.optim.Optimizer``'s, whose
        step pre-hooks mark it) waits until the step (its EMA update included) is counted and its
        ``on_step_end`` hooks have run, and stops the run after it.

        In the main thread, SIGTERM (a job scheduler's pre-emption) lets the current step
        finish, calls the ``on_interrupt`` hooks and raises :class:`TrainingInterrupted`.
        Ctrl-C (SIGINT, where Python's handler raises ``KeyboardInterrupt``) also calls the
        ``on_interrupt`` hooks, once the loop is left as described above, when a step was
        counted since :meth:`run` began, and raises :class:`TrainingInterrupted` from the
        ``KeyboardInterrupt`` (a ``KeyboardInterrupt`` raised by code, not by the signal, goes
        on as it is, without them).
        One that came during an epoch's end hooks, or the ``on_train_begin`` hooks, stops the
        run before its next step. With several processes, they agree every
        :attr:`stop_agreement_every` steps (and before each epoch) on whether any of them got
        the signal, and all stop after the same step. There Ctrl-C is handled as SIGTERM is (the
        first SIGINT a process gets is noted, and all stop after the next agreement, with the
        ``on_interrupt`` hooks and :class:`TrainingInterrupted`): a ``KeyboardInterrupt`` raised
        at once would stop each process at another point and leave the others waiting in a
        collective operation. A second SIGINT to a process raises its ``KeyboardInterrupt`` at
        once, which ends that process as Ctrl-C ends a single one (during the ``on_interrupt``
        hooks of the agreed stop, without them running again); the others then wait in their
        next collective operation until the launcher (``torchrun`` ends them all once one fails)
        or the process group's timeout ends them. A SIGTERM handler that Python cannot read
        (``signal.getsignal`` is None: one an embedding program set before Python started), and
        so could not put back, is left in place, and an ignored SIGTERM (``SIG_IGN``) stays
        ignored.

        Returns
        -------
        list of dict
            ``history``.
        """
        self.model.train()
        self._stop_signals = {}
        self._stopping = False
        self.stop_training = False
        self._miscount_warned = False
        ctrl_c, first_step = {}, self.step
        with contextlib.ExitStack() as setup:  # failed, nothing began: all put back
            # SIGTERM noted in the main thread (a handler Python did not set is kept)
            setup.enter_context(noting_sigterm(self._stop_signals))
            # Ctrl-C noted, to save what was trained (a KeyboardInterrupt raised by code is a
            # failure, as any error); with several processes, its first press stops the run
            # as SIGTERM does, at a step all agree on (a second one raises at once)
            setup.enter_context(noting_ctrl_c(ctrl_c) if self.world_size == 1
                                else noting_first_ctrl_c(self._stop_signals, ctrl_c))
            if hasattr(self.optimizer, "register_step_pre_hook"):
                setup.callback(self.optimizer.register_step_pre_hook(self._hold_ctrl_c).remove)
            restore = setup.pop_all()
        try:
            with restore:  # the caller's handler back, and the hook removed, before the end
                self._notify("on_train_begin")
                stopped_by = ""
                while self.epoch < self.n_epochs and not self._stops_training(agree=True):
                    # one that came during the last epoch's end hooks (a slow save), or the
                    # run's opening hooks, stops the run before the next step
                    stopped_by = ((self.step_in_epoch == 0 or self.step == first_step)
                                  and self._agreed_stop_signals())
                    if stopped_by:
                        break
                    self.run_epoch()
                # a SIGTERM (or an agreed Ctrl-C) that came after the last step (during the
                # last epoch's hooks, or with no step left to run) still stops the caller, as
                # the pre-emption asked
                stopped_by = stopped_by or self._agreed_stop_signals()
                if stopped_by:
                    self._stopping = True
                    self._notify("on_interrupt")
                    if self.epoch < self.n_epochs and not self.stop_training:
                        # a signal during on_train_begin: a new run has no epoch before it,
                        # and a resumed one may be inside an epoch
                        if self.step_in_epoch:
                            where = (f"before the run's first step (step {self.step}, inside "
                                     f"epoch {self.epoch})")
                        elif self.epoch == 0:
                            where = "before the run's first step"
                        else:
                            where = f"after the end of epoch {self.epoch - 1} (step {self.step})"
                        raise TrainingInterrupted(
                            f"stopped by {stopped_by} {where}; the callbacks saved what they "
                            "save (with a Checkpoint: call the same fit again to resume)")
                    raise TrainingInterrupted(
                        f"stopped by {stopped_by} after the run's last step ({self.step}); "
                        + ("a callback had stopped the run there (stop_training)"
                           if self.stop_training and self.epoch < self.n_epochs else
                           "the run is complete (with a Checkpoint, saved: the same fit again "
                           "returns it)"))
        except KeyboardInterrupt as error:
            # Ctrl-C: the loop is as an error leaves it (a step cut part-way undone), so its
            # state resumes exactly; save what was trained since the run began, as on SIGTERM.
            # One pressed while the hooks of a stop saved (a second Ctrl-C under torchrun, or
            # one after a SIGTERM) ends the run at once, as it does during this save.
            if (isinstance(error, TrainingInterrupted) or not ctrl_c
                    or self.step == first_step or self._stopping):
                raise
            self._notify("on_interrupt")
            raise TrainingInterrupted(
                f"stopped by Ctrl-C after step {self.step}; the callbacks saved what they save "
                "(with a Checkpoint: call the same fit again to resume)") from error
        finally:
            self._shutdown_workers()
            self._notify("on_train_end")
        return self.history

    def _shutdown_workers(self):
        """Stop the loader's persistent workers now: after an error, the traceback (kept by a
        notebook) would otherwise keep them alive. A later ``run`` starts new ones."""
        stop_persistent_workers(self.loader)

    def _hold_ctrl_c(self, optimizer, args, kwargs):
        """Optimizer step pre-hook: hold Ctrl-C back until the step being run is counted (a
        hook left by an interrupted ``run`` does nothing outside a step)."""
        if self._counting is not None:
            self._counting.enter_context(deferring_ctrl_c())

    def _agreed_stop_signals(self):
        """The signals that stop the run, as a message names them (``""``: none): those noted
        in this process, or with several processes in any of them (the same in every one)."""
        got = any_process_each([bool(self._stop_signals.get(key)) for key in _STOP_SIGNALS],
                               self.device)
        return " and ".join(name for name, noted in zip(_STOP_SIGNALS.values(), got) if noted)

    def _should_stop(self):
        """The signals that stop the run after this step, in every process alike (``""``:
        none); with several processes, agreed every :attr:`stop_agreement_every` steps."""
        if self.world_size > 1 and self.step % self.stop_agreement_every:
            return ""
        return self._agreed_stop_signals()

    def _stops_training(self, agree=False):
        """Whether a callback set :attr:`stop_training`; with several processes, whether one
        did in any process, asked at epoch ends (``agree``) and every
        :attr:`stop_agreement_every` steps (all then stop after the same step)."""
        if self.world_size > 1:
            if not agree and self.step % self.stop_agreement_every:
                return False
            self.stop_training = any_process(self.stop_training, self.device)
        return self.stop_training

    def run_epoch(self):
        """One pass over the loader (or the rest of one), then the epoch's record and hooks.

        Stopped inside the pass by ``stop_training``, it returns after that step without
        them: the epoch is finished by the next call (or :meth:`run`).
        """
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        whole_pass = self.step_in_epoch == 0  # a pass begun here, not the rest of one
        if whole_pass:
            self._notify("on_epoch_begin")
            self._epoch_loss = torch.zeros((), device=self.device)
        # a pass stopped before its first step is drawn again by the next run, as a resume
        # from the state saved before it would draw it
        pass_start = (sampler.state_dict() if self.step_in_epoch == 0
                      and hasattr(sampler, "state_dict") and hasattr(sampler, "load_state_dict")
                      else None)
        training_rng = self._draw_pass_again() if self._replay is not None else None
        self._pass = {"generators": [_generator_state(generator)
                                     for generator in self._order_generators()],
                      "new_iterator": self._makes_new_iterator()}
        try:
            batches = iter(self.loader)  # with workers, this already draws the pass's order
            try:
                for _ in range(self._skip_batches):  # samplers that cannot resume a pass
                    if next(batches, None) is None:  # a shorter loader than the state's: done
                        break
            finally:
                if training_rng is not None:  # the pass drawn, the steps' stream goes on
                    torch.set_rng_state(training_rng)
            self._skip_batches = 0
            stopped_inside = self._run_batches(batches)
        except BaseException:
            if self.step_in_epoch:  # run again, this loop finishes the epoch it stopped in
                self._finish_epoch_on_next_run()
            elif pass_start is not None:
                sampler.load_state_dict(pass_start)
            elif not hasattr(sampler, "state_dict"):  # the same pass drawn again
                self._replay = self._pass
            raise
        if stopped_inside:  # by a callback: as after an error, the epoch is finished later
            self._finish_epoch_on_next_run()
            return
        if whole_pass or self._pass_cut:
            self._check_pass_length()
        self._pass_cut = False
        # one host synchronisation per epoch; the mean over the steps this epoch had (a state
        # resumed with a loader of another length had some steps of another pass length)
        n_steps = self.step_in_epoch or self.steps_per_epoch
        self.history.append({"epoch": self.epoch,
                             "loss": float(self._epoch_loss) / n_steps,
                             "lr": self.schedule(self.step - 1)[0]})  # at the last step
        self.epoch += 1
        self.step_in_epoch = 0
        self._notify("on_epoch_end")

    def _check_pass_length(self):
        """Warn, once a run, when a whole pass yielded fewer than ``len(loader)`` batches, or
        a pass more (cut at ``len(loader)`` by :meth:`_run_batches`)."""
        said = self.steps_per_epoch
        if not (self._pass_cut or self.step_in_epoch < said) or self._miscount_warned:
            return
        self._miscount_warned = True
        if self._pass_cut:
            yielded = f"more than {said} batches"
            effect = ("each pass ends after that many steps, and the rest of its batches are "
                      "not trained on")
        else:
            yielded = f"{self.step_in_epoch} batch(es)"
            effect = ("the schedules of this run do not follow its epochs: they stop short of "
                      "their final values")
        warn_user(
            f"the loader's len() is {said}, but it yielded {yielded} in epoch {self.epoch}: "
            "the loop counts an epoch's steps by that len, as a schedule sized by it does "
            f"(PretrainSchedule.from_epochs), so {effect}; give the loader a __len__ that "
            "returns the batches it yields per epoch")

    def _run_batches(self, batches):
        """Train on ``batches``, up to ``len(loader)`` steps in the epoch; True when
        :attr:`stop_training` stopped it inside the pass."""
        for x in batches:
            if self.step_in_epoch >= self.steps_per_epoch:
                # a loader yielding more than its len(): the schedules, the epochs and the stop
                # checks count by that len, so the pass ends there (warned once a run)
                self._pass_cut = True
                break
            if not isinstance(x, torch.Tensor):  # e.g. the [x] of a TensorDataset's loader
                raise TypeError(
                    f"the loader must yield (batch, n_frames, n_regions) tensors, got "
                    f"{type_with_article(x)}; with a TensorDataset, yield its tensor "
                    "(e.g. window_loader(WindowDataset(windows), ...))")
            lr, weight_decay, momentum = self.schedule(self.step)
            set_hyperparameters(self.optimizer, lr, weight_decay)
            # a step stopped part-way (Ctrl-C lands in its forward or backward) is not counted
            # and is run again by the next run: with the masks and stochastic-depth draws it
            # had, as after a resume from the state saved before it
            masks = self.mask_sampler
            mask_state = masks.state_dict() if hasattr(masks, "load_state_dict") else None
            rng_state = global_rng_state(self.device)
            # From the optimizer step on (run's step pre-hook), Ctrl-C waits until the step is
            # counted: the weights and the EMA are updated once, and a next run goes on after.
            with contextlib.ExitStack() as counting:
                self._counting = counting
                try:
                    loss = self.train_step(x.to(self.device, non_blocking=True), momentum)
                except BaseException:
                    if mask_state is not None:
                        masks.load_state_dict(mask_state)
                    set_global_rng_state(rng_state, self.device)
                    raise
                finally:
                    self._counting = None  # what was held stays held until the step counts
                # With several processes, the global batch's loss (a small all-reduce, no
                # host synchronisation): every process then holds the same epoch sum, and the
                # one rank 0 saves mid-epoch is right for all of them when they resume.
                self._epoch_loss += all_reduce_mean(loss) if self.world_size > 1 else loss
                self.step += 1
                self.step_in_epoch += 1
                # a held Ctrl-C also waits for the step's hooks (a Checkpoint's every_steps save)
                self._notify("on_step_end", loss)
            stopped_by = self._should_stop()
            if stopped_by:
                # a callback's stop_training in another process at this step, agreed (all are
                # at this step's agreement) before the hooks and the caller read the flag: the
                # run stopped by a callback, as with one process, not left unfinished
                if self.world_size > 1:
                    self._stops_training(agree=True)
                self._stopping = True
                self._notify("on_interrupt")
                raise TrainingInterrupted(
                    f"stopped by {stopped_by} after step {self.step}; the callbacks saved what "
                    "they save (with a Checkpoint: call the same fit again to resume)"
                )
            # asked at the epoch's last step, the epoch ends (its record and hooks) first
            if self.step_in_epoch < self.steps_per_epoch and self._stops_training():
                return True
        return False

    def _finish_epoch_on_next_run(self):
        """Make the next pass over the loader the rest of the pass this loop stopped in, after
        its first ``step_in_epoch`` batches (as :meth:`load_state_dict` does from a state)."""
        sampler = getattr(self.loader, "sampler", None)
        if hasattr(sampler, "resume_pass"):
            sampler.resume_pass(sampler.state_dict(), self.step_in_epoch * self.loader.batch_size)
        else:  # samplers that cannot resume a pass themselves: skip the batches done
            self._skip_batches = self.step_in_epoch
            if not hasattr(sampler, "state_dict"):  # of that same pass, drawn again
                self._replay = self._pass

    def _order_generators(self):
        """The generators a pass over the loader draws from, ``None`` for torch's global one.

        The loader's own ``generator`` (else the global one), which draws the seed of its
        workers and, when it shuffles (``shuffle=True``), its order; and its sampler's own
        ``generator`` (e.g. a ``RandomSampler``'s), when the sampler has no state of its own.
        """
        generators = [getattr(self.loader, "generator", None)]
        sampler = getattr(self.loader, "sampler", None)
        own = getattr(sampler, "generator", None)
        if (isinstance(own, torch.Generator) and not hasattr(sampler, "state_dict")
                and own is not generators[0]):
            generators.append(own)
        return generators

    def _makes_new_iterator(self):
        """Whether a pass starts a new iterator of the loader, which draws a seed for its
        workers (one with persistent workers reuses its iterator from its second pass on)."""
        return getattr(self.loader, "_iterator", None) is None

    def _draw_pass_again(self):
        """Put the loader's generators back where the pass to finish was drawn from.

        Returns the global generator's state to put back once the steps done are skipped (the
        stream the steps go on with), or None when the pass does not draw from it or is
        begun anew.
        """
        replay, self._replay = self._replay, None
        generators = self._order_generators()
        if len(replay["generators"]) != len(generators):  # a loader of another kind
            return None
        training_rng = torch.get_rng_state()
        if getattr(self.loader, "persistent_workers", False):
            # the pass draws the workers' seed only if it starts the loader's iterator, as the
            # stopped one did or did not
            if replay["new_iterator"] and not self._makes_new_iterator():
                self._shutdown_workers()
            elif not replay["new_iterator"] and self._makes_new_iterator():
                iter(self.loader)  # started (its draws are then overwritten)
        for generator, state in zip(generators, replay["generators"]):
            _set_generator_state(generator, state)
        draws_global = any(generator is None for generator in generators)
        return training_rng if draws_global and self._skip_batches else None

    def train_step(self, x, momentum):
        """One step on batch ``x`` with fresh masks; returns the detached loss.

        With several processes, ``x`` is this process's share of the global batch: the masks
        are drawn for the global batch (the same on every process) and each process takes
        those of its samples, so that a run does not depend on the number of processes.
        Override to change what a step does; the optimizer already holds this step's learning
        rate and weight decay.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_frames, n_regions)`` windows on the loop's device.
        momentum : float
            EMA momentum of the target encoder for this step.

        Returns
        -------
        torch.Tensor
            The scalar loss, detached (not synchronised).
        """
        masks = self.mask_sampler.sample(len(x) * self.world_size)
        if self.world_size > 1:
            masks = masks.take(slice(self.rank, None, self.world_size))
        return train_step(self.model, self.optimizer, x, masks, momentum, self.autocast_dtype,
                          forward=self._forward, accumulation_steps=self.accumulation_steps,
                          no_sync=self._no_sync)

    def state_dict(self):
        """Everything a resumed run needs to continue exactly, between epochs or inside one.

        Returns
        -------
        dict
            The model (with its target encoder), the optimizer (and its class's name), the mask
            sampler, the data sampler (when it has a state), torch's global generator states on
            the training device, the states of the generators the loader's pass draws from (at
            the pass's start inside an epoch, see ``loader``), the epoch, the step (in all and
            within the epoch), the epoch's loss so far and the history.
        """
        sampler = getattr(self.loader, "sampler", None)
        epoch_loss = 0.0 if self._epoch_loss is None else float(self._epoch_loss)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "optimizer_class": _class_name(self.optimizer),
            "mask_sampler": self.mask_sampler.state_dict(),
            "data_sampler": sampler.state_dict() if hasattr(sampler, "state_dict") else None,
            "global_rng": global_rng_state(self.device),
            "loader_rng": self._loader_rng(),
            "epoch": self.epoch,
            "step": self.step,
            "step_in_epoch": self.step_in_epoch,
            "epoch_loss": epoch_loss if self.step_in_epoch else 0.0,
            "history": [dict(record) for record in self.history],
        }

    def _loader_rng(self):
        """Where the pass being run was drawn from (inside an epoch), or the next will be."""
        if self.step_in_epoch:
            return self._pass  # None after a state saved without it is loaded, until a run
        return {"generators": [_generator_state(generator)
                               for generator in self._order_generators()],
                "new_iterator": True}

    def load_state_dict(self, state):
        """Restore what :meth:`state_dict` returned (tensors may be on the CPU).

        A state saved inside an epoch makes the next :meth:`run_epoch` finish that epoch. One
        saved before the loader's generators were part of the state (no ``"loader_rng"``)
        finishes it with the batches done skipped in a new order, as then.

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned.

        Raises
        ------
        ValueError
            When the state lacks a part, when its model or optimizer (its class, its parameter
            groups) does not fit this loop's, or it holds a data sampler's state that this
            loop's sampler cannot take (checked before anything is restored).
        """
        self._check_fits(state)
        sampler = getattr(self.loader, "sampler", None)
        if state["data_sampler"] is not None and not hasattr(sampler, "load_state_dict"):
            raise ValueError(
                f"the state was saved with a data sampler that has a state, but this loop's "
                f"{type(sampler).__name__} cannot restore it: resume with the same kind of "
                "sampler (e.g. ShuffleSampler)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.mask_sampler.load_state_dict(state["mask_sampler"])
        self.step_in_epoch = int(state.get("step_in_epoch", 0))
        if state["data_sampler"] is not None:
            if self.step_in_epoch and hasattr(sampler, "resume_pass"):
                sampler.resume_pass(state["data_sampler"],
                                    self.step_in_epoch * self.loader.batch_size)
            else:
                sampler.load_state_dict(state["data_sampler"])
        elif hasattr(sampler, "load_state_dict"):  # a state saved with a stateless sampler:
            sampler.load_state_dict(sampler.state_dict())  # drop a pass a stopped run set up
        # (what a run stopped inside an epoch left to skip belongs to that epoch, not this one)
        resumes_itself = state["data_sampler"] is not None and hasattr(sampler, "resume_pass")
        self._skip_batches = 0 if resumes_itself else self.step_in_epoch
        # states saved before "loader_rng" existed: a pass to finish is drawn anew, as then
        loader_rng = state.get("loader_rng")
        generators = self._order_generators()
        if loader_rng is not None and len(loader_rng["generators"]) != len(generators):
            loader_rng = None  # saved with a loader of another kind
        if loader_rng is not None:  # the loader's own ones; the global one is restored below
            for generator, generator_state in zip(generators, loader_rng["generators"]):
                if generator is not None:
                    generator.set_state(generator_state)
        self._pass = loader_rng if self.step_in_epoch else None
        self._replay = (loader_rng if self.step_in_epoch and not hasattr(sampler, "state_dict")
                        else None)
        self._epoch_loss = torch.tensor(float(state.get("epoch_loss", 0.0)),
                                        device=self.device)
        set_global_rng_state(state["global_rng"], self.device)
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.history = [dict(record) for record in state["history"]]

    def _check_fits(self, state):
        """Refuse a state of another model before any of it is loaded (torch would copy the
        tensors that fit, then raise)."""
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:  # rather than a KeyError once part of the state is loaded
            raise ValueError(
                f"the state has no {missing}: it was not written by PretrainLoop.state_dict "
                "(or by a version of brainjepa_sk that saved other parts)")
        own = self.model.state_dict()
        saved = state["model"]
        wrong = sorted(set(own) ^ set(saved)) + sorted(
            key for key in set(own) & set(saved)
            if tuple(own[key].shape) != tuple(saved[key].shape))
        if wrong:
            raise ValueError(
                f"the state is of another model than this loop's: {len(wrong)} tensor(s) "
                f"missing, unexpected or of other shapes ({', '.join(wrong[:4])}"
                f"{', ...' if len(wrong) > 4 else ''})")
        saved_class = state.get("optimizer_class")  # states saved before it was recorded: none
        if saved_class is not None and saved_class != _class_name(self.optimizer):
            # torch would load an AdamW's groups and moments into an SGD, which then fails at
            # its first step (KeyError: 'momentum'), or silently turn an Adam into an AdamW
            raise ValueError(
                f"the state's optimizer is a {saved_class}, this loop's a "
                f"{_class_name(self.optimizer)}: resume with the same kind of optimizer")
        groups = [len(group["params"]) for group in state["optimizer"]["param_groups"]]
        if groups != [len(group["params"]) for group in self.optimizer.param_groups]:
            raise ValueError("the state's optimizer has other parameter groups than this "
                             f"loop's (sizes {groups})")
