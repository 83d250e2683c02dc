"""Pure-torch training: the loop, its callbacks, the step, the optimizer, schedules and data.

Nothing here imports scikit-learn; the estimators are thin layers over these pieces.

>>> from brainjepa_sk.train import PretrainLoop, PretrainSchedule, ShuffleSampler, window_loader
"""

from .callbacks import (
    Callback,
    Checkpoint,
    CollapseMonitor,
    NonFiniteLossGuard,
    ProgressBar,
    collapse_metrics,
    read_training_state,
)
from .data import LazyWindowDataset, ShuffleSampler, WindowDataset, window_loader
from .loop import PretrainLoop, TrainingInterrupted
from .optim import layer_decay_groups, make_optimizer, parameter_groups, set_hyperparameters
from .runs import find_shorter_run, run_key, unfinished_runs
from .schedule import PretrainSchedule, cosine_ramp, linear_ramp, warmup_cosine
from .step import eval_step, train_step

__all__ = [
    "Callback",
    "Checkpoint",
    "CollapseMonitor",
    "NonFiniteLossGuard",
    "PretrainLoop",
    "TrainingInterrupted",
    "PretrainSchedule",
    "ProgressBar",
    "ShuffleSampler",
    "WindowDataset",
    "LazyWindowDataset",
    "collapse_metrics",
    "find_shorter_run",
    "read_training_state",
    "cosine_ramp",
    "linear_ramp",
    "layer_decay_groups",
    "make_optimizer",
    "parameter_groups",
    "run_key",
    "set_hyperparameters",
    "train_step",
    "eval_step",
    "unfinished_runs",
    "warmup_cosine",
    "window_loader",
]
