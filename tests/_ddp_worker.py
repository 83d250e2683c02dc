"""Tiny runs for the processes of a CPU (gloo) process group; used by the DDP tests.

Importable by the processes that ``torch.multiprocessing.spawn`` starts. Starting a process
costs seconds (it imports torch), so the tests run their scenarios one after another in one
pair of processes (:func:`scenarios_worker`), each scenario in a process group of its own.
"""

import contextlib
import datetime
import multiprocessing
import os
import pathlib
import signal
import sys
import traceback

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from brainjepa_sk.nn import BrainJEPA
from brainjepa_sk.nn.masking import SpatiotemporalMaskSampler
from brainjepa_sk.train import (
    Callback,
    Checkpoint,
    PretrainLoop,
    PretrainSchedule,
    TrainingInterrupted,
    WindowDataset,
    window_loader,
)

N_REGIONS, N_FRAMES, PATCH, N_WINDOWS = 12, 16, 4, 24


@contextlib.contextmanager
def _joined(rank, world_size, init_file, **options):
    """Join a gloo group of ``world_size`` processes for the body; destroy it after."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world_size, **options)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _end_without_finalization():
    """End a spawned process with ``os._exit(0)``, without the interpreter's finalization.

    Once DDP has used a group, its C++ worker threads outlive ``destroy_process_group`` (the
    group is still referenced), and one may still hold the last reference to the tensors of
    the last collective: if it drops them while the interpreter is finalizing, Python 3.11
    ends that thread with ``pthread_exit`` from a C++ destructor and the process aborts
    ("terminate called without an active exception"; pytorch/pytorch#38228,
    python/cpython#87135). Every result is saved before, so nothing is lost.
    """
    if multiprocessing.parent_process() is not None:  # never end the test runner itself
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


@contextlib.contextmanager
def gloo_group(rank, world_size, init_file, **options):
    """Join a gloo group of ``world_size`` processes for the body; destroy it after.

    When the body succeeds, the spawned process then ends without the interpreter's
    finalization (:func:`_end_without_finalization`). An error in the body propagates as
    usual (``mp.spawn`` reports it).
    """
    with _joined(rank, world_size, init_file, **options):
        yield
    _end_without_finalization()


class StepLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_step_end(self, loop, loss):
        self.losses.append(float(loss))


def run(global_batch, n_epochs=3, callbacks=(), stop_agreement_every=None, restore=None,
        accumulation_steps=1):
    """Pretrain on fixed windows with this process's share of each global batch
    (continuing from the state file ``restore`` when it exists)."""
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BrainJEPA(torch.randn(N_REGIONS, 3), patch_size=PATCH,
                          n_patches=N_FRAMES // PATCH, embed_dim=16, depth=2, num_heads=2,
                          predictor_embed_dim=8, predictor_depth=1)
    windows = torch.randn(N_WINDOWS, N_FRAMES, N_REGIONS,
                          generator=torch.Generator().manual_seed(1)).numpy()
    sampler = DistributedSampler(range(N_WINDOWS), num_replicas=world_size, rank=rank, seed=5)
    loader = window_loader(WindowDataset(windows), global_batch // world_size, sampler)
    masks = SpatiotemporalMaskSampler(N_REGIONS, N_FRAMES // PATCH, seed=2)
    schedule = PretrainSchedule.from_epochs(n_epochs, len(loader), lr=1e-3)
    steps = StepLosses()
    loop = PretrainLoop(model, loader, masks, schedule, n_epochs,
                        callbacks=[steps, *callbacks], accumulation_steps=accumulation_steps)
    if stop_agreement_every is not None:
        loop.stop_agreement_every = stop_agreement_every
    if restore is not None and os.path.exists(restore):
        Checkpoint(restore, key="ddp").restore(loop)
    loop.started_at_ = loop.step  # where it resumed
    if world_size > 1:  # count the gradient all-reduces (one bucket: the model is tiny)
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        def counting_allreduce(state, bucket):
            loop.allreduces_ = getattr(loop, "allreduces_", 0) + 1
            return default_hooks.allreduce_hook(state, bucket)

        loop._forward.register_comm_hook(None, counting_allreduce)
    try:
        loop.run()
    except (TrainingInterrupted, Killed) as error:
        loop.raised_ = error
    return loop, steps.losses


class Killed(Exception):
    """Stands for SIGKILL: the process ends where it is, without saving anything."""


class KillAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            raise Killed


def _save_from_every_process(obj, world_size, out_file):
    """Gather ``obj`` from every process; process 0 saves the list (by rank) to ``out_file``."""
    gathered = [None] * world_size
    dist.all_gather_object(gathered, obj)
    if dist.get_rank() == 0:
        torch.save(gathered, out_file)


def batch_scenario(rank, world_size, folder, accumulation_steps):
    """A run of global batch 8 (in ``accumulation_steps`` micro-batches a process): every
    process's step losses and weights, rank 0's history and count of gradient all-reduces."""
    loop, losses = run(global_batch=8, accumulation_steps=accumulation_steps)
    gathered = [None] * world_size
    dist.all_gather_object(gathered, losses)
    states = [None] * world_size
    dist.all_gather_object(states, {k: v.clone() for k, v in loop.model.state_dict().items()})
    if rank == 0:
        torch.save({"losses": gathered, "states": states, "history": loop.history,
                    "steps": loop.step, "allreduces": loop.allreduces_}, folder / "ddp.pt")


class SignalAt(Callback):
    """Sends this process a signal at the end of one step: SIGTERM, as a scheduler would, or
    SIGINT, as Ctrl-C (or ``kill -INT``) would."""

    def __init__(self, step, signum=signal.SIGTERM):
        self.step, self.signum = step, signum

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            os.kill(os.getpid(), self.signum)


class ExitAt(Callback):
    """Ends this process at the end of one step with ``os._exit(code)``: no exception, no
    cleanup, as a crash (or a library calling ``exit``) ends it."""

    def __init__(self, step, code):
        self.step, self.code = step, code

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(self.code)


def dying_worker(rank, world_size, init_file, code):
    """Rank 1 ends after step 2 with exit code ``code``; rank 0 trains on, into the next
    step's gradient all-reduce."""
    with gloo_group(rank, world_size, init_file):
        torch.set_num_threads(1)
        run(global_batch=8, callbacks=[ExitAt(2, code)] if rank == 1 else [])


def sigterm_scenario(rank, world_size, folder):
    """Only rank 1 gets SIGTERM, after step 1 (inside the first epoch): both processes must
    stop after the same step (``steps.pt``); rank 0 saves the run (``state.pt``)."""
    callbacks = [Checkpoint(folder / "state.pt", key="ddp")] if rank == 0 else [SignalAt(1)]
    loop, _ = run(global_batch=8, callbacks=callbacks, stop_agreement_every=2)
    steps = [None] * world_size
    dist.all_gather_object(steps, loop.step)
    if rank == 0:
        torch.save({"steps": steps}, folder / "steps.pt")


class StopTrainingAt(Callback):
    """Asks the loop to stop after one step (``stop_training``)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            loop.stop_training = True


def stop_training_scenario(rank, world_size, folder):
    """Only rank 1's callback asks to stop, after step 1; agreeing every 2 steps, both
    processes stop after step 2."""
    callbacks = [StopTrainingAt(1)] if rank == 1 else []
    loop, _ = run(global_batch=8, callbacks=callbacks, stop_agreement_every=2)
    _save_from_every_process((loop.step, loop.step_in_epoch, loop.stop_training),
                             world_size, folder / "steps.pt")


def _resume_run(rank, world_size, out_file, state_file, kill_at):
    """Save every step (rank 0), die after step ``kill_at`` (when given), or resume and finish."""
    callbacks = [Checkpoint(state_file, key="ddp", every_steps=1)] if rank == 0 else []
    if kill_at is not None:
        callbacks.append(KillAt(kill_at))
    loop, _ = run(global_batch=8, callbacks=callbacks, restore=state_file)
    states = [None] * world_size  # gathered by all: process 0's save is written after
    dist.all_gather_object(states, {k: v.clone() for k, v in loop.model.state_dict().items()})
    if rank == 0:
        torch.save({"states": states, "history": loop.history, "step": loop.step,
                    "started_at": loop.started_at_}, out_file)


def resume_scenario(rank, world_size, folder):
    """A run never killed (``straight.pt``), one killed after step 4 (``killed.pt``) and its
    resume from rank 0's save (``resumed.pt``), one after the other."""
    _resume_run(rank, world_size, folder / "straight.pt", folder / "straight-state.pt", None)
    _resume_run(rank, world_size, folder / "killed.pt", folder / "state.pt", 4)
    _resume_run(rank, world_size, folder / "resumed.pt", folder / "state.pt", None)


def sigint_scenario(rank, world_size, folder):
    """Only rank 1 gets SIGINT, after step 3 (the first epoch's last, so the processes agree
    before the next epoch's first step): the step each process stopped after and the error
    it raised (``stopped.pt``); rank 0 saves the run (``state.pt``), which both processes then
    resume and finish (``resumed.pt``, as ``resume_scenario`` saves its runs)."""
    # Python's own handler, as in a terminal (a process started in the background, as CI may
    # start the tests, and the processes it spawns ignore SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        callbacks = ([Checkpoint(folder / "state.pt", key="ddp")] if rank == 0
                     else [SignalAt(3, signal.SIGINT)])
        loop, _ = run(global_batch=8, callbacks=callbacks, stop_agreement_every=2)
        raised = getattr(loop, "raised_", None)
        _save_from_every_process((loop.step, None if raised is None else str(raised)),
                                 world_size, folder / "stopped.pt")
    finally:
        signal.signal(signal.SIGINT, previous)
    _resume_run(rank, world_size, folder / "resumed.pt", folder / "state.pt", None)


class _Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("cannot pickle this exception")


class _NoUnpickle(Exception):
    """Pickles, but does not unpickle (``__init__`` takes two arguments)."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")


def main_process_scenario(rank, world_size, folder):
    """``on_main_process``: process 0 computes, every process gets its result or its error.

    Its group has a short timeout (see ``SCENARIOS``): process 0's slow work outlasts it."""
    import time

    from brainjepa_sk.train.distributed import all_gather_objects, on_main_process

    calls, results = [], {}

    def compute(offset):
        calls.append(rank)
        return {"rank": rank + offset, "array": torch.arange(3) * (rank + 1)}

    results["value"] = on_main_process(compute, 10)

    def fail(error):
        raise error

    for name, error in (("error", ValueError("the file x.npy is damaged")),
                        ("unpicklable", _Unpicklable("no pickle")),
                        ("no_unpickle", _NoUnpickle("sub-01.npy", "damaged")),
                        ("interrupt", KeyboardInterrupt("stop"))):
        try:
            on_main_process(fail, error)
        except BaseException as raised:
            results[name] = f"{type(raised).__name__}: {raised}"
    results["slow"] = on_main_process(lambda: time.sleep(5) or "done")
    try:  # a result that cannot be sent (a lambda does not pickle)
        on_main_process(lambda: (lambda: None))
    except BaseException as raised:
        results["unsendable"] = type(raised).__name__
    results["after"] = on_main_process(lambda: rank)  # the group still works
    results["gathered"] = all_gather_objects(rank for _ in range(rank + 1))  # a generator
    results["calls"] = calls
    _save_from_every_process(results, world_size, folder / "main.pt")


def ctrl_c_while_waiting_scenario(rank, world_size, folder):
    """``on_main_process``: process 0 works for 20 s; process 1, waiting for it, gets a SIGINT
    (``kill -INT`` of that process alone) half a second after the work began. What each
    raised, after how many seconds, and a later call's result: ``stopped.pt``."""
    import threading
    import time

    from brainjepa_sk.train.distributed import on_main_process

    began = folder / "work-began"

    def work():
        began.touch()
        time.sleep(20)
        return "done"

    def interrupt_once_waiting():
        while not began.exists():
            time.sleep(0.05)
        time.sleep(1)  # process 1 waits for the result by now
        os.kill(os.getpid(), signal.SIGINT)

    # Python's own handler, as in a terminal (see sigint_scenario)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if rank == 1:
            threading.Thread(target=interrupt_once_waiting, daemon=True).start()
        start = time.monotonic()
        try:
            raised = f"returned {on_main_process(work)}"
        except KeyboardInterrupt as error:
            raised = f"KeyboardInterrupt: {error}"
        seconds = time.monotonic() - start
    finally:
        signal.signal(signal.SIGINT, previous)
    after = on_main_process(lambda: rank)  # the group still works
    _save_from_every_process((raised, seconds, after), world_size, folder / "stopped.pt")


def estimator_scenario(rank, world_size, folder, random_state):
    """``BrainJEPAPretrainer.fit`` in each process; records the windows each one trained on
    and the warnings it gave (a warm-up of 2 epochs in a run of 1 warns)."""
    import warnings

    import numpy as np

    from brainjepa_sk import BrainJEPAPretrainer
    from brainjepa_sk.train import ShuffleSampler

    seen, real_iter = [], ShuffleSampler.__iter__

    def recording_iter(sampler):
        for index in real_iter(sampler):
            seen.append(index)
            yield index

    ShuffleSampler.__iter__ = recording_iter
    try:
        X = np.random.default_rng(0).standard_normal((9, 48, N_REGIONS))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            BrainJEPAPretrainer(
                gradients=np.random.default_rng(1).standard_normal((N_REGIONS, 3)),
                model_size=dict(embed_dim=16, depth=1, num_heads=2), patch_size=PATCH,
                n_frames=N_FRAMES * 2, predictor_depth=1, n_epochs=1, warmup_epochs=2,
                batch_size=4, device="cpu", verbose=0, random_state=random_state).fit(X)
    finally:  # the next scenarios run in this process
        ShuffleSampler.__iter__ = real_iter
    _save_from_every_process({"seen": seen, "warnings": [str(w.message) for w in caught]},
                             world_size, folder / "seen.pt")


def other_subjects_scenario(rank, world_size, folder):
    """``fit`` and ``transform`` with other subjects in process 1 (one subject's values
    changed; one subject fewer), then with the same: the errors each process raised."""
    import numpy as np

    from brainjepa_sk import BrainJEPAPretrainer

    X = np.random.default_rng(0).standard_normal((8, N_FRAMES, N_REGIONS))
    other = X.copy()
    other[3, 0, 0] += rank  # process 1's subject 3 differs in one value
    model = BrainJEPAPretrainer(
        gradients=np.random.default_rng(1).standard_normal((N_REGIONS, 3)),
        model_size=dict(embed_dim=16, depth=1, num_heads=2), patch_size=PATCH,
        n_frames=N_FRAMES, predictor_depth=1, n_epochs=1, batch_size=4, device="cpu",
        verbose=0, random_state=0)
    results = {}
    for name, call in (("fit", lambda: model.fit(other)),
                       ("transform", lambda: model.transform(X[: 8 - rank]))):
        try:
            call()
            results[name] = None
        except ValueError as error:
            results[name] = str(error)
        if name == "fit":  # the group still works: a fit with the same X everywhere
            model.fit(X)
    results["embedded"] = model.transform(X)
    _save_from_every_process(results, world_size, folder / "other.pt")


def scale_check_embedder():
    """The embedder of :func:`scale_check_scenario` (robust statistics learned by its fit) and
    its 40 subjects, also fitted in one process by the test that compares."""
    import numpy as np
    from _estimators import N_REGIONS as REGIONS
    from _estimators import tiny_module

    from brainjepa_sk import BrainJEPAEmbedder

    X = np.random.default_rng(0).standard_normal((40, 16, REGIONS))
    return BrainJEPAEmbedder(tiny_module(), normalization="robust", device="cpu").fit(X), X


def scale_check_scenario(rank, world_size, folder):
    """An embedder's ``transform`` of series far above the scale of its robust statistics:
    of 5 subjects (chunks of 3, the first subjects shared out among the processes) and of 40
    (chunks of 20, the first 16 in process 0's first chunk). Each process's scale warnings
    and embeddings, by the number of subjects: ``scale.pt``."""
    import warnings

    embedder, X = scale_check_embedder()
    results = {}
    for n_subjects in (5, 40):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            embedded = embedder.transform(X[:n_subjects] * 1e4 + 1e4)
        results[n_subjects] = ([str(w.message) for w in caught
                                if "on another scale than the data" in str(w.message)],
                               embedded)
    _save_from_every_process(results, world_size, folder / "scale.pt")


def score_scenario(rank, world_size, folder):
    """``BrainJEPAPretrainer.score`` of a model fitted in the group, on 5 subjects in chunks
    of 2 (process 0 scores the chunks of subjects 0-1 and 4, process 1 that of 2-3): each
    process's score and the windows it ran, and the estimator as process 0 pickled it:
    ``score.pt``."""
    import pickle

    import numpy as np

    from brainjepa_sk import BrainJEPAPretrainer, pretrain

    X = np.random.default_rng(0).standard_normal((5, 48, N_REGIONS))
    model = BrainJEPAPretrainer(
        gradients=np.random.default_rng(1).standard_normal((N_REGIONS, 3)),
        model_size=dict(embed_dim=16, depth=1, num_heads=2), patch_size=PATCH,
        n_frames=N_FRAMES * 2, predictor_depth=1, n_epochs=2, batch_size=4, device="cpu",
        verbose=0, random_state=0).fit(X)
    n_windows, eval_step = [], pretrain.eval_step

    def counting(module, x, masks, autocast_dtype=None):
        n_windows.append(len(x))
        return eval_step(module, x, masks, autocast_dtype)

    chunk_size, pretrain._SCORE_SUBJECTS_PER_CHUNK = pretrain._SCORE_SUBJECTS_PER_CHUNK, 2
    pretrain.eval_step = counting
    try:
        score = model.score(X)
    finally:  # the next scenarios run in this process
        pretrain._SCORE_SUBJECTS_PER_CHUNK, pretrain.eval_step = chunk_size, eval_step
    _save_from_every_process({"score": score, "n_windows": sum(n_windows),
                              "model": pickle.dumps(model) if rank == 0 else None, "X": X},
                             world_size, folder / "score.pt")


class _StopAndSigtermInProcess1(Callback):
    """Agrees on stops at every step; in process 1, asks the loop to stop (``stop_training``)
    after step 1 and sends itself a SIGTERM there, as a scheduler would."""

    def on_train_begin(self, loop):
        loop.stop_agreement_every = 1

    def on_step_end(self, loop, loss):
        if loop.rank == 1 and loop.step == 1:
            loop.stop_training = True
            os.kill(os.getpid(), signal.SIGTERM)


def stopped_as_sigterm_came_scenario(rank, world_size, folder):
    """``BrainJEPAPretrainer.fit`` with ``checkpoint_dir`` whose callback stops the run in
    process 1 alone at the step a SIGTERM reaches it: the error each process raised and its
    loop's ``stop_training``: ``raised.pt``, and the run saved in ``runs``."""
    import numpy as np

    from brainjepa_sk import BrainJEPAPretrainer

    X = np.random.default_rng(0).standard_normal((8, N_FRAMES, N_REGIONS))
    model = BrainJEPAPretrainer(
        gradients=np.random.default_rng(1).standard_normal((N_REGIONS, 3)),
        model_size=dict(embed_dim=16, depth=1, num_heads=2), patch_size=PATCH,
        n_frames=N_FRAMES, predictor_depth=1, n_epochs=2, batch_size=4, device="cpu",
        verbose=0, random_state=0, checkpoint_dir=folder / "runs",
        callbacks=[_StopAndSigtermInProcess1()])
    try:
        model.fit(X)
        raised = None
    except TrainingInterrupted as error:
        raised = str(error)
    _save_from_every_process(raised, world_size, folder / "raised.pt")


#: How long a scenario's collectives wait for the other process: processes stuck in a
#: collective (a regression) raise instead of waiting forever.
SCENARIO_TIMEOUT = datetime.timedelta(seconds=60)

#: The scenarios :func:`scenarios_worker` runs, by name: the function, its arguments after
#: ``(rank, world_size, folder)``, and the options of its process group.
SCENARIOS = {
    "batch-1": (batch_scenario, (1,), {}),
    "batch-2": (batch_scenario, (2,), {}),
    "sigterm": (sigterm_scenario, (), {}),
    "sigint": (sigint_scenario, (), {}),
    "stop-training": (stop_training_scenario, (), {}),
    "stopped-as-sigterm-came": (stopped_as_sigterm_came_scenario, (), {}),
    "resume": (resume_scenario, (), {}),
    "unseeded-estimator": (estimator_scenario, (None,), {}),
    # a short timeout for the group's own collectives: process 0's slow work outlasts it
    "main-process": (main_process_scenario, (), {"timeout": datetime.timedelta(seconds=3)}),
    "ctrl-c-while-waiting": (ctrl_c_while_waiting_scenario, (), {}),
    "other-subjects": (other_subjects_scenario, (), {}),
    "scale-check": (scale_check_scenario, (), {}),
    "score": (score_scenario, (), {}),
}


def scenarios_worker(rank, world_size, folder, names):
    """Run the scenarios ``names`` one after another in this process.

    Each runs in a gloo group of its own with a folder of its own, ``folder/<name>``, for its
    files. The scenario running is written to ``folder/running-<rank>.txt``; one that raises
    writes its traceback to ``<name>/error-<rank>.txt`` and the error ends the process
    (``mp.spawn`` then ends the other: the caller starts new processes for the scenarios
    left). After the last one the process ends without the interpreter's finalization
    (:func:`_end_without_finalization`).
    """
    folder = pathlib.Path(folder)
    torch.set_num_threads(1)
    for name in names:
        function, args, options = SCENARIOS[name]
        own = folder / name
        own.mkdir(exist_ok=True)
        (folder / f"running-{rank}.txt").write_text(name)
        try:
            with _joined(rank, world_size, own / "init",
                         **{"timeout": SCENARIO_TIMEOUT, **options}):
                function(rank, world_size, own, *args)
        except BaseException:  # TrainingInterrupted and the like too
            (own / f"error-{rank}.txt").write_text(traceback.format_exc())
            raise
    (folder / f"running-{rank}.txt").write_text("")
    _end_without_finalization()
