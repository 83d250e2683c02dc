"""The pure-torch training loop: hooks, exact resume from its state, the data layer."""

import copy
import os
import pathlib
import pickle
import re
import signal
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from brainjepa_sk.nn import BrainJEPA
from brainjepa_sk.nn.masking import SpatiotemporalMaskSampler
from brainjepa_sk.train import (
    Callback,
    Checkpoint,
    CollapseMonitor,
    LazyWindowDataset,
    NonFiniteLossGuard,
    PretrainLoop,
    PretrainSchedule,
    ProgressBar,
    ShuffleSampler,
    TrainingInterrupted,
    WindowDataset,
    collapse_metrics,
    parameter_groups,
    window_loader,
)

N_REGIONS, N_FRAMES, PATCH, N_WINDOWS, BATCH = 12, 16, 4, 20, 6


def _windows(seed=0):
    return torch.randn(N_WINDOWS, N_FRAMES, N_REGIONS,
                       generator=torch.Generator().manual_seed(seed)).numpy()


def _loop(n_epochs=3, callbacks=None, sampler=None, drop_path_rate=0.2, depth=2, embed_dim=16,
          **options):
    """A tiny run, built the same way every time (the global generator only for the init)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BrainJEPA(torch.randn(N_REGIONS, 3), patch_size=PATCH, n_patches=N_FRAMES // PATCH,
                          embed_dim=embed_dim, depth=depth, num_heads=2, predictor_embed_dim=8,
                          predictor_depth=1, drop_path_rate=drop_path_rate)
    dataset = WindowDataset(_windows())
    loader = window_loader(dataset, BATCH, sampler or ShuffleSampler(len(dataset), seed=1))
    masks = SpatiotemporalMaskSampler(N_REGIONS, N_FRAMES // PATCH, seed=2)
    schedule = PretrainSchedule.from_epochs(n_epochs, len(loader), lr=1e-3)
    return PretrainLoop(model, loader, masks, schedule, n_epochs, callbacks=callbacks, **options)


class Recorder(Callback):
    """Records every hook call as (hook, epoch, step)."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, loop):
        self.calls.append(("train_begin", loop.epoch, loop.step))

    def on_epoch_begin(self, loop):
        self.calls.append(("epoch_begin", loop.epoch, loop.step))

    def on_step_end(self, loop, loss):
        assert loss.ndim == 0 and not loss.requires_grad
        self.calls.append(("step_end", loop.epoch, loop.step))

    def on_epoch_end(self, loop):
        self.calls.append(("epoch_end", loop.epoch, loop.step))

    def on_train_end(self, loop):
        self.calls.append(("train_end", loop.epoch, loop.step))


def test_hooks_are_called_in_order_with_the_loop_state():
    recorder = Recorder()
    loop = _loop(n_epochs=2, callbacks=[recorder])
    assert loop.steps_per_epoch == N_WINDOWS // BATCH == 3
    history = loop.run()
    expected = [("train_begin", 0, 0)]
    for epoch in range(2):
        expected.append(("epoch_begin", epoch, 3 * epoch))
        expected += [("step_end", epoch, 3 * epoch + k) for k in (1, 2, 3)]
        expected.append(("epoch_end", epoch + 1, 3 * epoch + 3))
    expected.append(("train_end", 2, 6))
    assert recorder.calls == expected
    assert [record["epoch"] for record in history] == [0, 1]
    assert history is loop.history and loop.epoch == 2 and loop.step == 6
    # the record's lr is the schedule's value at the epoch's last step
    assert history[0]["lr"] == loop.schedule(2)[0] != loop.schedule(3)[0]
    assert history[1]["lr"] == loop.schedule(5)[0]


def test_the_loop_keeps_its_own_list_of_callbacks():
    """A callback added to a built loop (``loop.callbacks.append``) joins that loop only: the
    caller's list is left as it was, and a tuple given is taken as a list too."""
    first, added = Recorder(), Recorder()
    given = [first]
    loop = _loop(n_epochs=1, callbacks=given)
    loop.callbacks.append(added)
    assert given == [first] and loop.callbacks == [first, added]
    from_tuple = _loop(n_epochs=1, callbacks=(first,))
    from_tuple.callbacks.append(added)
    assert from_tuple.callbacks == [first, added]


def test_each_epochs_record_holds_the_mean_of_its_own_step_losses():
    losses = []

    class Losses(Callback):
        def on_step_end(self, loop, loss):
            losses.append(float(loss))

    loop = _loop(n_epochs=3, callbacks=[Losses()])
    loop.run()
    assert len(losses) == 9
    for epoch, record in enumerate(loop.history):
        own = losses[3 * epoch:3 * epoch + 3]
        assert record["loss"] == pytest.approx(sum(own) / 3, rel=1e-6)


def test_run_trains_a_model_left_in_eval_mode():
    """A model evaluated before (or between) runs still trains with stochastic depth: the run
    is the one of a model in training mode."""
    modes = []

    class Modes(Callback):
        def on_step_end(self, loop, loss):
            modes.append(loop.model.training)

    trained, evaluated = _loop(n_epochs=1), _loop(n_epochs=1, callbacks=[Modes()])
    evaluated.model.eval()
    _run_seeded(trained)
    _run_seeded(evaluated)
    assert modes == [True] * 3
    assert evaluated.history == trained.history


def test_a_resumed_runs_progress_bar_starts_at_the_steps_done(tmp_path):
    """The bar counts the whole run: resumed after epoch 1 of 3, it starts at step 3 and ends
    full at step 9."""
    path = tmp_path / "state.pt"
    first = _loop(n_epochs=3, callbacks=[Checkpoint(path, key="k")])
    first.n_epochs = 1
    first.run()
    counts = []

    class BarCount(Callback):
        def on_train_begin(self, loop):
            counts.append((bar.bar.n, bar.bar.total))

        def on_epoch_end(self, loop):
            counts.append((bar.bar.n, bar.bar.total))

    bar = ProgressBar()
    resumed = _loop(n_epochs=3, callbacks=[bar, BarCount()])
    assert Checkpoint(path, key="k").restore(resumed) and resumed.step == 3
    resumed.run()
    assert counts == [(3, 9), (6, 9), (9, 9)]


def test_the_progress_bar_shows_the_loss_of_the_epoch_just_ended():
    shown = []

    class Postfix(Callback):
        def on_epoch_end(self, loop):
            shown.append((bar.bar.postfix, f"loss={loop.history[-1]['loss']:.4f}"))

    bar = ProgressBar()
    loop = _loop(n_epochs=3, callbacks=[bar, Postfix()])
    loop.run()
    assert [postfix for postfix, _ in shown] == [expected for _, expected in shown]
    assert len({expected for _, expected in shown}) == 3  # the losses differ: the test can fail


def test_the_progress_bar_takes_its_settings_and_is_closed_when_a_run_ends_or_fails(
        monkeypatch):
    import tqdm.auto

    bars = []

    class Bar:
        def __init__(self, **kwargs):
            self.kwargs, self.closed = kwargs, False
            bars.append(self)

        def update(self, n=1):
            pass

        def set_postfix(self, **kwargs):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    _loop(n_epochs=1, callbacks=[ProgressBar(disable=True, desc="fold 2")]).run()
    failing = _loop(n_epochs=1, callbacks=[ProgressBar(), NonFiniteLossGuard()])
    failing.train_step = lambda x, momentum: torch.tensor(float("nan"))
    with pytest.raises(FloatingPointError):
        failing.run()
    assert [(bar.kwargs["disable"], bar.kwargs["desc"], bar.closed) for bar in bars] == [
        (True, "fold 2", True), (False, "pretraining", True)]


def test_a_progress_bar_lets_its_closed_bar_go_and_pickles_after_a_run(capsys):
    """The bar closed at the run's end is let go: the callback (kept, e.g., among a fitted
    estimator's callbacks) pickles and copies again, as before its run (a tqdm bar holds the
    stream it writes to)."""
    progress = ProgressBar()
    _loop(n_epochs=1, callbacks=[progress]).run()
    assert "pretraining" in capsys.readouterr().err  # the bar was shown
    assert progress.bar is None
    for again in (pickle.loads(pickle.dumps(progress)), copy.deepcopy(progress)):
        assert again.bar is None and (again.disable, again.desc) == (False, "pretraining")


def test_train_end_is_called_when_a_callback_stops_the_run():
    recorder = Recorder()
    loop = _loop(callbacks=[NonFiniteLossGuard(), recorder])
    loop.train_step = lambda x, momentum: torch.tensor(float("nan"))
    with pytest.raises(FloatingPointError, match="loss became nan in epoch 0"):
        loop.run()
    assert recorder.calls[-1] == ("train_end", 1, 3)
    assert ("epoch_end", 1, 3) not in recorder.calls  # the guard ran first and stopped the run


class _StopTrainingAt(Callback):
    """Sets ``stop_training`` after step ``step`` (in ``on_step_end``) or epoch ``epoch`` (in
    ``on_epoch_end``, 1-based)."""

    def __init__(self, step=None, epoch=None):
        self.step, self.epoch = step, epoch

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            loop.stop_training = True

    def on_epoch_end(self, loop):
        if loop.epoch == self.epoch:
            loop.stop_training = True


@pytest.mark.parametrize("stop_at, last_calls", [
    (4, [("step_end", 1, 4), ("train_end", 1, 4)]),  # inside epoch 1: its hooks later
    (3, [("step_end", 0, 3), ("epoch_end", 1, 3), ("train_end", 1, 3)]),  # epoch 0's last
])
def test_a_callback_stops_the_run_after_the_step_it_asks_to(stop_at, last_calls):
    """``stop_training`` set in ``on_step_end`` ends the run after that step's hooks (those of
    the callbacks after it too), without an error; asked at an epoch's last step, the epoch
    ends first. The state then resumes exactly in a fresh loop, and the loop run again (the
    flag set back) goes on up to ``n_epochs``: both end as the uninterrupted run does."""
    straight = _loop(n_epochs=3)
    _run_seeded(straight)
    recorder = Recorder()
    stopped = _loop(n_epochs=3, callbacks=[_StopTrainingAt(step=stop_at), recorder])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        history = stopped.run()
        assert stopped.stop_training and history is stopped.history
        assert (stopped.epoch, stopped.step, stopped.step_in_epoch) == (1, stop_at, stop_at - 3)
        assert history == straight.history[:1]
        assert recorder.calls[-len(last_calls):] == last_calls
        assert ("epoch_begin", 1, 3) in recorder.calls or stop_at == 3
        state = copy.deepcopy(stopped.state_dict())  # its tensors are the live ones
        assert state["step"] == stop_at and state["step_in_epoch"] == stop_at - 3
        stopped.run()
    assert not stopped.stop_training
    resumed = _loop(n_epochs=3)
    with torch.random.fork_rng(devices=[]):
        resumed.load_state_dict(state)
        resumed.run()
    for loop in (stopped, resumed):
        assert (loop.epoch, loop.step) == (3, 9)
        assert loop.history == straight.history
        for p, q in zip(loop.model.state_dict().values(), straight.model.state_dict().values()):
            assert torch.equal(p, q)


def test_a_callback_stops_the_run_at_an_epochs_end():
    """``stop_training`` set in ``on_epoch_end`` ends the run before the next epoch begins;
    set before the first step (``on_train_begin``), the run trains nothing."""
    recorder = Recorder()
    loop = _loop(n_epochs=3, callbacks=[_StopTrainingAt(epoch=2), recorder])
    assert len(loop.run()) == 2
    assert (loop.epoch, loop.step, loop.step_in_epoch) == (2, 6, 0)
    assert recorder.calls[-2:] == [("epoch_end", 2, 6), ("train_end", 2, 6)]

    class StopAtOnce(Callback):
        def on_train_begin(self, loop):
            loop.stop_training = True

    idle = _loop(n_epochs=3, callbacks=[StopAtOnce()])
    assert idle.run() == [] and idle.step == 0


def test_with_several_processes_a_stop_asked_at_an_epochs_end_is_agreed_there():
    """With several processes, ``stop_training`` is agreed at every epoch's end, not only
    every ``stop_agreement_every`` steps: asked in ``on_epoch_end`` after step 3 (agreeing
    every 2 steps), the run stops there, before the next epoch's first step. The loop told
    it has 2 processes does its collectives on this one alone."""
    loop = _loop(n_epochs=3, callbacks=[_StopTrainingAt(epoch=1)])
    loop.world_size, loop.stop_agreement_every = 2, 2
    assert len(loop.run()) == 1
    assert (loop.epoch, loop.step, loop.step_in_epoch) == (1, 3, 0)


def test_a_failed_run_stops_its_loader_workers():
    """A notebook keeps the traceback of an error, and with it the loop: its loader's
    persistent workers must not live on with it."""
    import multiprocessing

    def own_workers():  # not another test's processes, reaped later
        return [child for child in multiprocessing.active_children()
                if child.pid not in before]

    before = {child.pid for child in multiprocessing.active_children()}
    dataset = WindowDataset(_windows())
    loop = _loop()
    loop.loader = window_loader(dataset, BATCH, ShuffleSampler(len(dataset), seed=1),
                                num_workers=1)

    class Fails(Callback):
        def on_step_end(self, loop, loss):
            assert own_workers()  # the worker runs
            raise RuntimeError("stop")

    loop.callbacks = [Fails()]
    with pytest.raises(RuntimeError, match="stop"):
        loop.run()
    assert loop.loader._iterator is None
    assert not own_workers()


def test_moving_the_model_drops_the_time_tables_cached_on_the_old_device():
    model = _loop().model
    embedding = model.encoder.pos_embed
    embedding.time_table(N_FRAMES // PATCH, "cpu")
    assert embedding._time_tables
    model.to(torch.float64)  # the same path as .cpu() after a GPU run
    assert embedding._time_tables == {}


def test_the_loss_guard_stops_an_infinite_loss_too():
    loop = _loop(callbacks=[NonFiniteLossGuard()])
    loop.train_step = lambda x, momentum: torch.tensor(float("inf"))
    with pytest.raises(FloatingPointError, match="loss became inf in epoch 0"):
        loop.run()


def test_the_loss_guard_checks_the_epoch_just_ended():
    """A run that diverges in its second epoch stops there, naming that epoch."""
    loop = _loop(callbacks=[NonFiniteLossGuard()])
    loop.train_step = lambda x, momentum: torch.tensor(1.0 if loop.epoch == 0 else float("nan"))
    with pytest.raises(FloatingPointError, match="loss became nan in epoch 1"):
        loop.run()


@pytest.mark.parametrize("part", ["encoder", "predictor"])
def test_the_loss_guard_stops_weights_broken_by_the_last_update(part):
    """The losses are computed before each update: finite losses, then NaN weights, in the
    encoder or in the predictor alike."""
    loop = _loop(callbacks=[NonFiniteLossGuard()])
    train_step = loop.train_step
    calls = []

    def breaking_step(x, momentum):
        train_step(x, momentum)
        calls.append(1)
        if len(calls) == len(loop.loader):  # the epoch's last update: nothing spreads it
            with torch.no_grad():
                next(getattr(loop.model, part).parameters()).view(-1)[0] = float("nan")
        return torch.tensor(1.0)  # the loss before the update, finite

    loop.train_step = breaking_step
    with pytest.raises(FloatingPointError, match="weights became NaN or infinite in epoch 0"):
        loop.run()


def test_the_collapse_monitor_runs_under_the_loops_autocast():
    """With bf16 autocast, the monitors describe the target encoder's features as the run
    computes them (bf16 matmuls), not a float32 pass."""
    windows = torch.from_numpy(_windows(seed=3)[:8])
    loop = _loop(n_epochs=1, drop_path_rate=0.0, autocast_dtype=torch.bfloat16,
                 callbacks=[CollapseMonitor(windows)])
    loop.run()
    assert loop.model.training  # put back in training mode

    def metrics(dtype):
        loop.model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            features = loop.model.target_encoder(windows).float().mean(1)
        return collapse_metrics(features)

    bf16, fp32 = metrics(torch.bfloat16), metrics(None)
    record = loop.history[-1]
    assert record["target_std"] == pytest.approx(bf16["std"], rel=1e-6)
    assert record["effective_rank"] == pytest.approx(bf16["effective_rank"], rel=1e-6)
    assert record["target_std"] != pytest.approx(fp32["std"], rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, None])
def test_the_loop_runs_each_steps_forward_under_its_autocast(dtype):
    """``autocast_dtype`` reaches every step's forward pass: under CPU bf16 autocast the
    encoder's linear layers compute in bf16 (not only the collapse monitor's pass), and
    without it in float32."""
    loop = _loop(n_epochs=1, autocast_dtype=dtype)
    linear = next(m for m in loop.model.encoder.modules() if isinstance(m, torch.nn.Linear))
    seen = []
    handle = linear.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    try:
        loop.run()
    finally:
        handle.remove()
    assert loop.step == 3 and len(seen) == 3
    assert set(seen) == {torch.float32 if dtype is None else dtype}


def test_the_collapse_monitor_puts_the_model_back_in_the_mode_it_was_in():
    windows = torch.from_numpy(_windows(seed=3)[:8])
    loop = _loop(n_epochs=1)
    loop.history.append({"epoch": 0, "loss": 1.0})
    monitor = CollapseMonitor(windows)
    for training in (True, False):
        loop.model.train(training)
        monitor.on_epoch_end(loop)
        assert loop.model.training is training
        assert loop.model.encoder.training is training


def test_the_collapse_monitor_in_micro_batches_records_what_it_records_at_once():
    """batch_size passes the windows a few at a time (the pretrainer's micro-batch); a size
    that is no count was taken silently (-3 as 1, 2.5 as 2)."""
    windows = torch.from_numpy(_windows(seed=3)[:8])
    loop = _loop(n_epochs=1)
    records = []
    for batch_size in (None, 3):
        loop.history.append({"epoch": 0, "loss": 1.0})
        CollapseMonitor(windows, batch_size=batch_size).on_epoch_end(loop)
        records.append(loop.history.pop())
    assert records[0].keys() == records[1].keys() >= {"target_std", "effective_rank"}
    for key in ("target_std", "effective_rank"):
        assert records[1][key] == pytest.approx(records[0][key], rel=1e-5)
    for batch_size in (0, -3, 2.5):
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            CollapseMonitor(windows, batch_size=batch_size)


def test_the_collapse_monitor_stops_the_run_when_the_target_features_are_not_finite():
    """NaN target features raise, naming the epoch, instead of being recorded as NaN."""
    windows = torch.from_numpy(_windows(seed=3)[:8])
    loop = _loop(n_epochs=1)
    loop.history.append({"epoch": 4, "loss": 1.0})
    with torch.no_grad():
        for parameter in loop.model.target_encoder.parameters():
            parameter.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="features became NaN or infinite in epoch 4"):
        CollapseMonitor(windows).on_epoch_end(loop)
    assert "target_std" not in loop.history[-1]


def _run_seeded(loop, state=None):
    """Run with torch's global generator (stochastic depth) seeded, leaving the caller's alone.

    Returns the loop's state at the end, taken while the run's generator is current.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        if state is not None:  # the state's generator overrides the seed
            loop.load_state_dict(state)
        loop.run()
        return loop.state_dict()


def test_a_restored_state_continues_the_run_exactly():
    straight = _loop(n_epochs=3)
    _run_seeded(straight)

    first = _loop(n_epochs=3)
    first.n_epochs = 1  # stop after one epoch, as an interrupted run would
    state = _run_seeded(first)
    # a fresh loop, built the same way, continues from the state
    resumed = _loop(n_epochs=3)
    _run_seeded(resumed, state)
    assert resumed.history == straight.history
    for p, q in zip(resumed.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(p, q)
    # without the state, the continuation differs (the test can fail)
    fresh = _loop(n_epochs=3)
    fresh.n_epochs = 1
    _run_seeded(fresh)
    assert fresh.history == first.history
    fresh.n_epochs = 3
    fresh.step, fresh.epoch = 3, 1
    fresh.mask_sampler = SpatiotemporalMaskSampler(N_REGIONS, N_FRAMES // PATCH, seed=2)
    _run_seeded(fresh)
    assert fresh.history != straight.history


def test_accumulated_micro_batches_train_like_the_whole_batch():
    """accumulation_steps=3 runs each batch of 6 as 3 forward/backward passes of 2 windows
    and one optimizer step: the same losses and weights as the whole batch at once (up to
    float rounding; without stochastic depth, whose draws differ)."""
    whole = _loop(n_epochs=2, drop_path_rate=0.0)
    micro = _loop(n_epochs=2, drop_path_rate=0.0, accumulation_steps=3)
    seen = []
    micro.model.register_forward_pre_hook(lambda module, args: seen.append(len(args[0])))
    _run_seeded(whole)
    _run_seeded(micro)
    assert seen == [2, 2, 2] * micro.step and micro.step == whole.step == 6
    assert [h["loss"] for h in micro.history] == pytest.approx(
        [h["loss"] for h in whole.history], rel=1e-5)
    for key, value in whole.model.state_dict().items():
        torch.testing.assert_close(micro.model.state_dict()[key], value, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="accumulation_steps=4 must be a positive divisor"):
        _loop(accumulation_steps=4)


def test_accumulation_steps_leaving_one_window_of_each_batch_over_are_refused_when_built():
    """Batches of 6 in 5 micro-batches leave one window over (6 % 5 == 1): refused as 4 is,
    before the run, not at its first step."""
    with pytest.raises(ValueError, match=r"accumulation_steps=5 must be a positive divisor of "
                                         r"the loader's batch size \(6\)"):
        _loop(accumulation_steps=5)


@pytest.mark.parametrize("accumulation_steps", [0, -2, 2.5, 3.0, "3", True])
def test_accumulation_steps_that_is_not_an_int_of_at_least_one_is_refused(accumulation_steps):
    """int() had taken 2.5 as 2 (and "3" as 3) and trained with another accumulation."""
    with pytest.raises(ValueError, match=rf"accumulation_steps must be an int >= 1, got "
                                         rf"{re.escape(repr(accumulation_steps))}"):
        _loop(accumulation_steps=accumulation_steps)


@pytest.mark.parametrize("n_epochs", [-1, 1.5, "2", None])
def test_n_epochs_that_is_not_an_int_of_at_least_zero_is_refused(n_epochs):
    valid = _loop(n_epochs=1)
    with pytest.raises(ValueError, match=rf"n_epochs must be an int >= 0, got "
                                         rf"{re.escape(repr(n_epochs))}"):
        PretrainLoop(valid.model, valid.loader, valid.mask_sampler, valid.schedule, n_epochs)


class UnsizedLoader:
    """A loader class of one's own without ``len`` (a DataLoader inside)."""

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        return iter(self.loader)


class UnsizedSampler(torch.utils.data.Sampler):
    """A sampler without ``len`` (torch's samplers need not have one): in order."""

    def __init__(self, n_items):
        self.n_items = n_items

    def __iter__(self):
        return iter(range(self.n_items))


@pytest.mark.parametrize("unsized", ["loader", "sampler"])
def test_a_loader_without_len_is_refused_when_the_loop_is_built(unsized):
    """The loop counts an epoch's steps by len(loader): a loader without one (a class of
    one's own, or a DataLoader whose sampler has no len, whose own len then raises) failed
    with "object of type 'UnsizedLoader' has no len()". Refused, saying what it must give."""
    valid = _loop(n_epochs=1)
    if unsized == "loader":
        loader, name = UnsizedLoader(valid.loader), "an UnsizedLoader"
    else:
        loader = torch.utils.data.DataLoader(WindowDataset(_windows()), batch_size=BATCH,
                                             sampler=UnsizedSampler(N_WINDOWS))
        name = "a DataLoader"
    with pytest.raises(TypeError, match=rf"the loader must have a len\(\), the batches "
                                        rf"\(steps\) it yields per epoch, .* but {name} has "
                                        r"none \(object of type 'Unsized.*' has no len\(\)\): "
                                        r"give it a __len__ that returns them"):
        PretrainLoop(valid.model, loader, valid.mask_sampler, valid.schedule, 1)


class MiscountedLoader(UnsizedLoader):
    """A loader of one's own whose ``len`` says ``miscount`` more batches than it yields."""

    def __init__(self, loader, miscount):
        super().__init__(loader)
        self.miscount = miscount

    def __len__(self):
        return len(self.loader) + self.miscount


@pytest.mark.parametrize("miscount", [-1, 0, 1])
def test_a_loader_whose_len_is_not_its_batches_warns_once_a_run(miscount):
    """The schedule of a run is sized by len(loader) (PretrainSchedule.from_epochs), and so
    are the loop's epochs and ProgressBar: a loader yielding 3 batches a pass but saying 2 (or
    4) silently ran the schedules off their ends before the last epoch (or stopped them short
    of their final values). The first pass that yields another count warns, once a run; a
    right len does not warn. A pass that yields more is cut at len batches, as the schedules
    are sized by it."""
    valid = _loop(n_epochs=3)
    loader = MiscountedLoader(valid.loader, miscount)
    schedule = PretrainSchedule.from_epochs(3, len(loader), lr=1e-3)
    loop = PretrainLoop(valid.model, loader, valid.mask_sampler, schedule, 3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loop.run()
    said = [str(warning.message) for warning in caught if "len()" in str(warning.message)]
    assert loop.step == 3 * min(3, 3 + miscount)
    assert [record["epoch"] for record in loop.history] == [0, 1, 2]
    if not miscount:
        assert said == []
        return
    if miscount > 0:
        effect = ("yielded 3 batch(es) in epoch 0: the loop counts an epoch's steps by that len, "
                  "as a schedule sized by it does (PretrainSchedule.from_epochs), so the "
                  "schedules of this run do not follow its epochs: they stop short of their "
                  "final values")
    else:
        effect = ("yielded more than 2 batches in epoch 0: the loop counts an epoch's steps by "
                  "that len, as a schedule sized by it does (PretrainSchedule.from_epochs), so "
                  "each pass ends after that many steps, and the rest of its batches are not "
                  "trained on")
    assert said == [f"the loader's len() is {3 + miscount}, but it {effect}; give the loader a "
                    "__len__ that returns the batches it yields per epoch"]


def test_a_loader_yielding_more_than_its_len_stops_at_its_len_where_asked_to():
    """A loader saying 2 batches but yielding 3: stop_training, set at the epoch's last step
    by len (which ends that epoch first), was not read again until the pass ended, and the
    third batch was trained on, an optimizer step past the schedules' epoch. The pass ends at
    len batches, the run stops after that epoch."""
    valid = _loop(n_epochs=3)
    loader = MiscountedLoader(valid.loader, -1)
    schedule = PretrainSchedule.from_epochs(3, len(loader), lr=1e-3)
    loop = PretrainLoop(valid.model, loader, valid.mask_sampler, schedule, 3,
                        callbacks=[_StopTrainingAt(step=2)])
    with pytest.warns(UserWarning, match=r"yielded more than 2 batches in epoch 0"):
        loop.run()
    assert loop.step == 2 and [record["epoch"] for record in loop.history] == [0]


def test_the_rest_of_a_pass_longer_than_its_len_is_warned_of_too():
    """A pass stopped inside (stop_training) is finished by the next run: a loader yielding
    more than its len is cut there as in a whole pass, and warned of."""
    valid = _loop(n_epochs=1)
    loader = MiscountedLoader(valid.loader, -1)
    schedule = PretrainSchedule.from_epochs(1, len(loader), lr=1e-3)
    loop = PretrainLoop(valid.model, loader, valid.mask_sampler, schedule, 1,
                        callbacks=[_StopTrainingAt(step=1)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loop.run()
    assert (loop.step, loop.history) == (1, [])
    with pytest.warns(UserWarning, match=r"yielded more than 2 batches in epoch 0"):
        loop.run()
    assert loop.step == 2 and [record["epoch"] for record in loop.history] == [0]


def test_n_epochs_and_accumulation_steps_take_numpy_ints():
    loop = _loop(n_epochs=np.int64(1), accumulation_steps=np.int32(2))
    assert (loop.n_epochs, loop.accumulation_steps) == (1, 2)
    assert type(loop.n_epochs) is int and type(loop.accumulation_steps) is int


def test_checkpoint_saves_each_epoch_and_restores_only_its_own_run(tmp_path):
    path = tmp_path / "state.pt"
    loop = _loop(n_epochs=2, callbacks=[Checkpoint(path, key="run-a")])
    loop.run()
    saved = torch.load(path, weights_only=True)
    assert saved["key"] == "run-a" and saved["loop"]["epoch"] == 2
    assert saved["loop"]["history"] == loop.history

    again = _loop(n_epochs=2)
    assert Checkpoint(path, key="run-a").restore(again)
    assert again.history == loop.history and again.step == 6
    with pytest.warns(UserWarning, match="other settings or data"):
        assert not Checkpoint(path, key="run-b").restore(_loop(n_epochs=2))
    with pytest.warns(UserWarning, match="not an int"):
        assert not Checkpoint(path, key=None).restore(_loop(n_epochs=2))
    assert not Checkpoint(tmp_path / "missing.pt", key="run-a").restore(_loop(n_epochs=2))


def test_a_state_saved_before_its_values_were_checksummed_is_still_read(tmp_path):
    """Older states hold a checksum of their tensors only, and no ``checksum_values``."""
    from brainjepa_sk.train.runtime import tensor_checksum

    path = tmp_path / "state.pt"
    loop = _loop(n_epochs=1)
    loop.run()
    Checkpoint(path, key="run-a").save(loop)
    state = torch.load(path, weights_only=True)
    del state["checksum_values"]
    state["checksum"] = tensor_checksum(state["loop"])
    torch.save(state, path)
    resumed = _loop(n_epochs=1)
    assert Checkpoint(path, key="run-a").restore(resumed)
    assert resumed.step == loop.step == 3 and resumed.history == loop.history


def test_shuffle_sampler_draws_a_new_permutation_each_pass_and_resumes():
    sampler = ShuffleSampler(10, seed=4)
    generator = torch.Generator().manual_seed(4)
    first, second = list(sampler), list(sampler)
    assert first == torch.randperm(10, generator=generator).tolist()
    assert second == torch.randperm(10, generator=generator).tolist()
    assert sorted(first) == list(range(10)) and first != second
    state = sampler.state_dict()
    third = list(sampler)
    other = ShuffleSampler(10, seed=99)
    other.load_state_dict(state)
    assert list(other) == third


def _shards(n_samples, seed, batch, n_processes):
    return [ShuffleSampler(n_samples, seed, num_replicas=n_processes, rank=rank,
                           batch_size=batch) for rank in range(n_processes)]


@pytest.mark.parametrize("n_samples, batch, n_processes, share", [
    (23, 6, 2, 9),  # 3 full global batches of 6: 3 windows of each for each process
    (20, 8, 4, 4),  # 2 of 8: 2 windows of each
    (7, 4, 2, 2),   # 1 of 4, 3 windows left over
])
def test_a_sharded_shuffle_samplers_length_is_the_windows_it_gives(n_samples, batch,
                                                                  n_processes, share):
    """``len(sampler)`` is what one process's pass yields, its share of the full global
    batches, not ``n_samples / n_processes`` (which also counts the dropped windows)."""
    for sampler in _shards(n_samples, 3, batch, n_processes):
        assert len(sampler) == len(list(sampler)) == share


@pytest.mark.parametrize("n_processes", [2, 4])
def test_sharded_shuffle_sampler_splits_each_global_batch_among_the_processes(n_processes):
    n_samples, batch = 22, 8  # 2 full global batches a pass, 6 windows dropped
    single = ShuffleSampler(n_samples, seed=7)
    shards = _shards(n_samples, 7, batch, n_processes)
    share = batch // n_processes
    for _ in range(3):  # every pass, not only the first
        order = list(single)
        parts = [list(shard) for shard in shards]
        assert all(len(part) == len(shard) == 2 * share for part, shard in zip(parts, shards))
        for step in range(2):  # rank r holds places r, r + P, ... of each global batch
            global_batch = torch.stack([torch.tensor(part[step * share:(step + 1) * share])
                                        for part in parts], 1).reshape(-1).tolist()
            assert global_batch == order[step * batch:(step + 1) * batch]


def test_a_pass_saved_under_one_process_count_resumes_under_another():
    n_samples, batch = 40, 8
    single, (first, second) = ShuffleSampler(n_samples, seed=2), _shards(n_samples, 2, batch, 2)
    list(single), list(first), list(second)  # one pass done everywhere
    # two processes stopped after 2 steps of the second pass; one process resumes
    iter_first = iter(first)
    [next(iter_first) for _ in range(2 * 4)]
    saved = first.state_dict()
    rest = list(single)[2 * batch:]
    resumed = ShuffleSampler(n_samples, seed=99)
    resumed.resume_pass(saved, 2 * batch)
    assert list(resumed) == rest
    # and the other way: saved by one process, resumed by two after 3 steps
    alone = ShuffleSampler(n_samples, seed=2)
    list(alone), list(alone)
    iter_alone = iter(alone)
    order = [next(iter_alone) for _ in range(n_samples)]
    saved = alone.state_dict()
    shards = _shards(n_samples, 99, batch, 2)
    for shard in shards:
        shard.resume_pass(saved, 3 * 4)
    parts = torch.tensor([list(shard) for shard in shards])  # (2 processes, 2 steps x 4)
    assert parts.view(2, 2, 4).permute(1, 2, 0).reshape(-1).tolist() == order[3 * batch:]


def test_sharded_shuffle_sampler_checks_its_arguments():
    with pytest.raises(ValueError, match="multiple of num_replicas=3"):
        ShuffleSampler(10, 0, num_replicas=3, rank=0, batch_size=8)
    with pytest.raises(ValueError, match=r"rank=2 is not in \[0, 2\)"):
        ShuffleSampler(10, 0, num_replicas=2, rank=2, batch_size=8)
    # the global batch is needed to cut it into shares: not a TypeError from int(None)
    with pytest.raises(ValueError, match="batch_size=None must be a multiple of num_replicas=2"):
        ShuffleSampler(10, 0, num_replicas=2, rank=0)


def test_worker_context_is_torchs_default_unless_the_start_method_is_not_a_standard_one(
        monkeypatch):
    """No start method set yet, or a standard one: None, torch's default (the platform's own
    context only where joblib's loky workers made "loky" the start method)."""
    import multiprocessing

    from brainjepa_sk.train.data import worker_context

    for method in (None, *multiprocessing.get_all_start_methods()):
        monkeypatch.setattr(multiprocessing, "get_start_method",
                            lambda allow_none=False, method=method: method)
        assert worker_context(2) is None, method
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "loky")
    default = multiprocessing.get_all_start_methods()[0]
    assert worker_context(2).get_start_method() == default


def test_spawned_loader_workers_start_where_the_default_start_method_is_lokys(monkeypatch):
    """In joblib's loky workers on macOS and Windows, whose default method is "spawn", every
    loader worker died with "cannot find context for 'loky'": a spawned child sets the start
    method its parent had, and "loky" is not registered in the new interpreter."""
    import multiprocessing

    import joblib.externals.loky.backend.context  # noqa: F401 (registers the "loky" method)

    previous = multiprocessing.get_start_method(allow_none=True)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods",  # macOS's order
                        lambda: ["spawn", "fork", "forkserver"])
    multiprocessing.set_start_method("loky", force=True)
    try:
        windows = torch.arange(4 * 2 * 3, dtype=torch.float32).view(4, 2, 3).numpy()
        loader = window_loader(WindowDataset(windows), 2, ShuffleSampler(4, seed=0),
                               num_workers=1)
        order = list(ShuffleSampler(4, seed=0))
        np.testing.assert_array_equal(torch.cat(list(loader)).numpy(), windows[order])
        assert multiprocessing.get_start_method() == "loky"  # as it was
    finally:
        multiprocessing.set_start_method(previous, force=True)


def test_a_loader_made_while_another_threads_worker_starts_gets_the_standard_context(
        monkeypatch):
    """While a spawned worker starts, the start method is its own for a moment: a loader made
    then in another thread of a loky worker took it as standard and got torch's default
    context, whose "loky" processes cannot start torch's workers."""
    import multiprocessing
    import threading

    import joblib.externals.loky.backend.context  # noqa: F401 (registers the "loky" method)

    from brainjepa_sk.train.data import worker_context

    starting, release, contexts = threading.Event(), threading.Event(), []

    def launch(process_obj):  # a spawn that waits, with "spawn" the start method meanwhile
        starting.set()
        release.wait(10)

    previous = multiprocessing.get_start_method(allow_none=True)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods",
                        lambda: ["spawn", "fork", "forkserver"])
    monkeypatch.setattr(multiprocessing.context.SpawnProcess, "_Popen", staticmethod(launch))
    multiprocessing.set_start_method("loky", force=True)
    try:
        process = worker_context(1).Process(target=print)
        launcher = threading.Thread(target=type(process)._Popen, args=(process,))
        launcher.start()
        assert starting.wait(10)
        asker = threading.Thread(target=lambda: contexts.append(worker_context(1)))
        asker.start()
        asker.join(0.2)
        release.set()
        launcher.join(10)
        asker.join(10)
        assert contexts[0] is not None and contexts[0].get_start_method() == "spawn"
        assert multiprocessing.get_start_method() == "loky"
    finally:
        release.set()
        multiprocessing.set_start_method(previous, force=True)


def _fail_where_the_launch_lock_is_held(worker_id):
    from brainjepa_sk.train import data

    if data._LAUNCH_LOCK.locked():
        raise RuntimeError("the worker was forked holding the launch lock")


def test_forked_loader_workers_inside_loky_start_as_before(monkeypatch):
    """Where fork is the platform's default (Linux before Python 3.14) a loky worker's loaders
    fork as they did: a child forked while the launch lock was held would wait on it for
    ever when it made a loader."""
    import multiprocessing

    import joblib.externals.loky.backend.context  # noqa: F401 (registers the "loky" method)

    from brainjepa_sk.train.data import worker_context

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork here")
    previous = multiprocessing.get_start_method(allow_none=True)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods",
                        lambda: ["fork", "spawn", "forkserver"])
    multiprocessing.set_start_method("loky", force=True)
    try:
        loader = torch.utils.data.DataLoader(
            torch.arange(4.0), batch_size=2, num_workers=1,
            multiprocessing_context=worker_context(1),
            worker_init_fn=_fail_where_the_launch_lock_is_held)
        assert torch.cat(list(loader)).tolist() == [0.0, 1.0, 2.0, 3.0]
    finally:
        multiprocessing.set_start_method(previous, force=True)


def test_window_loader_yields_full_batches_in_the_sampler_order():
    windows = _windows()
    dataset = WindowDataset(windows)
    sampler = ShuffleSampler(len(dataset), seed=5)
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(5))
    batches = list(window_loader(dataset, BATCH, sampler))
    assert len(batches) == N_WINDOWS // BATCH
    for k, batch in enumerate(batches):
        assert batch.shape == (BATCH, N_FRAMES, N_REGIONS) and batch.dtype == torch.float32
        assert torch.equal(batch, torch.from_numpy(windows)[order[k * BATCH:(k + 1) * BATCH]])
    # a batch larger than the data is capped to one full batch
    assert [len(b) for b in window_loader(dataset, 1000, sampler)] == [N_WINDOWS]
    # float64 windows are taken as float32, the model's dtype
    as_float64 = window_loader(WindowDataset(windows.astype("float64")), BATCH, sampler)
    assert next(iter(as_float64)).dtype == torch.float32
    # a dataset of single windows (no __getitems__) is stacked into batches too
    plain = list(torch.from_numpy(windows))
    first = next(iter(window_loader(plain, BATCH, ShuffleSampler(len(plain), seed=5))))
    assert torch.equal(first, torch.from_numpy(windows)[order[:BATCH]])
    assert window_loader(dataset, BATCH, sampler, pin_memory=True).pin_memory
    assert not window_loader(dataset, BATCH, sampler).pin_memory


def test_a_window_dataset_indexed_one_at_a_time_gives_the_windows_as_they_are():
    # the loader takes batches through __getitems__; indexing one window must agree with it
    windows = _windows()
    dataset = WindowDataset(windows.astype("float64"), np.arange(N_WINDOWS) // 4)
    assert len(dataset) == N_WINDOWS
    for index in (0, 7, N_WINDOWS - 1):
        window = dataset[index]
        assert window.shape == (N_FRAMES, N_REGIONS) and window.dtype == torch.float32
        assert torch.equal(window, torch.from_numpy(windows[index]))
    assert torch.equal(dataset.__getitems__([7, 0]), torch.from_numpy(windows[[7, 0]]))


def _window_at(subject, start):
    """A float64 window that says which subject and start it was read for."""
    window = np.zeros((N_FRAMES, N_REGIONS))
    window[0, :2] = subject, start
    return window


def test_a_lazy_dataset_reads_each_window_of_its_table_in_the_order_asked():
    dataset = LazyWindowDataset(np.array([3, 1, 2]), np.array([10, 20, 30]), _window_at)
    assert len(dataset) == 3
    window = dataset[1]
    assert window.shape == (N_FRAMES, N_REGIONS) and window.dtype == torch.float32
    assert window[0, :2].tolist() == [1, 20]  # read_window(subject, start)
    batch = dataset.__getitems__([2, 0, 1])
    assert batch.dtype == torch.float32
    assert batch[:, 0, :2].tolist() == [[2, 30], [3, 10], [1, 20]]


def test_a_lazy_dataset_of_a_large_corpus_reads_the_subjects_and_starts_of_its_table():
    """Subjects past the hundreds and starts deep into long series are read as given, not
    wrapped by a narrow integer type."""
    dataset = LazyWindowDataset(np.array([300, 70_000]), np.array([40_000, 5]), _window_at)
    assert dataset[0][0, :2].tolist() == [300, 40_000]
    assert dataset.__getitems__([1, 0])[:, 0, :2].tolist() == [[70_000, 5], [300, 40_000]]


def _window_of_the_worker(subject, start):
    """A window that says which process read it, and whether that process ignores SIGTERM and
    SIGINT."""
    window = np.zeros((N_FRAMES, N_REGIONS), dtype=np.float32)
    window[0, 0] = os.getpid()  # exact in float32 (below 2**24)
    window[0, 1] = signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    window[0, 2] = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    return window


def test_loader_workers_are_kept_between_epochs_and_ignore_sigterm_and_sigint(ctrl_c_raises):
    """Under several processes the loop trains on after SIGTERM or Ctrl-C until the processes
    agree to stop, and torchrun passes Ctrl-C on to each process's group: a worker ended by
    SIGINT (as torch's end quietly on KeyboardInterrupt) would fail those steps."""
    dataset = LazyWindowDataset(np.zeros(4), np.arange(4), _window_of_the_worker)
    loader = window_loader(dataset, 2, ShuffleSampler(4, seed=0), num_workers=1,
                           prefetch_factor=3)
    assert loader.prefetch_factor == 3
    epochs = [torch.cat(list(loader))[:, 0] for _ in range(2)]
    workers = [set(epoch[:, 0].long().tolist()) for epoch in epochs]
    assert workers[0] == workers[1] and os.getpid() not in workers[0]  # the same worker
    assert all(bool(epoch[:, 1:3].all()) for epoch in epochs)


def test_a_distributed_sampler_plugs_in_and_is_told_the_epoch():
    dataset_size = N_WINDOWS
    sampler = DistributedSampler(range(dataset_size), num_replicas=2, rank=1, seed=3)
    recorder = Recorder()
    loop = _loop(n_epochs=2, callbacks=[recorder], sampler=sampler)
    assert loop.steps_per_epoch == (dataset_size // 2) // BATCH
    loop.run()
    assert sampler.epoch == 1
    state = loop.state_dict()
    assert state["data_sampler"] is None  # its order is a function of (seed, epoch)


def test_a_state_whose_data_sampler_this_loop_cannot_take_is_refused_before_any_change():
    saved = _loop(n_epochs=1)
    saved.run()
    state = saved.state_dict()  # a ShuffleSampler's state
    sampler = DistributedSampler(range(N_WINDOWS), num_replicas=2, rank=1, seed=3)
    loop = _loop(sampler=sampler)
    before = {name: value.clone() for name, value in loop.model.state_dict().items()}
    with pytest.raises(ValueError, match="DistributedSampler cannot restore it"):
        loop.load_state_dict(state)
    for name, value in loop.model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert loop.step == 0


def test_a_state_of_another_model_is_refused_naming_its_file_before_any_change(tmp_path):
    # the same key (a caller's own) over a deeper model: torch would copy the blocks that fit
    path = tmp_path / "state.pt"
    _loop(n_epochs=1, callbacks=[Checkpoint(path, key="run-a")]).run()
    loop = _loop(depth=3)
    before = {name: value.clone() for name, value in loop.model.state_dict().items()}
    with pytest.raises(ValueError, match=rf"{path.name}: the state is of another model .*"
                                         r"blocks\.2\."):
        Checkpoint(path, key="run-a").restore(loop)
    for name, value in loop.model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert loop.step == 0 and loop.history == []


@pytest.mark.parametrize("other, missing", [
    (dict(depth=3), r"blocks\.2\."),  # the state holds tensors this loop's model lacks
    (dict(embed_dim=24), r"encoder\."),  # the same tensors, of other shapes
], ids=["deeper", "wider"])
def test_a_state_of_a_deeper_or_wider_model_is_refused_before_any_change(other, missing):
    saved = _loop(n_epochs=1, **other)
    saved.run()
    loop = _loop()
    before = {name: value.clone() for name, value in loop.model.state_dict().items()}
    with pytest.raises(ValueError, match=rf"the state is of another model .*{missing}"):
        loop.load_state_dict(saved.state_dict())
    for name, value in loop.model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert loop.step == 0 and loop.history == []


def test_a_state_of_an_optimizer_over_other_parameters_is_refused_before_any_change():
    """The same model, but an optimizer over the encoder alone: two groups as in the saved
    state, of other sizes (torch would raise only after the model was loaded)."""
    saved = _loop(n_epochs=1)
    saved.run()
    loop = _loop()
    loop.optimizer = torch.optim.AdamW(parameter_groups([loop.model.encoder], 0.04))
    before = {name: value.clone() for name, value in loop.model.state_dict().items()}
    with pytest.raises(ValueError, match="other parameter groups than this loop's"):
        loop.load_state_dict(saved.state_dict())
    for name, value in loop.model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert loop.step == 0


def test_the_loop_state_holds_no_reference_to_the_live_history():
    loop = _loop(n_epochs=1)
    loop.run()
    state = loop.state_dict()
    loop.history[0]["loss"] = -1.0
    assert state["history"][0]["loss"] != -1.0


def test_a_loaded_state_is_not_changed_by_the_run_that_continues_it():
    """One state can start several continuations: each loop holds its own history."""
    first = _loop(n_epochs=2)
    first.n_epochs = 1
    first.run()
    state = first.state_dict()
    continued, other = _loop(n_epochs=2), _loop(n_epochs=2)
    continued.load_state_dict(state)
    other.load_state_dict(state)
    continued.run()
    continued.history[0]["loss"] = -1.0
    assert len(state["history"]) == len(other.history) == 1
    assert state["history"] == other.history == first.history
    assert len(continued.history) == 2


def test_a_compiled_loop_reuses_its_graphs_after_warm_up():
    """Static shapes: after the first step, 20 more steps (schedule values changing at every
    step) compile nothing new, and the losses are the eager loop's."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    class CountCompilations(Callback):
        def on_step_end(self, loop, loss):
            if loop.step == 1:
                self.after_warm_up = (counters["stats"]["unique_graphs"],
                                      counters["frames"]["total"])

    torch._dynamo.reset()
    counters.clear()
    counter = CountCompilations()
    # aot_eager traces and compiles like inductor but without code generation: fast on a CPU
    compiled = _loop(n_epochs=7, drop_path_rate=0.0, callbacks=[counter],
                     compile={"backend": "aot_eager"})
    compiled.run()
    assert compiled.step == 21
    graphs, frames = counters["stats"]["unique_graphs"], counters["frames"]["total"]
    assert graphs >= 1 and (graphs, frames) == counter.after_warm_up
    eager = _loop(n_epochs=7, drop_path_rate=0.0)
    eager.run()
    assert [h["loss"] for h in compiled.history] == pytest.approx(
        [h["loss"] for h in eager.history], rel=1e-5)
    torch._dynamo.reset()


@pytest.mark.parametrize("compile, expected", [
    (True, {"dynamic": False}),
    ({"backend": "aot_eager"}, {"dynamic": False, "backend": "aot_eager"}),
    ({"dynamic": True}, {"dynamic": True}),
], ids=["true", "dict", "dict-overrides"])
def test_compile_compiles_the_forward_with_static_shapes_and_the_options_given(
        compile, expected, monkeypatch):
    """``dynamic=False`` unless the dict says otherwise (``None``, torch's default, would turn
    to dynamic shapes after a recompilation); the dict's options reach ``torch.compile``."""
    calls = []

    def fake_compile(module, **options):
        calls.append((module, options))
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    loop = _loop(n_epochs=1, compile=compile)
    assert calls == [(loop.model, expected)]


class _KillAt(Callback):
    """Stands for a kill right after step ``step`` (the states saved so far are what remain)."""

    def __init__(self, step, signal_number=None):
        self.step, self.signal_number = step, signal_number

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            if self.signal_number is None:
                raise KeyboardInterrupt
            os.kill(os.getpid(), self.signal_number)  # handled after this step


@pytest.mark.parametrize("kill_after", [2, 3, 4, 5, 8])  # 3 steps an epoch: inside, at the end
def test_a_run_killed_at_any_step_resumes_exactly(tmp_path, kill_after):
    straight = _loop(n_epochs=3)
    _run_seeded(straight)
    path = tmp_path / "state.pt"
    killed = _loop(n_epochs=3, callbacks=[_KillAt(kill_after),
                                          Checkpoint(path, key="k", every_steps=1)])
    # the kill callback runs before the checkpoint: the last save is from the step before
    with pytest.raises(KeyboardInterrupt):
        _run_seeded(killed)
    resumed = _loop(n_epochs=3, callbacks=[Checkpoint(path, key="k", every_steps=1)])
    with torch.random.fork_rng(devices=[]):
        assert Checkpoint(path, key="k").restore(resumed)
        assert resumed.step == kill_after - 1
        resumed.run()
    assert resumed.history == straight.history
    for p, q in zip(resumed.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(p, q)


def test_an_epoch_resumed_inside_is_not_begun_again(tmp_path):
    """``on_epoch_begin`` comes once, before an epoch's first step: a run resumed from a state
    saved inside epoch 1 (after step 4), and the loop stopped inside it (after step 5) and run
    again, go on with that epoch's steps and begin only epoch 2."""
    path = tmp_path / "state.pt"
    stopped = _loop(n_epochs=3, callbacks=[_KillAt(5), Checkpoint(path, key="k", every_steps=1)])
    with pytest.raises(KeyboardInterrupt):
        stopped.run()
    resumed_recorder, again_recorder = Recorder(), Recorder()
    resumed = _loop(n_epochs=3, callbacks=[resumed_recorder])
    assert Checkpoint(path, key="k").restore(resumed)
    resumed.run()
    stopped.callbacks = [again_recorder]
    stopped.run()
    for recorder, first_step in ((resumed_recorder, 5), (again_recorder, 6)):
        assert recorder.calls[:2] == [("train_begin", 1, first_step - 1),
                                      ("step_end", 1, first_step)]
        assert [call for call in recorder.calls if call[0] == "epoch_begin"] == [
            ("epoch_begin", 2, 6)]


def _loop_with(sampler, **options):
    """``_loop`` with its ShuffleSampler ("shuffle") or a one-process DistributedSampler."""
    if sampler == "shuffle":
        return _loop(**options)
    return _loop(sampler=DistributedSampler(range(N_WINDOWS), num_replicas=1, rank=0, seed=3),
                 **options)


@pytest.mark.parametrize("sampler", ["shuffle", "distributed"])
def test_a_loop_stopped_inside_an_epoch_and_run_again_finishes_that_epoch(sampler):
    """Stopped after step 4 (the first of epoch 1) and run again in the same process, the loop
    trains the rest of that epoch (not a new pass), as a resume from a saved state would."""
    def make(callbacks=None):
        return _loop_with(sampler, n_epochs=3, callbacks=callbacks)

    straight = make()
    _run_seeded(straight)
    stopped = make(callbacks=[_KillAt(4)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
        assert (stopped.epoch, stopped.step_in_epoch) == (1, 1)
        stopped.callbacks = []
        stopped.run()
    assert stopped.step == 9
    assert stopped.history == straight.history
    for p, q in zip(stopped.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(p, q)


class _OwnGeneratorSampler(torch.utils.data.Sampler):
    """A sampler with a state of its own (no ``resume_pass``) that draws from its own torch
    generator: its state, not the loop's record of the loader's generators, says where."""

    def __init__(self, n):
        self.n = n
        self.generator = torch.Generator().manual_seed(5)

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])


def test_a_sampler_with_a_state_keeps_its_own_generator_when_a_state_is_loaded():
    """The own generator of a sampler that has a state is the sampler's to restore: a state
    saved inside an epoch gives it back as the sampler saved it, not as the pass began."""
    loop = _loop(n_epochs=2, sampler=_OwnGeneratorSampler(N_WINDOWS), callbacks=[_KillAt(4)])
    with pytest.raises(KeyboardInterrupt):
        _run_seeded(loop)
    state = loop.state_dict()
    assert state["step_in_epoch"] == 1
    resumed = _loop(n_epochs=2, sampler=_OwnGeneratorSampler(N_WINDOWS))
    resumed.load_state_dict(state)
    assert torch.equal(resumed.loader.sampler.generator.get_state(),
                       state["data_sampler"]["generator"])
    assert not torch.equal(state["data_sampler"]["generator"],
                           torch.Generator().manual_seed(5).get_state())


def _global_stream_loop(callbacks=None):
    """``_loop`` over an ``_OwnGeneratorSampler``, its loader drawing its workers' seed from
    torch's global generator (no generator of its own), as a plain DataLoader does."""
    loop = _loop(n_epochs=3, sampler=_OwnGeneratorSampler(N_WINDOWS), callbacks=callbacks)
    loop.loader.generator = None
    return loop


def test_a_sampler_with_a_state_run_again_after_a_stop_goes_on_as_a_resume_would():
    """A sampler with a state of its own but no ``resume_pass`` gives the rest of its pass
    from that state: stopped inside an epoch and run again, the loop does not draw the pass
    again on torch's global generator (which stochastic depth draws from after it), and ends
    as a loop resumed from the state saved at the stop does."""
    stopped = _global_stream_loop(callbacks=[_StopTrainingAt(step=4)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        stopped.run()
        assert (stopped.epoch, stopped.step_in_epoch) == (1, 1)
        state = copy.deepcopy(stopped.state_dict())  # not the live weights it holds
        stopped.callbacks = []
        stopped.run()
        again = stopped.state_dict()
    resumed = _global_stream_loop()
    after_resume = _run_seeded(resumed, state)
    assert again["step"] == after_resume["step"] == 9
    assert again["history"] == after_resume["history"]
    assert torch.equal(again["global_rng"]["cpu"], after_resume["global_rng"]["cpu"])
    for p, q in zip(again["model"].values(), after_resume["model"].values()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("where", ["forward", "optimizer"])
def test_a_loop_stopped_inside_a_step_and_run_again_redoes_it_with_the_same_draws(where):
    """Ctrl-C inside a step (its forward pass, or just before the optimizer updates) leaves the
    step uncounted; run again, the loop redoes it with the masks and stochastic-depth draws it
    had (not the next ones), and ends as the straight run does."""
    straight = _loop(n_epochs=2)
    _run_seeded(straight)
    stopped = _loop(n_epochs=2)
    calls = []

    def interrupt_fifth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # epoch 1's second step (3 steps an epoch)
            raise KeyboardInterrupt

    if where == "forward":
        def forward(*args):
            out = stopped.model(*args)  # masks drawn, stochastic depth drawn
            interrupt_fifth()
            return out

        stopped._forward = forward
    else:
        stopped.optimizer.register_step_pre_hook(interrupt_fifth)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
        assert (stopped.epoch, stopped.step_in_epoch) == (1, 1)
        stopped.run()
    assert stopped.step == 6
    assert stopped.history == straight.history
    for p, q in zip(stopped.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("world_size, first", [(2, signal.SIGINT), (1, signal.SIGTERM)])
def test_a_ctrl_c_during_the_save_of_a_stop_ends_the_run_at_once(ctrl_c_raises, world_size,
                                                                  first):
    """With several processes a first Ctrl-C is noted and the run stops at the next agreed
    step, where the on_interrupt hooks save (as after a SIGTERM, also in one process). A
    Ctrl-C pressed to end now during that save raised a KeyboardInterrupt that the loop took
    for a first Ctrl-C: it saved again and raised TrainingInterrupted (as in the save of a
    single process's Ctrl-C, it ends the run at once). The loop told it has 2 processes does
    its collectives on this one alone."""
    saves = []

    class SignalsAndSaves(Callback):
        def on_step_end(self, loop, loss):
            if loop.step == 1:
                os.kill(os.getpid(), first)  # noted: stops at the next agreement

        def on_interrupt(self, loop):
            saves.append(loop.step)
            if len(saves) == 1:
                os.kill(os.getpid(), signal.SIGINT)  # during the save: end now

    loop = _loop(n_epochs=2, callbacks=[SignalsAndSaves()])
    loop.world_size, loop.stop_agreement_every = world_size, 2
    with pytest.raises(KeyboardInterrupt) as raised:
        loop.run()
    assert not isinstance(raised.value, TrainingInterrupted)
    assert saves == [world_size]  # one process stops at once, two at the agreement
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_ctrl_c_during_the_ema_update_stops_the_run_after_that_step_counted(ctrl_c_raises):
    """A real SIGINT after the optimizer step (during the EMA update) waits until the step is
    counted: run again, the loop goes on after it and ends as the straight run does (before,
    the step was redone over weights it had already updated)."""
    straight = _loop(n_epochs=2)
    _run_seeded(straight)
    ended = []

    class StepEnds(Callback):
        def on_step_end(self, loop, loss):
            ended.append(loop.step)

    stopped = _loop(n_epochs=2, callbacks=[StepEnds()])
    calls, real_update = [], stopped.model.ema_update

    def ema_update(momentum):
        calls.append(1)
        if len(calls) == 5:  # epoch 1's second step (3 steps an epoch)
            os.kill(os.getpid(), signal.SIGINT)
        real_update(momentum)

    stopped.model.ema_update = ema_update
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
        assert (stopped.epoch, stopped.step_in_epoch) == (1, 2)  # that step counted
        assert ended == [1, 2, 3, 4, 5]  # and its hooks ran (a Checkpoint's every_steps save)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
        stopped.run()
    assert stopped.step == 6
    assert stopped.history == straight.history
    for p, q in zip(stopped.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("sampler", ["shuffle", "distributed"])
def test_a_state_loaded_into_a_loop_stopped_inside_an_epoch_replaces_that_epochs_rest(sampler):
    """Stopped after step 4 (inside epoch 1), then given the state of the end of epoch 0 (a
    checkpoint saved each epoch), the loop trains epoch 1 whole: not without the batch the
    stopped pass had done."""
    def make(callbacks=None):
        return _loop_with(sampler, n_epochs=2, callbacks=callbacks)

    straight = make()
    _run_seeded(straight)
    first = make()
    first.n_epochs = 1
    state = _run_seeded(first)
    stopped = make(callbacks=[_KillAt(4)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
        stopped.callbacks = []
        stopped.load_state_dict(state)
        stopped.run()
    assert stopped.step == straight.step == 6
    assert stopped.history == straight.history


def test_a_state_of_a_stateless_sampler_keeps_the_epoch_length_where_a_pass_was_pending():
    """A state saved one step into epoch 1 by a loop whose sampler has no state (sequential)
    is loaded into a ShuffleSampler loop stopped inside epoch 0 (the rest of its pass pending):
    epoch 1 then has its other two steps, not what the stopped pass had left."""
    from torch.utils.data import SequentialSampler

    sequential = _loop(n_epochs=2, sampler=SequentialSampler(range(N_WINDOWS)),
                       callbacks=[_KillAt(4)])
    shuffled = _loop(n_epochs=2, callbacks=[_KillAt(2)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        for loop in (sequential, shuffled):
            with pytest.raises(KeyboardInterrupt):
                loop.run()
        state = sequential.state_dict()
        assert state["data_sampler"] is None and state["step_in_epoch"] == 1
        shuffled.callbacks = []
        shuffled.load_state_dict(state)
        shuffled.run()
    assert (shuffled.epoch, shuffled.step) == (2, 6)
    assert len(shuffled.history) == 2


def _data_loader_loop(kind, num_workers=0, callbacks=None, windows=None):
    """``_loop`` over a plain ``DataLoader`` whose sampler has no state: shuffled from a seeded
    generator of the loader's ("seeded") or the sampler's own ("sampler"), or from torch's
    global generator ("global"), or unshuffled (whose iterator still draws its workers' seed
    from the global generator). Returns the loop and the list of the batches it trains on."""
    from torch.utils.data import DataLoader, RandomSampler

    loop = _loop(n_epochs=3, callbacks=callbacks)
    windows = list(torch.from_numpy(_windows())) if windows is None else windows
    options = {"shuffle": kind in ("seeded", "global"), "drop_last": True,
               "num_workers": num_workers, "persistent_workers": num_workers > 0}
    if kind == "seeded":
        options["generator"] = torch.Generator().manual_seed(5)
    if kind == "sampler":
        options["sampler"] = RandomSampler(windows, generator=torch.Generator().manual_seed(5))
    loop.loader = DataLoader(windows, BATCH, **options)
    seen = []

    def train_step(x, momentum):
        seen.append(x.clone())
        return PretrainLoop.train_step(loop, x, momentum)

    loop.train_step = train_step
    return loop, seen


@pytest.mark.parametrize("kind, num_workers, kill_after", [
    ("seeded", 0, 5), ("seeded", 0, 3), ("seeded", 1, 5), ("global", 0, 5), ("global", 1, 5),
    ("sampler", 0, 5), ("unshuffled", 0, 5)])
def test_a_data_loader_drawing_from_generators_resumes_a_pass_exactly(kind, num_workers,
                                                                      kill_after):
    """Stopped after step 5 (inside epoch 1; 3 an epoch) or after epoch 0's hooks (step 3:
    a state between epochs), then resumed from its state in a fresh loop built the same way (a
    restart), or run again, a loop over a ``DataLoader`` sees the windows of the uninterrupted
    run, step by step, and ends with its weights: the pass is drawn again from the
    generators' states at its start, and the next pass from where the last one left them.
    With persistent workers, the stopped pass drew no seed for them (its iterator was started
    by epoch 0), and the resumed one draws none either."""
    class KillAtEpochEnd(Callback):
        def on_epoch_end(self, loop):
            raise KeyboardInterrupt

    straight, straight_seen = _data_loader_loop(kind, num_workers)
    _run_seeded(straight)
    kill = _KillAt(kill_after) if kill_after % 3 else KillAtEpochEnd()
    stopped, stopped_seen = _data_loader_loop(kind, num_workers, callbacks=[kill])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
        assert stopped.step == kill_after and stopped.step_in_epoch == kill_after % 3
        state = copy.deepcopy(stopped.state_dict())  # its tensors are the live ones
        stopped.callbacks = []
        stopped.run()  # on the global generator where the stopped run left it
    resumed, resumed_seen = _data_loader_loop(kind, num_workers)
    with torch.random.fork_rng(devices=[]):
        resumed.load_state_dict(state)
        resumed.run()
    assert len(straight_seen) == 9
    for seen in (stopped_seen[:kill_after] + resumed_seen, stopped_seen):
        assert len(seen) == 9
        assert all(torch.equal(x, y) for x, y in zip(seen, straight_seen))
    for loop in (resumed, stopped):
        assert loop.history == straight.history
        for p, q in zip(loop.model.state_dict().values(), straight.model.state_dict().values()):
            assert torch.equal(p, q)


def test_a_pass_that_started_its_workers_is_drawn_again_by_new_workers():
    """A pass stopped inside epoch 0 started the loader's persistent workers (drawing their
    seed before the order). Resumed into a loop whose loader already has workers (started
    outside a run), it starts new ones, so that the order is drawn as it was."""
    straight, straight_seen = _data_loader_loop("seeded", num_workers=1)
    _run_seeded(straight)
    stopped, stopped_seen = _data_loader_loop("seeded", num_workers=1, callbacks=[_KillAt(2)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
        state = stopped.state_dict()
    resumed, resumed_seen = _data_loader_loop("seeded", num_workers=1)
    iter(resumed.loader)  # its workers started
    with torch.random.fork_rng(devices=[]):
        resumed.load_state_dict(state)
        resumed.run()
    seen = stopped_seen + resumed_seen
    assert len(seen) == 9 and all(torch.equal(x, y) for x, y in zip(seen, straight_seen))


class _FailingRead:
    """Windows whose ``fail_at``-th read raises ``KeyboardInterrupt``, once (a Ctrl-C while a
    batch is loaded); a read is what the subclass counts (a window, a batch)."""

    def __init__(self, windows, fail_at):
        super().__init__(windows)
        self.fail_at, self.reads = fail_at, 0

    def _read(self):
        self.reads += 1
        if self.reads == self.fail_at:
            raise KeyboardInterrupt


class _ReadFailsOnce(_FailingRead, list):
    """A list of windows for a plain ``DataLoader``, read a window at a time."""

    def __getitem__(self, index):
        self._read()
        return super().__getitem__(index)


@pytest.mark.parametrize("kind", ["seeded", "global"])
def test_a_data_loader_stopped_loading_an_epochs_first_batch_draws_that_pass_again(kind):
    """Stopped reading epoch 1's first batch (its order already drawn) and run again, a loop
    over a shuffled ``DataLoader`` draws that pass again from where it had started: the
    windows and weights of the uninterrupted run."""
    straight, straight_seen = _data_loader_loop(kind)
    _run_seeded(straight)
    windows = _ReadFailsOnce(torch.from_numpy(_windows()), fail_at=3 * BATCH + 1)
    stopped, seen = _data_loader_loop(kind, windows=windows)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
        assert (stopped.epoch, stopped.step) == (1, 3)
        stopped.run()
    assert len(seen) == 9 and all(torch.equal(x, y) for x, y in zip(seen, straight_seen))
    assert stopped.history == straight.history
    for p, q in zip(stopped.model.state_dict().values(), straight.model.state_dict().values()):
        assert torch.equal(p, q)


def test_a_state_saved_without_the_loaders_generators_still_resumes_as_before():
    """A state saved before ``loader_rng`` was part of it finishes its epoch as then: the
    batches done skipped in a new order, with the same number of steps."""
    stopped, _ = _data_loader_loop("seeded", callbacks=[_KillAt(4)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
        state = stopped.state_dict()
    assert state["loader_rng"] is not None
    del state["loader_rng"]
    resumed, seen = _data_loader_loop("seeded")
    resumed.load_state_dict(state)
    assert resumed.state_dict()["loader_rng"] is None  # nothing made up before the run
    resumed.run()
    assert (resumed.epoch, resumed.step, len(seen)) == (3, 9, 5)
    assert len(resumed.history) == 3


def test_a_loader_without_a_batch_is_refused_when_the_loop_is_built():
    """Fewer windows than one batch, incomplete batches dropped (a loader of one's own;
    window_loader shrinks its batch to the windows there are): an epoch of no steps."""
    model = _loop().model
    loader = torch.utils.data.DataLoader(WindowDataset(_windows()[:BATCH - 1]), BATCH,
                                         drop_last=True)
    schedule = PretrainSchedule.from_epochs(1, 1, lr=1e-3)
    with pytest.raises(ValueError, match=rf"the loader yields no batch: .* \({BATCH}\)"):
        PretrainLoop(model, loader, SpatiotemporalMaskSampler(N_REGIONS, N_FRAMES // PATCH),
                     schedule, 1)


class _FailsOnce(_FailingRead, WindowDataset):
    """A ``WindowDataset`` read a batch at a time (a Ctrl-C while loading a batch)."""

    def __getitems__(self, indices):
        self._read()
        return super().__getitems__(indices)


@pytest.mark.parametrize("where", ["reading", "starting-workers"])
def test_a_loop_stopped_loading_an_epochs_first_batch_runs_that_epoch_on_its_own_data(
        where, monkeypatch):
    """Stopped before any step of epoch 1 and run again, the loop trains epoch 1 on the order
    of the straight run (as a resume from the state saved at the end of epoch 0 would), not
    on a new pass: stopped reading the batch, or as the loader's iterator starts (with
    workers, starting it already draws the pass's order)."""
    straight = _loop(n_epochs=2)
    _run_seeded(straight)
    stopped = _loop(n_epochs=2)
    if where == "reading":
        dataset = _FailsOnce(_windows(), fail_at=4)  # 3 batches an epoch
        stopped.loader = window_loader(dataset, BATCH, ShuffleSampler(len(dataset), seed=1))
    else:
        dataset = WindowDataset(_windows())
        stopped.loader = window_loader(dataset, BATCH, ShuffleSampler(len(dataset), seed=1),
                                       num_workers=1)
        started = []
        start = torch.utils.data.DataLoader.__iter__

        def interrupted_once(loader):
            batches = start(loader)
            started.append(loader)
            if len(started) == 2:  # epoch 1's iterator, its order drawn
                raise KeyboardInterrupt
            return batches

        monkeypatch.setattr(torch.utils.data.DataLoader, "__iter__", interrupted_once)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
        assert (stopped.epoch, stopped.step) == (1, 3)
        stopped.run()
    assert stopped.step == 6
    assert stopped.history == straight.history


def test_checkpoint_every_steps_counts_the_steps_of_the_run_not_of_the_epoch(tmp_path):
    """every_steps=2 over epochs of 3 steps saves after steps 2, 4, 6, ...: a run killed after
    step 5 keeps step 4 (counted within each epoch, it would keep the end of epoch 0)."""
    path = tmp_path / "state.pt"
    saved = []

    class Saves(Checkpoint):
        def save(self, loop):
            saved.append(loop.step)
            super().save(loop)

    killed = _loop(n_epochs=3, callbacks=[_KillAt(5), Saves(path, key="k", every_steps=2)])
    with pytest.raises(KeyboardInterrupt):
        _run_seeded(killed)
    assert saved == [2, 3, 4]  # steps 2 and 4, and the end of epoch 0
    assert torch.load(path, weights_only=True)["loop"]["step"] == 4


@pytest.mark.parametrize("every_steps", [0, -2, 2.5, True, "2"])
def test_checkpoint_refuses_an_every_steps_that_is_not_a_positive_int(tmp_path, every_steps):
    # 0 never saved between epochs and -2 saved every 2 steps, without a word
    with pytest.raises(ValueError, match="every_steps must be an int >= 1"):
        Checkpoint(tmp_path / "state.pt", key="k", every_steps=every_steps)
    assert Checkpoint(tmp_path / "state.pt", key="k", every_steps=np.int64(2)).every_steps == 2


def test_a_distributed_sampler_resumes_inside_an_epoch_too(tmp_path):
    def sampler():
        return DistributedSampler(range(N_WINDOWS), num_replicas=1, rank=0, seed=3)

    straight = _loop(n_epochs=2, sampler=sampler())
    _run_seeded(straight)
    path = tmp_path / "state.pt"
    killed = _loop(n_epochs=2, sampler=sampler(),
                   callbacks=[_KillAt(5), Checkpoint(path, key="k", every_steps=1)])
    with pytest.raises(KeyboardInterrupt):
        _run_seeded(killed)
    resumed = _loop(n_epochs=2, sampler=sampler())
    with torch.random.fork_rng(devices=[]):
        Checkpoint(path, key="k").restore(resumed)
        resumed.run()
    assert resumed.history == straight.history


def test_sigterm_finishes_the_step_saves_and_stops(tmp_path):
    straight = _loop(n_epochs=2)
    _run_seeded(straight)
    path = tmp_path / "state.pt"
    before = signal.getsignal(signal.SIGTERM)
    stopped = _loop(n_epochs=2, callbacks=[_KillAt(4, signal.SIGTERM), Checkpoint(path, "k")])
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM after step 4"):
        _run_seeded(stopped)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is put back
    assert torch.load(path, weights_only=True)["loop"]["step"] == 4  # saved on the signal
    resumed = _loop(n_epochs=2)
    with torch.random.fork_rng(devices=[]):
        Checkpoint(path, key="k").restore(resumed)
        resumed.run()
    assert resumed.history == straight.history


def test_a_run_puts_back_the_default_action_of_sigterm():
    """Under a job scheduler SIGTERM's action is the default one (end the process): after a run
    it must be again, not the finished loop's handler, which would swallow the signal."""
    before = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        _loop(n_epochs=1).run()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)


def test_a_sigterm_handler_set_outside_python_is_left_in_place(monkeypatch):
    """Python reads a handler it did not set (one an embedding program set before Python
    started) as None, and cannot put it back: the run must not replace it (it had left the
    finished loop's handler, swallowing later signals)."""
    installed = []
    monkeypatch.setattr(signal, "getsignal", lambda signum: None)
    monkeypatch.setattr(signal, "signal", lambda signum, handler: installed.append(signum))
    loop = _loop(n_epochs=1)
    loop.run()
    assert loop.step == 3 and signal.SIGTERM not in installed


def test_an_ignored_sigterm_stays_ignored_during_a_run():
    """A process that ignores SIGTERM (SIG_IGN, inherited from a shell's ``trap '' TERM``)
    asked not to be stopped by it: the run had replaced the handler and stopped at the next
    step with TrainingInterrupted."""
    class TermAt(Callback):
        def on_step_end(self, loop, loss):
            if loop.step == 2:
                signal.raise_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        loop = _loop(n_epochs=2, callbacks=[TermAt()])
        try:  # a KeyboardInterrupt, which would end the test session
            loop.run()
        except TrainingInterrupted as interrupted:
            pytest.fail(f"the ignored SIGTERM stopped the run: {interrupted}")
        assert loop.step == 6 and loop.epoch == 2
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_run_that_fails_to_start_puts_back_the_sigterm_handler(monkeypatch):
    """The step hook is registered after the handler is installed: its failure had left the
    loop's handler in place. No hook runs (on_train_end would run without on_train_begin)."""
    calls = []

    class Record(Callback):
        def on_train_begin(self, loop):
            calls.append("begin")

        def on_train_end(self, loop):
            calls.append("end")

    loop = _loop(n_epochs=1, callbacks=[Record()])

    def refuse(hook):
        raise RuntimeError("no step hooks here")

    monkeypatch.setattr(loop.optimizer, "register_step_pre_hook", refuse)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RuntimeError, match="no step hooks here"):
        loop.run()
    assert signal.getsignal(signal.SIGTERM) is before
    assert calls == []


def test_a_sigterm_after_the_last_step_still_stops_the_caller(tmp_path):
    """Landing in the last epoch's hooks, it would be dropped with the handler, and a
    cross-validation would carry on past the pre-emption."""

    class TermAtLastEpochEnd(Callback):
        interrupted_at = []

        def on_epoch_end(self, loop):
            if loop.epoch == loop.n_epochs:
                signal.raise_signal(signal.SIGTERM)

        def on_interrupt(self, loop):
            self.interrupted_at.append(loop.step)

    path = tmp_path / "state.pt"
    loop = _loop(n_epochs=2, callbacks=[TermAtLastEpochEnd(), Checkpoint(path, "k")])
    with pytest.raises(TrainingInterrupted, match="after the run's last step.*complete"):
        _run_seeded(loop)
    assert loop.epoch == 2 and len(loop.history) == 2
    # the callbacks are told, once, as after a SIGTERM inside the run
    assert TermAtLastEpochEnd.interrupted_at == [loop.step]
    assert torch.load(path, weights_only=True)["loop"]["epoch"] == 2  # the whole run saved


def test_a_sigterm_in_an_epochs_end_hooks_stops_before_the_next_epochs_first_step(tmp_path):
    """A SIGTERM that came while an epoch's end hooks ran (a slow Checkpoint save) was acted on
    only after the next epoch's first step: a step trained past the pre-emption's notice."""

    class TermAtFirstEpochEnd(Callback):
        def on_epoch_end(self, loop):
            if loop.epoch == 1:
                signal.raise_signal(signal.SIGTERM)

    straight = _loop(n_epochs=3)
    _run_seeded(straight)
    path = tmp_path / "state.pt"
    loop = _loop(n_epochs=3, callbacks=[TermAtFirstEpochEnd(), Checkpoint(path, "k")])
    with pytest.raises(TrainingInterrupted, match=(
            r"stopped by SIGTERM after the end of epoch 0 \(step 3\); the callbacks saved what "
            r"they save \(with a Checkpoint: call the same fit again to resume\)")):
        _run_seeded(loop)
    assert loop.step == 3 and loop.epoch == 1
    assert torch.load(path, weights_only=True)["loop"]["step"] == 3
    resumed = _loop(n_epochs=3)
    with torch.random.fork_rng(devices=[]):
        Checkpoint(path, key="k").restore(resumed)
        resumed.run()
    assert resumed.history == straight.history


def test_a_sigterm_before_a_new_runs_first_step_names_no_epoch_before_it(tmp_path):
    """A SIGTERM during the hooks that open a new run (a logger's slow start) stops it before
    its first step: it was said to come "after the end of epoch -1"."""

    class TermAtTrainBegin(Callback):
        def on_train_begin(self, loop):
            signal.raise_signal(signal.SIGTERM)

    path = tmp_path / "state.pt"
    loop = _loop(n_epochs=2, callbacks=[TermAtTrainBegin(), Checkpoint(path, "k")])
    with pytest.raises(TrainingInterrupted) as caught:
        _run_seeded(loop)
    assert str(caught.value) == (
        "stopped by SIGTERM before the run's first step; the callbacks saved what they save "
        "(with a Checkpoint: call the same fit again to resume)")
    assert loop.step == 0 and loop.epoch == 0
    assert torch.load(path, weights_only=True)["loop"]["step"] == 0


def test_a_sigterm_before_a_resumed_runs_first_step_stops_it_there(tmp_path):
    """A run resumed inside an epoch and told SIGTERM during its opening hooks trained a step
    first (the stop was asked only at an epoch's start)."""

    class TermAtTrainBegin(Callback):
        def on_train_begin(self, loop):
            signal.raise_signal(signal.SIGTERM)

    path = tmp_path / "state.pt"
    killed = _loop(n_epochs=2, callbacks=[_KillAt(2), Checkpoint(path, "k", every_steps=1)])
    with pytest.raises(KeyboardInterrupt):
        _run_seeded(killed)
    resumed = _loop(n_epochs=2, callbacks=[TermAtTrainBegin()])
    Checkpoint(path, key="k").restore(resumed)
    assert resumed.step == 1 and resumed.step_in_epoch == 1  # saved before the kill's step
    with pytest.raises(TrainingInterrupted, match=r"SIGTERM before the run's first step \(step "
                                                  r"1, inside epoch 0\)"):
        resumed.run()
    assert resumed.step == 1


def test_a_sigterm_stops_only_the_run_it_came_in():
    """A run stopped by SIGTERM after its last step, extended by an epoch and run again in
    the same process, trains that epoch to its end."""

    class TermAtLastEpochEnd(Callback):
        def on_epoch_end(self, loop):
            if loop.epoch == 1:
                signal.raise_signal(signal.SIGTERM)

    loop = _loop(n_epochs=2, callbacks=[TermAtLastEpochEnd()])
    loop.n_epochs = 1
    with pytest.raises(TrainingInterrupted, match="after the run's last step"):
        loop.run()
    loop.n_epochs = 2
    try:
        loop.run()
    except TrainingInterrupted as error:  # a KeyboardInterrupt: pytest would stop the session
        pytest.fail(f"the earlier signal stopped the new run: {error}")
    assert loop.step == 6 and loop.epoch == 2 and len(loop.history) == 2


#: The scenarios of ``_ddp_worker`` each DDP test asserts on. The selected tests share one pair
#: of spawned processes (``ddp_scenarios``): starting one costs seconds, most of it importing
#: torch, and each test used to start its own.
_DDP_SCENARIOS_OF_TESTS = {
    "test_two_processes_of_batch_b_train_like_one_of_batch_2b": ["batch-1", "batch-2"],
    "test_under_ddp_a_sigterm_to_one_process_stops_all_after_the_same_step": ["sigterm"],
    "test_under_ddp_ctrl_c_in_one_process_stops_all_after_the_same_step_and_resumes_exactly":
        ["sigint", "resume"],
    "test_under_ddp_stop_training_in_one_process_stops_all_after_the_same_step":
        ["stop-training"],
    "test_under_ddp_a_run_a_callback_of_one_process_stopped_as_sigterm_came_is_saved_as_stopped":
        ["stopped-as-sigterm-came"],
    "test_under_ddp_a_run_killed_inside_an_epoch_resumes_exactly": ["resume"],
    "test_under_ddp_an_unseeded_fit_shares_each_global_batch_without_repeating_windows":
        ["unseeded-estimator"],
    "test_work_on_the_main_process_reaches_every_process_with_its_errors": ["main-process"],
    "test_ctrl_c_in_a_process_waiting_for_process_0s_work_stops_every_process_at_once":
        ["ctrl-c-while-waiting"],
    "test_under_ddp_processes_given_other_subjects_all_refuse_them": ["other-subjects"],
    "test_under_ddp_transform_warns_of_the_scale_of_the_first_subjects_once": ["scale-check"],
    "test_under_ddp_the_processes_share_out_score_and_all_return_the_score_of_one": ["score"],
}


def _running(folder):
    """The scenario each process of ``folder``'s pair runs (``None`` before its first)."""
    return tuple((folder / f"running-{rank}.txt").read_text()
                 if (folder / f"running-{rank}.txt").exists() else None for rank in (0, 1))


@pytest.fixture(scope="module")
def ddp_scenarios(request, tmp_path_factory):
    """Runs the scenarios of the selected DDP tests in one pair of gloo processes, one after
    the other; returns ``folder_of(name)``, the folder of a scenario's files, which fails the
    test with the scenario's traceback (from each process that raised) when it failed.

    A scenario that raises (or kills a process, or outlives its time) ends both processes;
    the scenarios after it run in a new pair."""
    import _ddp_worker

    names = []
    for item in request.session.items:
        if getattr(item, "module", None) is request.module:
            for name in _DDP_SCENARIOS_OF_TESTS.get(getattr(item, "originalname", None), []):
                if name not in names:
                    names.append(name)
    ended, where, remaining = {}, {}, names
    while remaining:  # each pair of processes in a folder of its own
        folder = tmp_path_factory.mktemp("ddp")
        where.update(dict.fromkeys(remaining, folder))
        try:
            # each scenario's own time (a few seconds) and the processes' start, counted
            # from when either process began its scenario
            _spawn_within(_ddp_worker.scenarios_worker, (2, str(folder), remaining),
                          seconds=180, progress=lambda folder=folder: _running(folder))
            break
        except (Exception, pytest.fail.Exception) as error:
            running = [(folder / f"running-{rank}.txt").read_text() for rank in (0, 1)
                       if (folder / f"running-{rank}.txt").exists()]
            # the first scenario a process was in when it ended (each writes it as it starts)
            at = min((remaining.index(name) for name in running if name in remaining),
                     default=0)
            ended[remaining[at]] = (f"the processes ended while running scenario "
                                    f"{remaining[at]!r}: {error}")
            remaining = remaining[at + 1:]

    def folder_of(name):
        own = where[name] / name
        errors = [path.read_text() for path in sorted(own.glob("error-*.txt"))]
        if name in ended:  # how the processes ended, after what each one raised
            errors.append(ended[name])
        if errors:
            pytest.fail(f"scenario {name!r} failed:\n" + "\n".join(errors), pytrace=False)
        return own

    return folder_of


@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_two_processes_of_batch_b_train_like_one_of_batch_2b(ddp_scenarios, accumulation_steps):
    """DDP on the CPU (gloo): the loss trajectory and the weights of 2 x batch 4 (also in 2
    accumulated micro-batches of 2 each) match 1 x batch 8, and both processes end with the
    same weights (EMA target included)."""
    import _ddp_worker

    single, single_losses = _ddp_worker.run(global_batch=8)
    result = torch.load(ddp_scenarios(f"batch-{accumulation_steps}") / "ddp.pt",
                        weights_only=True)
    # the gradients are all-reduced once a step, accumulated or not (no_sync before the last)
    assert result["allreduces"] == result["steps"] == 9
    rank_losses = torch.tensor(result["losses"])  # (2 processes, steps)
    assert rank_losses.shape[1] == len(single_losses) == 9
    # the callbacks get each process's own loss (the epoch's mean is reduced on a copy)
    assert not torch.isclose(rank_losses[0], rank_losses[1]).any()
    torch.testing.assert_close(rank_losses.mean(0), torch.tensor(single_losses),
                               rtol=1e-4, atol=1e-5)
    assert [h["loss"] for h in result["history"]] == pytest.approx(
        [h["loss"] for h in single.history], rel=1e-4)
    first, second = result["states"]
    for key, value in single.model.state_dict().items():
        assert torch.equal(first[key], second[key])  # the processes agree exactly
        torch.testing.assert_close(first[key], value, rtol=1e-4, atol=1e-5)


def _spawn_within(function, args, seconds=120, progress=None):
    """``mp.spawn`` 2 processes; a test that would wait forever on a regression (processes
    stuck in a collective) fails after ``seconds`` instead.

    ``progress``, a function whose value changes as the processes get on (the scenario each
    runs), makes the ``seconds`` count from its last change: processes running scenarios one
    after another are given ``seconds`` for each, not for all of them together."""
    import time

    import torch.multiprocessing as mp

    context = mp.spawn(function, args=args, nprocs=2, join=False)
    deadline = time.monotonic() + seconds
    last = None if progress is None else progress()
    while not context.join(timeout=1):
        now = None if progress is None else progress()
        if now != last:
            last, deadline = now, time.monotonic() + seconds
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the processes did not end within {seconds} s"
                        + ("" if progress is None else " of their last progress"))


class _FakeSpawned:
    """Stands for ``mp.spawn(..., join=False)``'s context: 2 processes that end after
    ``seconds`` (never when None), and record being killed."""

    def __init__(self, seconds):
        import time

        self.ends_at = None if seconds is None else time.monotonic() + seconds
        self.processes = [type("Process", (), {"kill": lambda p: self.killed.append(p)})()
                          for _ in range(2)]
        self.killed = []

    def join(self, timeout=None):
        import time

        time.sleep(0.02)
        return self.ends_at is not None and time.monotonic() >= self.ends_at


def test_spawned_processes_running_scenarios_get_a_time_for_each_not_for_all(monkeypatch):
    """The DDP scenarios run one after another in one pair of processes. Their time limit had
    been for all of them together (60 + 120 s a scenario): a hang in the last of 9 went on
    for 19 minutes. With ``progress`` (the scenario each process runs) the time counts from
    its last change: processes that get on are left to, and a hang fails after ``seconds``."""
    import time

    import torch.multiprocessing as mp

    started = time.monotonic()

    def progress(stalls_after=None):  # another value every 0.1 s
        elapsed = time.monotonic() - started
        return int(min(elapsed, stalls_after or elapsed) / 0.1)

    monkeypatch.setattr(mp, "spawn", lambda *args, **kwargs: _FakeSpawned(1.0))
    _spawn_within(None, (), seconds=0.4, progress=progress)  # 1 s, a step every 0.1 s
    assert time.monotonic() - started >= 1.0

    hung = _FakeSpawned(None)
    monkeypatch.setattr(mp, "spawn", lambda *args, **kwargs: hung)
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"within 0\.4 s of their last progress"):
        _spawn_within(None, (), seconds=0.4, progress=lambda: progress(stalls_after=0.5))
    assert 0.9 <= time.monotonic() - started < 2.0 and len(hung.killed) == 2
    # without progress, the time counts from the start
    started = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match=r"within 0\.4 s$"):
        _spawn_within(None, (), seconds=0.4)
    assert time.monotonic() - started < 1.0


def test_under_ddp_a_sigterm_to_one_process_stops_all_after_the_same_step(ddp_scenarios):
    """Processes agree on a SIGTERM every few steps: one stopping alone would leave the
    others waiting in their next all-reduce."""
    folder = ddp_scenarios("sigterm")
    out, state = folder / "steps.pt", folder / "state.pt"
    assert torch.load(out, weights_only=True)["steps"] == [2, 2]  # signal after 1, agreed at 2
    assert torch.load(state, weights_only=True)["loop"]["step"] == 2  # rank 0 saved it


def test_under_ddp_ctrl_c_in_one_process_stops_all_after_the_same_step_and_resumes_exactly(
        ddp_scenarios):
    """A SIGINT to one process (``kill -INT``; a terminal's Ctrl-C reaches every process, and
    torchrun passes its own on to each) is noted as a SIGTERM is: a KeyboardInterrupt raised
    at once stopped that process alone and left the other in its next all-reduce. Both stop
    after the same step with the same error, rank 0 saved there, and the run resumed from
    that save ends as a run never stopped does."""
    stopped = torch.load(ddp_scenarios("sigint") / "stopped.pt", weights_only=True)
    message = ("stopped by Ctrl-C after the end of epoch 0 (step 3); the callbacks saved what "
               "they save (with a Checkpoint: call the same fit again to resume)")
    # signal after 3, the first epoch's last step: agreed before the next epoch's first step
    assert stopped == [(3, message), (3, message)]
    resumed = torch.load(ddp_scenarios("sigint") / "resumed.pt", weights_only=True)
    straight = torch.load(ddp_scenarios("resume") / "straight.pt", weights_only=True)
    assert resumed["started_at"] == 3  # from rank 0's save
    assert resumed["step"] == straight["step"] == 9
    assert resumed["history"] == straight["history"]
    for key, value in straight["states"][0].items():
        assert torch.equal(resumed["states"][0][key], value), key
        assert torch.equal(resumed["states"][1][key], value), key


@pytest.mark.slow  # about 10 s on 2 cores, most of it starting the 2 processes
def test_under_ddp_a_process_that_dies_mid_run_does_not_leave_the_other_waiting(tmp_path):
    """A process that ends in the middle of a run without an error (``os._exit(0)``: a crash
    of the interpreter, or a library's ``exit`` that reports success) leaves the other in the
    next gradient all-reduce. After exit code 0 ``mp.spawn``'s join waits for the others (it
    stops them only after a failed exit code), so the run ends only because gloo sees the
    closed connection and process 0 raises there, instead of waiting forever."""
    import _ddp_worker
    import torch.multiprocessing as mp

    # gloo's words: the connection was reset or closed by peer
    with pytest.raises(mp.ProcessRaisedException,
                       match=re.compile(r"Process 0 terminated.*Connection \w+ by peer",
                                        re.DOTALL)):
        _spawn_within(_ddp_worker.dying_worker, (2, str(tmp_path / "init"), 0), seconds=60)


def test_under_ddp_stop_training_in_one_process_stops_all_after_the_same_step(ddp_scenarios):
    """A callback of one process alone sets ``stop_training``: the processes agree on it at
    the next agreement step, and all stop after it (one stopping alone would leave the others
    waiting in their next all-reduce)."""
    out = ddp_scenarios("stop-training") / "steps.pt"
    assert torch.load(out, weights_only=True) == [(2, 2, True), (2, 2, True)]


def test_under_ddp_a_run_a_callback_of_one_process_stopped_as_sigterm_came_is_saved_as_stopped(
        ddp_scenarios):
    """Process 1's callback stops the run at the step a SIGTERM reaches it. Process 0 saved
    the run as unfinished (it never heard of the stop: the SIGTERM ended the run first), and
    later fits warned of it; it is saved as stopped, as with one process."""
    from brainjepa_sk.train import unfinished_runs

    scenario = ddp_scenarios("stopped-as-sigterm-came")
    out, folder = scenario / "raised.pt", scenario / "runs"
    for raised in torch.load(out, weights_only=True):
        assert raised is not None and "SIGTERM after step 1" in raised
    (state_file,) = folder.glob("run-*.pt")
    saved = torch.load(state_file, weights_only=False)
    assert saved["loop"]["step"] == 1 and saved["extra"].get("stopped_by_callback")
    assert unfinished_runs(folder) == []


def test_under_ddp_a_run_killed_inside_an_epoch_resumes_exactly(ddp_scenarios):
    """2 gloo processes, killed after step 4 (inside the second epoch of 3 steps), resumed from
    rank 0's save: the same weights on both processes and the same history as a run never
    killed (the epoch loss saved mid-epoch is the global one, the same in every process)."""
    folder = ddp_scenarios("resume")
    straight, killed, resumed = (torch.load(folder / f"{name}.pt", weights_only=True)
                                 for name in ("straight", "killed", "resumed"))
    assert killed["step"] == 4
    assert resumed["step"] == straight["step"] == 9
    assert resumed["history"] == straight["history"]
    for key, value in straight["states"][0].items():
        assert torch.equal(resumed["states"][0][key], value), key
        assert torch.equal(resumed["states"][1][key], value), key


def test_under_ddp_an_unseeded_fit_shares_each_global_batch_without_repeating_windows(
        ddp_scenarios):
    """random_state=None draws its seeds in process 0 for all: processes drawing their own
    would each shuffle the windows differently, training on some twice and others never.
    Only process 0 warns: each process would repeat the same warning."""
    results = torch.load(ddp_scenarios("unseeded-estimator") / "seen.pt", weights_only=True)
    first, second = (result["seen"] for result in results)
    assert [m for m in results[0]["warnings"] if "warmup_epochs=2" in m]
    assert not [m for m in results[1]["warnings"] if "warmup_epochs=2" in m]
    # 9 subjects of 48 frames: 18 windows of 32 (stride 16), 4 global batches of 4
    assert len(first) == len(second) == 8
    assert len(set(first) | set(second)) == 16 and set(first) | set(second) <= set(range(18))


def test_work_on_the_main_process_reaches_every_process_with_its_errors(ddp_scenarios):
    first, second = torch.load(ddp_scenarios("main-process") / "main.pt", weights_only=False)
    for result in (first, second):
        assert result["value"]["rank"] == 10  # process 0's result
        assert torch.equal(result["value"]["array"], torch.arange(3))
        assert result["error"] == "ValueError: the file x.npy is damaged"
        assert result["after"] == 0
        assert result["gathered"] == [0, 1, 1]  # every process's items, in rank order
    assert first["calls"] == [0] and second["calls"] == []  # computed once, in process 0
    assert first["unpicklable"].startswith("_Unpicklable")
    assert second["unpicklable"] == "RuntimeError: process 0 failed: _Unpicklable: no pickle"
    assert first["no_unpickle"] == "_NoUnpickle: sub-01.npy: damaged"
    assert second["no_unpickle"] == "RuntimeError: process 0 failed: _NoUnpickle: sub-01.npy: damaged"
    assert first["interrupt"] == second["interrupt"] == "KeyboardInterrupt: stop"
    # 5 s of work in process 0, past the group's 3 s timeout: the others still wait for it
    assert first["slow"] == second["slow"] == "done"
    # the pickling error is raised in both, instead of process 1 waiting for a result
    assert first["unsendable"] == second["unsendable"]
    assert first["unsendable"] in ("PicklingError", "AttributeError", "TypeError")


def test_ctrl_c_in_a_process_waiting_for_process_0s_work_stops_every_process_at_once(
        ddp_scenarios):
    """A process waiting in a collective operation takes a signal only once it returns: the
    SIGINT of a process waiting for process 0's 20 s of work acted after that work, and process
    0 then failed in its next collective operation ("Connection closed by peer"). The waiting
    process now asks process 0 to stop, process 0's work is interrupted, and both raise the
    same KeyboardInterrupt within seconds."""
    first, second = torch.load(ddp_scenarios("ctrl-c-while-waiting") / "stopped.pt",
                               weights_only=True)
    message = ("KeyboardInterrupt: stopped by Ctrl-C (SIGINT) in process 1, which waited for "
               "process 0 to run ctrl_c_while_waiting_scenario.<locals>.work: every process "
               "stops")
    assert first[0] == second[0] == message
    assert first[1] < 10 and second[1] < 10  # seconds, of the 20 s the work would take
    assert (first[2], second[2]) == (0, 0)  # a later call: process 0's result in both


def test_run_key_names_settings_data_and_learned_arrays():
    import numpy as np

    from brainjepa_sk.train import run_key

    base = run_key({"lr": 1e-3, "depth": 2}, digests=["abc"], arrays=[np.ones(3), None])
    assert len(base) == 64
    # the order of dict keys does not matter; every input does
    assert run_key({"depth": 2, "lr": 1e-3}, digests=["abc"], arrays=[np.ones(3)]) == base
    assert run_key({"lr": 2e-3, "depth": 2}, digests=["abc"], arrays=[np.ones(3)]) != base
    assert run_key({"lr": 1e-3, "depth": 2}, digests=["abd"], arrays=[np.ones(3)]) != base
    assert run_key({"lr": 1e-3, "depth": 2}, digests=["abc"], arrays=[np.zeros(3)]) != base
    # numpy integers and booleans (from np.arange, comparisons) name the run of the Python values
    assert run_key({"n": np.int64(2), "flag": np.True_}) == run_key({"n": 2, "flag": True})
    # other values enter through their repr, not their str (a path is not the string of it)
    path = pathlib.PurePosixPath("sub-01")
    assert run_key({"x": path}) == run_key({"x": repr(path)}) != run_key({"x": "sub-01"})


def test_run_key_hashes_every_learned_array():
    import numpy as np

    from brainjepa_sk.train import run_key

    base = run_key({}, arrays=[np.ones(3), np.ones(1)])
    assert run_key({}, arrays=[np.ones(3), np.zeros(1)]) != base  # the second, of one value
    # the same bytes in another shape or split are other arrays
    square = np.arange(6.0).reshape(2, 3)
    assert run_key({}, arrays=[square]) != run_key({}, arrays=[square.reshape(3, 2)])
    assert run_key({}, arrays=[np.ones(4)]) != run_key({}, arrays=[np.ones(3), np.ones(1)])
    digest = "0" * 64  # data digests differ anywhere, not only at their start
    assert run_key({}, digests=[digest]) != run_key({}, digests=[digest[:-1] + "1"])
    # the same bytes in another dtype are other values (float64 ones read as int64)
    values = np.linspace(0.5, 2.0, 4)
    assert run_key({}, arrays=[values]) != run_key({}, arrays=[values.view(np.int64)])
    # every data digest counts, not only the first (e.g. the subjects' and the targets')
    other = "1" * 64
    assert run_key({}, digests=[digest, digest]) != run_key({}, digests=[digest, other])


def test_run_key_keeps_the_place_of_an_absent_array():
    """An absent array is not the next one moved up: skipped, (a, None) was (None, a)."""
    import numpy as np

    from brainjepa_sk.train import run_key

    a, b = np.ones(3), np.zeros(1)
    assert run_key({}, arrays=[a, None]) != run_key({}, arrays=[None, a])
    assert run_key({}, arrays=[a, None, b]) != run_key({}, arrays=[a, b, None])
    assert run_key({}, arrays=[None, None, a]) != run_key({}, arrays=[None, a])
    # absent arrays at the end add nothing: the pretrainer's (gradients, None, None) without
    # robust statistics keeps the key it had when every None was skipped
    assert run_key({}, arrays=[a, None, None]) == run_key({}, arrays=[a])


def test_run_keys_stay_the_same_from_one_version_to_the_next():
    """Saved runs are found again by their key: the same settings, data and arrays must name
    the same run after an upgrade (another encoding would restart every saved run afresh).
    Each absent array counts once, before the array that follows it."""
    import numpy as np

    from brainjepa_sk.train import run_key

    a, b = np.arange(3.0), np.ones((2, 1), np.float32)
    assert (run_key({"lr": 1e-3, "n_epochs": 4}, digests=["0" * 64], arrays=[None, a, b])
            == "73aaf125b5b07bcccaee640ec4eceddb60c3538672e36d730f52911986e86a13")
    assert (run_key({}, arrays=[a, None, a, b])
            == "4b42271dec676ada899d18fba73dd4e0eacc063f2bfadcdce9fc8ee6415d7913")


def test_find_shorter_run_takes_the_furthest_run_of_the_lineage_asked_for_fewer_epochs(
        tmp_path):
    from brainjepa_sk.train import find_shorter_run

    fresh, one, two = _loop(n_epochs=1), _loop(n_epochs=1), _loop(n_epochs=2)
    one.run()
    two.run()

    def save(name, loop, lineage, n_epochs):
        Checkpoint(tmp_path / f"run-{name}.pt", key=name,
                   extra={"lineage": lineage, "n_epochs": n_epochs}).save(loop)

    save("started", fresh, "a", 1)
    save("short", one, "a", 1)
    save("tie", one, "a", 1)  # as far: the first by name is taken
    save("as-long", two, "a", 2)  # asked for as many epochs: not shorter, though further
    save("longer", two, "a", 3)
    save("other", two, "b", 1)  # another lineage
    path, state = find_shorter_run(tmp_path, "a", 2)
    assert path.name == "run-short.pt" and state["loop"]["step"] == one.step > 0
    assert find_shorter_run(tmp_path, "a", 1) is None
    assert find_shorter_run(tmp_path, "c", 5) is None
    # only the states the pattern names
    assert find_shorter_run(tmp_path, "a", 2, pattern="run-st*.pt")[0].name == "run-started.pt"


def test_a_file_that_is_no_training_state_is_named_not_passed_over(tmp_path):
    """A torch file of another kind where a state is expected (e.g. exported weights under the
    state's name): resuming names it, and looking for a shorter run warns about it."""
    from brainjepa_sk.train import find_shorter_run

    path = tmp_path / "run-a.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match=r"run-a\.pt is not a training state.*delete it"):
        Checkpoint(path, key="k").restore(_loop(n_epochs=1))
    with pytest.warns(UserWarning, match=r"skipped while looking for a shorter run to "
                                         r"continue: .*run-a\.pt is not a training state"):
        assert find_shorter_run(tmp_path, "a", 2) is None
    # the files after it are still looked at
    shorter = _loop(n_epochs=1)
    shorter.run()
    Checkpoint(tmp_path / "run-b.pt", key="b", extra={"lineage": "a", "n_epochs": 1}).save(shorter)
    with pytest.warns(UserWarning, match=r"run-a\.pt is not a training state"):
        assert find_shorter_run(tmp_path, "a", 2)[0].name == "run-b.pt"


def test_every_steps_saves_the_last_step_of_an_epoch_too(tmp_path):
    """Step 3 is a multiple of every_steps=3 and the end of epoch 0: killed right after it,
    before the epoch's end, the run keeps it."""
    path = tmp_path / "state.pt"
    killed = _loop(n_epochs=2, callbacks=[Checkpoint(path, key="k", every_steps=3), _KillAt(3)])
    with pytest.raises(KeyboardInterrupt):
        _run_seeded(killed)
    assert torch.load(path, weights_only=True)["loop"]["step"] == 3


def test_a_state_saved_without_a_key_is_not_resumed_under_one(tmp_path):
    """A state written with key=None (a run that cannot be reproduced) is another run's."""
    path = tmp_path / "state.pt"
    loop = _loop(n_epochs=1)
    loop.run()
    Checkpoint(path, key=None).save(loop)
    with pytest.warns(UserWarning, match="other settings or data"):
        assert not Checkpoint(path, key="k").restore(_loop(n_epochs=1))


def test_a_checkpoint_without_a_key_says_so_when_it_does_not_resume(tmp_path):
    # it blamed only a random_state that is not an int, which a loop of one's own has none of
    path = tmp_path / "state.pt"
    loop = _loop(n_epochs=1)
    loop.run()
    Checkpoint(path, key="k").save(loop)
    with pytest.warns(UserWarning, match=r"not resuming from .*: it has no run key \(key=None"):
        assert not Checkpoint(path, key=None).restore(_loop(n_epochs=1))


def test_a_state_whose_lineage_was_damaged_is_named_not_passed_over_as_another_run(tmp_path):
    """A flipped byte in a state's run settings (its ``extra``) can turn the lineage it was
    saved under into another one: the file is not taken for another run's and skipped in
    silence (peeking checks ``extra`` against its checksum), looking for a shorter run warns
    that it is damaged."""
    from brainjepa_sk.train import find_shorter_run
    from brainjepa_sk.train.callbacks import peek_training_state

    loop = _loop(n_epochs=1)
    loop.run()
    path = tmp_path / "run-a.pt"
    Checkpoint(path, key="k", extra={"lineage": "a", "n_epochs": 1}).save(loop)
    assert peek_training_state(path)["extra"]["lineage"] == "a"
    state = torch.load(path, weights_only=True)
    state["extra"]["lineage"] = "b"  # its stored checksum kept: that of lineage "a"
    torch.save(state, path)
    assert peek_training_state(path) is None
    with pytest.warns(UserWarning, match=r"skipped while looking for a shorter run to "
                                         r"continue: .*run-a\.pt is damaged"):
        assert find_shorter_run(tmp_path, "a", 2) is None


def test_find_shorter_run_checks_the_lineage_of_a_state_it_could_not_peek_into(tmp_path):
    """A state in torch's older (not zip) format cannot be memory-mapped: it is read whole,
    and its lineage and epochs are still checked."""
    from brainjepa_sk.train import find_shorter_run

    loop = _loop(n_epochs=1)
    loop.run()
    for name, lineage, n_epochs in (("other", "b", 1), ("longer", "a", 3)):
        path = tmp_path / f"run-{name}.pt"
        Checkpoint(path, key=name, extra={"lineage": lineage, "n_epochs": n_epochs}).save(loop)
        torch.save(torch.load(path, weights_only=True), path,
                   _use_new_zipfile_serialization=False)
    assert find_shorter_run(tmp_path, "a", 2) is None
    path = tmp_path / "run-short.pt"
    Checkpoint(path, key="short", extra={"lineage": "a", "n_epochs": 1}).save(loop)
    torch.save(torch.load(path, weights_only=True), path, _use_new_zipfile_serialization=False)
    assert find_shorter_run(tmp_path, "a", 2)[0] == path


def test_find_shorter_run_reads_no_state_asked_for_as_many_epochs(tmp_path, monkeypatch):
    """Whether peeked into or (in torch's older format) read whole, a state of the lineage
    asked for as many epochs is not a shorter run (a peeked one is not even read), nor is a
    state in a folder inside the one searched."""
    from brainjepa_sk.train import find_shorter_run, runs

    loop = _loop(n_epochs=1)
    loop.run()
    path = tmp_path / "run-as-long.pt"
    Checkpoint(path, key="as-long", extra={"lineage": "a", "n_epochs": 2}).save(loop)
    read = []
    real_read = runs.read_training_state
    monkeypatch.setattr(runs, "read_training_state", lambda p: read.append(p) or real_read(p))
    assert find_shorter_run(tmp_path, "a", 2) is None and read == []
    torch.save(torch.load(path, weights_only=True), path, _use_new_zipfile_serialization=False)
    assert find_shorter_run(tmp_path, "a", 2) is None and read == [path]
    # the states of the folder itself: not those of a folder inside it
    path.unlink()
    Checkpoint(tmp_path / "inner" / "run-short.pt", key="short",
               extra={"lineage": "a", "n_epochs": 1}).save(loop)
    assert find_shorter_run(tmp_path, "a", 2) is None


def test_find_shorter_run_counts_steps_not_epochs(tmp_path):
    """Two states of the lineage at the same epoch: the one further inside that epoch is
    continued; other torch files in the folder (e.g. exported models) are not state files."""
    from brainjepa_sk.train import find_shorter_run

    extra = {"lineage": "a", "n_epochs": 2}
    one = _loop(n_epochs=2, callbacks=[Checkpoint(tmp_path / "run-a.pt", key="a", extra=extra)])
    one.n_epochs = 1
    one.run()
    killed = _loop(n_epochs=2, callbacks=[
        _KillAt(5), Checkpoint(tmp_path / "run-b.pt", key="b", extra=extra, every_steps=1)])
    with pytest.raises(KeyboardInterrupt):
        _run_seeded(killed)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "exported.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path, state = find_shorter_run(tmp_path, "a", 3)
    assert path.name == "run-b.pt" and (state["loop"]["epoch"], state["loop"]["step"]) == (1, 4)


def test_find_shorter_run_passes_over_states_saved_without_run_settings(tmp_path):
    """A state saved by a Checkpoint given no ``extra`` (peeked into, or in torch's older
    format read whole) belongs to no lineage: it is passed over, not a failure."""
    from brainjepa_sk.train import find_shorter_run

    loop = _loop(n_epochs=1)
    loop.run()
    Checkpoint(tmp_path / "run-a.pt", key="a").save(loop)
    old = tmp_path / "run-b.pt"
    Checkpoint(old, key="b").save(loop)
    torch.save(torch.load(old, weights_only=True), old, _use_new_zipfile_serialization=False)
    assert find_shorter_run(tmp_path, "a", 2) is None
    Checkpoint(tmp_path / "run-c.pt", key="c", extra={"lineage": "a", "n_epochs": 1}).save(loop)
    assert find_shorter_run(tmp_path, "a", 2)[0].name == "run-c.pt"


def test_the_loop_steps_the_optimizer_it_is_given_with_the_schedules_values():
    """A given optimizer (here SGD) is the one that takes every step, with the schedule's
    learning rate in each group and its weight decay in the decayed one: the loop does not
    build a default AdamW beside it."""
    base = _loop(n_epochs=1)
    model = base.model
    sgd = torch.optim.SGD(parameter_groups([model.encoder, model.predictor], 0.0), lr=0.5)
    seen = []
    sgd.register_step_pre_hook(lambda optimizer, args, kwargs: seen.append(
        [(group["lr"], group["weight_decay"]) for group in optimizer.param_groups]))
    loop = PretrainLoop(model, base.loader, base.mask_sampler, base.schedule, 1, optimizer=sgd)
    before = [p.detach().clone() for p in model.encoder.parameters()]
    _run_seeded(loop)
    assert loop.optimizer is sgd and loop.step == 3
    expected = []
    for step in range(3):
        lr, weight_decay, _ = base.schedule(step)
        expected.append([(lr, weight_decay), (lr, 0.0)])
    assert seen == expected
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters()))


def test_each_step_trains_with_the_schedules_values_at_that_step():
    """Step ``k`` runs with the schedule's learning rate and weight decay at ``k`` (in every
    group; the group without weight decay keeps 0) and its EMA momentum at ``k``: the loop
    neither keeps the optimizer's initial values nor reads the schedule one step off."""
    loop = _loop(n_epochs=2)
    seen = []
    step_of = loop.train_step

    def recording_step(x, momentum):
        decayed, plain = loop.optimizer.param_groups
        seen.append((decayed["lr"], plain["lr"], decayed["weight_decay"],
                     plain["weight_decay"], momentum))
        return step_of(x, momentum)

    loop.train_step = recording_step
    _run_seeded(loop)
    expected = []
    for step in range(loop.step):
        lr, weight_decay, momentum = loop.schedule(step)
        expected.append((lr, lr, weight_decay, 0.0, momentum))
    assert loop.step == 6 and seen == expected
    # the values change from step to step (the test can fail)
    assert len({record[0] for record in seen}) == 6 and len({record[2] for record in seen}) == 6


def test_the_default_optimizer_starts_from_the_schedules_values_at_step_0():
    """The AdamW a loop builds holds the schedule's learning rate and weight decay at step 0
    before any step (what a step run by hand, ``loop.train_step``, takes): not those of a later
    step, nor make_optimizer's default weight decay."""
    base = _loop(n_epochs=2)
    schedule = PretrainSchedule(total_steps=6, warmup_steps=2, start_lr=1e-4, lr=1e-2,
                                weight_decay=0.1, final_weight_decay=0.3)
    loop = PretrainLoop(base.model, base.loader, base.mask_sampler, schedule, 2)
    lr, weight_decay, _ = schedule(0)
    later = schedule(1)
    assert later[0] != lr and later[1] != weight_decay and weight_decay != 0.04
    assert [(group["lr"], group["weight_decay"]) for group in loop.optimizer.param_groups] == [
        (lr, weight_decay), (lr, 0.0)]


@pytest.mark.parametrize("sampler", ["shuffle", "sequential"])
def test_a_state_saved_inside_an_epoch_resumes_with_a_shorter_loader(sampler):
    """Two steps into epoch 1 (of 3 steps), resumed with a loader of one batch per epoch: the
    epoch ends there, its loss the mean of its two steps (it was divided by the new loader's
    length, doubling it), and a sampler that cannot resume a pass no longer fails with a bare
    StopIteration while skipping the steps done."""
    from torch.utils.data import SequentialSampler

    def make_sampler(n_windows):
        if sampler == "shuffle":
            return ShuffleSampler(n_windows, seed=1)
        return SequentialSampler(range(n_windows))

    stopped = _loop(n_epochs=3, sampler=make_sampler(N_WINDOWS), callbacks=[_KillAt(5)])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        with pytest.raises(KeyboardInterrupt):
            stopped.run()
        state = stopped.state_dict()
    assert (state["epoch"], state["step_in_epoch"]) == (1, 2)
    resumed = _loop(n_epochs=3)
    resumed.loader = window_loader(WindowDataset(_windows()[:8]), BATCH, make_sampler(8))
    assert resumed.steps_per_epoch == 1
    resumed.load_state_dict(state)
    with torch.random.fork_rng(devices=[]):
        resumed.run()
    assert (resumed.epoch, resumed.step) == (3, 6)
    assert resumed.history[1]["loss"] == pytest.approx(state["epoch_loss"] / 2)


def test_train_step_refuses_a_bad_momentum_before_updating_the_weights():
    # the EMA refused it only after the optimizer step had changed the encoder
    from brainjepa_sk.train import train_step

    loop = _loop(n_epochs=1)
    before = {k: v.clone() for k, v in loop.model.state_dict().items()}
    x = torch.randn(BATCH, N_FRAMES, N_REGIONS)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\], got 1.5"):
        train_step(loop.model, loop.optimizer, x, loop.mask_sampler.sample(BATCH), 1.5)
    for key, value in loop.model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_eval_step_gives_the_loss_train_step_minimises_and_changes_nothing():
    from brainjepa_sk.train import eval_step, train_step

    loop = _loop(n_epochs=1, drop_path_rate=0.0)
    before = {k: v.clone() for k, v in loop.model.state_dict().items()}
    x = torch.randn(BATCH, N_FRAMES, N_REGIONS)
    masks = loop.mask_sampler.sample(BATCH)
    loss = eval_step(loop.model, x, masks)
    assert loss.dtype == torch.float32 and loss.ndim == 0 and not loss.requires_grad
    assert all(p.grad is None for p in loop.model.parameters())
    for key, value in loop.model.state_dict().items():
        assert torch.equal(value, before[key]), key
    # train_step returns the loss of the batch before its update
    assert loss.item() == pytest.approx(
        train_step(loop.model, loop.optimizer, x, masks, 0.99).item(), rel=1e-6)


def test_a_loader_of_tuples_is_refused_naming_what_it_must_yield():
    # a TensorDataset's loader yields [x]: it failed with "'list' object has no attribute 'to'"
    loop = _loop(n_epochs=1)
    dataset = torch.utils.data.TensorDataset(torch.randn(N_WINDOWS, N_FRAMES, N_REGIONS))
    loop.loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, drop_last=True)
    before = {k: v.clone() for k, v in loop.model.state_dict().items()}
    with pytest.raises(TypeError, match=r"must yield \(batch, n_frames, n_regions\) tensors, "
                                        "got a list"):
        loop.run()
    assert (loop.step, loop.epoch) == (0, 0)
    assert all(torch.equal(v, before[k]) for k, v in loop.model.state_dict().items())


def test_window_loader_of_no_window_names_the_empty_dataset():
    # it failed with torch's "batch_size should be a positive integer value, but got 0"
    empty = WindowDataset(np.zeros((0, N_FRAMES, N_REGIONS), dtype=np.float32))
    with pytest.raises(ValueError, match="sampler gives no window"):
        window_loader(empty, BATCH, ShuffleSampler(0, seed=0))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        window_loader(WindowDataset(_windows()), 0, ShuffleSampler(N_WINDOWS, seed=0))


def test_window_loader_of_fewer_windows_than_a_global_batch_does_not_blame_an_empty_dataset():
    # it asked "is the dataset empty?" of 10 windows shared by 2 processes in batches of 20
    sampler = ShuffleSampler(N_WINDOWS, seed=0, num_replicas=2, batch_size=2 * N_WINDOWS)
    with pytest.raises(ValueError, match=rf"its {N_WINDOWS} windows make no whole global "
                                         rf"batch of {2 * N_WINDOWS} \(shared by 2 processes\)"):
        window_loader(WindowDataset(_windows()), N_WINDOWS, sampler)


@pytest.mark.parametrize("batch_size", [2.5, "4", True])
def test_window_loader_refuses_a_batch_size_that_is_not_an_int(batch_size):
    # int() loaded batches of 2 for 2.5 and of 4 for "4"
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        window_loader(WindowDataset(_windows()), batch_size, ShuffleSampler(N_WINDOWS, seed=0))


@pytest.mark.parametrize(("setting", "message"), [
    (dict(n_samples=10.5), "n_samples must be an int >= 0"),
    (dict(seed=1.5), "seed must be an int"),
    (dict(seed="0"), "seed must be an int"),
    (dict(num_replicas=2.0, batch_size=4), "num_replicas must be an int >= 1"),
    (dict(num_replicas=2, rank=True, batch_size=4), "rank must be an int >= 0"),
    (dict(num_replicas=2, batch_size=4.0), "batch_size must be an int >= 1"),
])
def test_the_shuffle_sampler_refuses_counts_and_seeds_that_are_not_ints(setting, message):
    # int() took 10.5 samples as 10 and a seed of 1.5 as 1 (the same order as seed 1)
    with pytest.raises(ValueError, match=message):
        ShuffleSampler(**{"n_samples": 10, "seed": 0, **setting})
    assert list(ShuffleSampler(np.int64(10), np.int64(1))) == list(ShuffleSampler(10, 1))


def test_a_checkpoint_path_starting_with_a_tilde_is_in_the_home_folder(tmp_path, monkeypatch):
    home, elsewhere = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)
    loop = _loop(n_epochs=1, callbacks=[Checkpoint("~/state.pt", key="k")])
    loop.run()
    assert (home / "state.pt").is_file() and list(elsewhere.iterdir()) == []
    resumed = _loop(n_epochs=1)
    assert Checkpoint("~/state.pt", key="k").restore(resumed) and resumed.step == loop.step


def test_a_checkpoint_path_linked_to_a_folder_is_refused_before_the_run(tmp_path):
    """A link to a folder is refused as a folder is, when the run is restored: its first save
    (which keeps the link) would fail only after an epoch trained."""
    folder = tmp_path / "runs"
    folder.mkdir()
    link = tmp_path / "last.pt"
    link.symlink_to(folder, target_is_directory=True)
    checkpoint = Checkpoint(link, key="run")
    with pytest.raises(ValueError, match=r"last\.pt is a folder \(a link to the folder "
                                         r".*runs\), where the run's state is to be saved"):
        checkpoint.restore(_loop(n_epochs=1))
    assert link.is_symlink() and folder.is_dir() and list(folder.iterdir()) == []


@pytest.mark.parametrize("other", [
    lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),  # failed at its first step
    lambda params: torch.optim.Adam(params),  # would have silently become an AdamW
], ids=["SGD", "Adam"])
def test_a_state_of_another_kind_of_optimizer_is_refused_before_any_change(other):
    """An AdamW's state, of the same parameter groups, loaded into a loop with an SGD or an
    Adam: torch copies the groups' settings and moments as they are."""
    saved = _loop(n_epochs=1)
    saved.run()
    loop = _loop()
    loop.optimizer = other(parameter_groups([loop.model.encoder, loop.model.predictor], 0.04))
    before = {name: value.clone() for name, value in loop.model.state_dict().items()}
    with pytest.raises(ValueError, match=r"optimizer is a torch\.optim\.adamw\.AdamW, this "
                                         r"loop's a torch\.optim\.(sgd\.SGD|adam\.Adam)"):
        loop.load_state_dict(saved.state_dict())
    for name, value in loop.model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert loop.step == 0
    state = saved.state_dict()
    del state["optimizer_class"]  # a state saved before the class was recorded still loads
    _loop().load_state_dict(state)


def test_accumulation_steps_that_do_not_divide_a_kept_last_batch_are_refused_when_built():
    """A loader keeping its incomplete last batch (20 windows in batches of 6: a last one of 2)
    had trained the epoch's other steps, then failed at that batch, at every run."""
    model = _loop().model
    masks = SpatiotemporalMaskSampler(N_REGIONS, N_FRAMES // PATCH, seed=2)
    windows = torch.as_tensor(_windows())
    schedule = PretrainSchedule(total_steps=8, warmup_steps=0)
    loader = torch.utils.data.DataLoader(windows, batch_size=BATCH)  # drop_last=False
    with pytest.raises(ValueError, match=r"accumulation_steps=3 does not divide the loader's "
                                         r"last batch \(2 of 20 windows in batches of 6\)"):
        PretrainLoop(model, loader, masks, schedule, 1, accumulation_steps=3)
    # a last batch it divides, or one that is dropped, is run
    PretrainLoop(model, loader, masks, schedule, 1, accumulation_steps=2).run()
    dropping = torch.utils.data.DataLoader(windows, batch_size=BATCH, drop_last=True)
    PretrainLoop(model, dropping, masks, schedule, 1, accumulation_steps=3).run()


def test_under_ddp_processes_given_other_subjects_all_refuse_them(ddp_scenarios):
    """The processes share out one corpus: one given other files (a glob that matched other
    files on one node) trained on a mixture without a word, and with another number of
    windows or subjects the processes waited for each other forever."""
    results = torch.load(ddp_scenarios("other-subjects") / "other.pt", weights_only=False)
    for result in results:
        assert result["fit"] == (
            "under torchrun every process must call fit with the same X (the processes share "
            "out one corpus), but process(es) [1] got other subjects than process 0 (8 "
            "subjects in each, with other values); give each process all the subjects, not a "
            "shard, and check that a glob matches the same files on every node")
        assert "call transform with the same X" in result["transform"]
        assert "(8 subjects in process 0, 7 subjects in process 1)" in result["transform"]
    assert np.array_equal(results[0]["embedded"], results[1]["embedded"])
    assert results[0]["embedded"].shape == (8, 16)


def test_under_ddp_transform_warns_of_the_scale_of_the_first_subjects_once(ddp_scenarios):
    """transform decides its scale warning from the first subjects as the processes scale
    them: where they are shared out among the processes (5 subjects, 3 in process 0's
    chunk), process 0 (the one that warns) gathers them. One warning, process 0's, the one a
    process on its own gives; the embeddings as one process gives them."""
    import _ddp_worker

    results = torch.load(ddp_scenarios("scale-check") / "scale.pt", weights_only=False)
    embedder, X = _ddp_worker.scale_check_embedder()
    for n_subjects in (5, 40):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            expected = embedder.transform(X[:n_subjects] * 1e4 + 1e4)
        messages = [str(w.message) for w in caught
                    if "on another scale than the data" in str(w.message)]
        assert len(messages) == 1
        assert results[0][n_subjects][0] == messages
        assert results[1][n_subjects][0] == []
        for rank in (0, 1):
            np.testing.assert_array_equal(results[rank][n_subjects][1], expected)


def test_under_ddp_the_processes_share_out_score_and_all_return_the_score_of_one(
        ddp_scenarios, monkeypatch):
    """Each process scores its share of the chunks of subjects (a chunk's masks come from its
    own seed); every process returns the score one process gives, to the last bit."""
    import pickle

    from brainjepa_sk import pretrain

    results = torch.load(ddp_scenarios("score") / "score.pt", weights_only=False)
    model = pickle.loads(results[0]["model"])
    # 2 windows a subject: process 0 ran subjects 0, 1 and 4, process 1 subjects 2 and 3
    assert [result["n_windows"] for result in results] == [6, 4]
    monkeypatch.setattr(pretrain, "_SCORE_SUBJECTS_PER_CHUNK", 2)
    alone = model.score(results[0]["X"])
    assert results[0]["score"] == results[1]["score"] == alone
