"""Processes killed for real. A fit SIGKILLed (in a child process) at any step or in the middle of
writing a checkpoint resumes, in a new process, to the weights of a fit never killed, bitwise; a
SIGTERM sent to the whole process group, loader workers included, saves and stops cleanly."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _estimators import tiny_module
from skorch.callbacks import Checkpoint, LoadInitState

from brainjepa_sk import BrainJEPAClassifier

# Each mode runs in its own process: a SIGKILL leaves no chance to clean up, so the test sees only
# what a real kill leaves on disk. One torch thread everywhere, so that the processes compute alike.
_SCRIPT = """
import io
import os
import signal
import sys

import numpy as np
import torch

from brainjepa_sk import BrainJEPAPretrainer
from brainjepa_sk.train import Callback

mode, folder, out = sys.argv[1], sys.argv[2], sys.argv[3]
X = np.load(sys.argv[4])


class KillAfterStep(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, loop, loss):
        if loop.step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class CountSteps(Callback):
    steps = 0

    def on_step_end(self, loop, loss):
        self.steps += 1


callbacks = [CountSteps()]
if mode.startswith("after-step-"):
    callbacks = [*callbacks, KillAfterStep(int(mode.rsplit("-", 1)[1]))]
elif mode.startswith("in-save-"):
    # the write of step n's checkpoint stops half-way through its bytes: a truncated temporary
    doomed, real_save = int(mode.rsplit("-", 1)[1]), torch.save

    def save(obj, file, *args, **kwargs):
        loop = obj.get("loop", {}) if isinstance(obj, dict) else {}
        if loop.get("step") != doomed or not hasattr(file, "write"):
            return real_save(obj, file, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = save

model = BrainJEPAPretrainer(
    gradients=np.random.default_rng(1).standard_normal((X.shape[2], 4)),
    model_size=dict(embed_dim=32, depth=2, num_heads=2), patch_size=4, n_frames=32,
    predictor_depth=1, n_epochs=3, batch_size=8, lr=2e-3, drop_path_rate=0.2, device="cpu",
    verbose=0, random_state=0, checkpoint_dir=folder, checkpoint_every=1, callbacks=callbacks,
).fit(X)
torch.save({"history": model.history_, "state": model.model_.state_dict(),
            "steps_run": model.callbacks_[0].steps}, out)
"""


def _start(tmp_path, mode, folder):
    """Start the fit of ``mode`` in a process of its own."""
    out = tmp_path / f"{mode}.pt"
    process = subprocess.Popen(
        [sys.executable, str(tmp_path / "fit.py"), mode, str(folder), str(out),
         str(tmp_path / "X.npy")],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    return process, out


def _finish(started, expect_killed=False):
    """Wait for a fit started by :func:`_start`; its results (None when killed)."""
    process, out = started
    try:
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:  # past the timeout
            process.kill()
            process.communicate()
    if expect_killed:
        assert process.returncode == -signal.SIGKILL, stderr
        assert not out.exists()
        return None
    assert process.returncode == 0, stderr
    return torch.load(out, weights_only=True)


def _fit(tmp_path, mode, folder, expect_killed=False):
    return _finish(_start(tmp_path, mode, folder), expect_killed)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The fit never killed, in its own process (with its own checkpoint folder); a function
    that returns its results. The process runs beside the tests' own (CI has 2 cores), which
    wait for it only when they compare with it."""
    tmp_path = tmp_path_factory.mktemp("straight")
    _prepare(tmp_path)
    started, results = _start(tmp_path, "straight", tmp_path / "run"), []

    def result():
        if not results:
            results.append(_finish(started))
        return results[0]

    yield result
    if started[0].poll() is None:  # no test waited for it
        started[0].kill()
        started[0].communicate()


def _prepare(tmp_path):
    rng = np.random.default_rng(0)
    # 10 subjects of 48 frames: 20 windows of 32 frames, 2 steps of 8 an epoch, 6 in all
    X = np.cumsum(rng.standard_normal((10, 48, 12)), axis=1) * 0.3 + rng.standard_normal((10, 48, 12))
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "fit.py").write_text(_SCRIPT)


@pytest.mark.parametrize("mode", ["after-step-4", "in-save-4"])
def test_a_sigkilled_fit_resumes_to_the_weights_of_a_fit_never_killed(tmp_path, straight, mode):
    _prepare(tmp_path)
    folder = tmp_path / "run"
    _fit(tmp_path, mode, folder, expect_killed=True)
    saved = sorted(folder.glob("run-*.pt"))
    assert len(saved) == 1  # the last complete save; a half-written one never takes its place
    loop = torch.load(saved[0], weights_only=True)["loop"]
    # killed after step 4, before its save, or while writing it: step 3 (inside epoch 1) is kept
    assert loop["step"] == 3 and loop["step_in_epoch"] == 1
    if mode.startswith("in-save"):
        assert list(folder.glob("*.tmp")), "the killed write leaves its temporary file"
    resumed = _fit(tmp_path, "resume", folder)
    never_killed = straight()
    assert (resumed["steps_run"], never_killed["steps_run"]) == (3, 6)  # resumed, not retrained
    assert not list(folder.glob("*.tmp"))  # removed by the next save
    assert resumed["history"] == never_killed["history"]
    assert resumed["state"].keys() == never_killed["state"].keys()
    for key, value in never_killed["state"].items():
        assert torch.equal(resumed["state"][key], value), key


_GROUP_SCRIPT = """
import os
import subprocess
import sys
import time

import numpy as np
import torch

from brainjepa_sk import BrainJEPAPretrainer
from brainjepa_sk.train import Callback, TrainingInterrupted


class SignalGroupAt(Callback):
    def on_step_end(self, loop, loss):
        if loop.step == 3:  # inside the first epoch of 12 steps
            # from another process, as torchrun and SLURM do: to the whole process group,
            # loader workers included, while this process finishes a long step (kill has
            # signalled the group, itself included, once it ends)
            subprocess.Popen(["kill", "-TERM", "--", f"-{os.getpgid(0)}"]).wait()
            time.sleep(0.5)


torch.set_num_threads(1)
folder = sys.argv[1]
model = BrainJEPAPretrainer(
    gradients=np.random.default_rng(1).standard_normal((8, 3)),
    model_size=dict(embed_dim=16, depth=1, num_heads=2), patch_size=4, n_frames=16, stride=8,
    predictor_depth=1, n_epochs=3, batch_size=2, device="cpu", verbose=0, random_state=0,
    checkpoint_dir=folder + "/run", num_workers=2, callbacks=[SignalGroupAt()],
)
try:
    model.fit(folder + "/sub-*.npy")
except TrainingInterrupted as error:
    print("interrupted:", error)
"""


def test_sigterm_to_the_process_group_with_loader_workers_saves_and_stops(tmp_path):
    rng = np.random.default_rng(0)
    for subject in range(6):  # 4 windows each: 24 windows, 12 steps an epoch
        np.save(tmp_path / f"sub-{subject}.npy",
                rng.standard_normal((40, 8)).cumsum(0).astype("float32"))
    (tmp_path / "fit.py").write_text(_GROUP_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(tmp_path / "fit.py"), str(tmp_path)], start_new_session=True,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "interrupted: " in result.stdout and "SIGTERM after step 3" in result.stdout
    (saved,) = (tmp_path / "run").glob("run-*.pt")
    assert torch.load(saved, weights_only=True)["loop"]["step"] == 3


_FINE_TUNE_SCRIPT = """
import os
import signal
import sys

import numpy as np
from skorch.callbacks import Checkpoint, LoadInitState

import brainjepa_sk._skorch
from brainjepa_sk import BrainJEPAClassifier

sys.path.insert(0, sys.argv[2])
from _estimators import tiny_module

move, renamed = brainjepa_sk._skorch.move_into_place, []


def killed_between_renames(part, target):
    renamed.append(target.name)
    if renamed.count("run.json") == 2 and target.name == "params.pt":
        os.kill(os.getpid(), signal.SIGKILL)
    return move(part, target)


brainjepa_sk._skorch.move_into_place = killed_between_renames
X, y = np.load(sys.argv[3]), np.tile([0, 1], 4)
saved = Checkpoint(dirname=sys.argv[1], monitor=None)
BrainJEPAClassifier(tiny_module(), normalization=None, max_epochs=3, batch_size=8, verbose=0,
                    random_state=0, callbacks=[saved, LoadInitState(saved)]).fit(X, y)
"""


def test_a_fine_tuning_sigkilled_between_the_renames_of_a_save_is_not_resumed_as_a_mix(
        tmp_path):
    """skorch's Checkpoint's files are renamed into place one at a time: a kill between two
    renames leaves files of two epochs, which LoadInitState loaded as one run. The run file
    tells them apart, and the resumed fit refuses them, naming each save's files."""
    X = np.random.default_rng(0).standard_normal((8, 16, 8))
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "fit.py").write_text(_FINE_TUNE_SCRIPT)
    folder = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(tmp_path / "fit.py"), str(folder), str(Path(__file__).parent),
         str(tmp_path / "X.npy")],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    saved = Checkpoint(dirname=folder, monitor=None)
    resumed = BrainJEPAClassifier(tiny_module(), normalization=None, max_epochs=3, batch_size=8,
                                  verbose=0, random_state=0,
                                  callbacks=[saved, LoadInitState(saved)])
    with pytest.raises(ValueError, match=r"of two saves.*criterion\.pt, optimizer\.pt of the "
                                         r"last save, history\.json, params\.pt of the save "
                                         r"before it"):
        resumed.fit(X, np.tile([0, 1], 4))
