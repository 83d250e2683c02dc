"""The research recipe's schedules: plain functions of the step number.

A resumed run recomputes them exactly from the step it resumes at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["PretrainSchedule", "cosine_ramp", "linear_ramp", "warmup_cosine"]


def warmup_cosine(step, total_steps, warmup_steps, start_value, ref_value, final_value):
    """Linear warm-up from ``start_value`` to ``ref_value``, then cosine decay to ``final_value``.

    Parameters
    ----------
    step : int
        Current step (0-based).
    total_steps, warmup_steps : int
        Step at which ``final_value`` is reached (and kept after it), and length of the
        warm-up (``ref_value`` is reached at step ``warmup_steps``).
    start_value, ref_value, final_value : float
        Values at step 0 (``ref_value`` there when ``warmup_steps`` is 0), at step
        ``warmup_steps`` and from step ``total_steps`` on.

    Returns
    -------
    float
        The value at ``step``.
    """
    # float(): numpy scalars given as settings would otherwise reach the optimizer's state,
    # which torch.load(weights_only=True) refuses, and a saved run could not be resumed
    if step < warmup_steps:
        return float(start_value + (ref_value - start_value) * step / max(warmup_steps, 1))
    return cosine_ramp(step - warmup_steps, total_steps - warmup_steps, ref_value, final_value)


def cosine_ramp(step, total_steps, start_value, final_value):
    """Cosine interpolation from ``start_value`` (step 0) to ``final_value`` (last step).

    Parameters
    ----------
    step : int
        Current step (0-based).
    total_steps : int
        Step at which ``final_value`` is reached (and kept after it).
    start_value, final_value : float
        Values at step 0 and from step ``total_steps`` on.

    Returns
    -------
    float
        The value at ``step``.
    """
    progress = min(step / max(total_steps, 1), 1.0)
    return float(final_value
                 + 0.5 * (start_value - final_value) * (1.0 + math.cos(math.pi * progress)))


def linear_ramp(step, total_steps, start_value, final_value):
    """Linear interpolation from ``start_value`` (step 0) to ``final_value`` (last step).

    Parameters
    ----------
    step : int
        Current step (0-based).
    total_steps : int
        Step at which ``final_value`` is reached (and kept after it).
    start_value, final_value : float
        Values at step 0 and from step ``total_steps`` on.

    Returns
    -------
    float
        The value at ``step``.
    """
    progress = min(step / max(total_steps, 1), 1.0)
    return float(start_value + (final_value - start_value) * progress)


@dataclass
class PretrainSchedule:
    """Learning-rate, weight-decay and EMA schedules of the research recipe.

    Defaults are the research code's values for a 300-epoch run: lr warm-up 5e-5 -> 1e-3 over
    40 epochs then cosine to 1e-6; weight decay cosine 0.04 -> 0.4; EMA momentum linear
    0.996 -> 1.0 over all steps.

    Steps are counted as the research code counts them. Its learning-rate and weight-decay
    schedulers advance before each update, so update ``k`` (0-based) uses their values at
    ``k + 1``: the first update is already one step into the warm-up, and the last one uses
    ``final_lr`` and ``final_weight_decay``. Its EMA momentum is taken after each update
    from a ramp starting at ``k = 0``: the first update uses ``ema_momentum``, and the last one
    stops one step short of ``final_ema_momentum``.

    Parameters
    ----------
    total_steps : int
        Optimizer steps in the whole run.
    warmup_steps : int
        Steps of linear learning-rate warm-up.
    start_lr, lr, final_lr : float
        Learning rate where the warm-up starts, at its end, and at the last update.
    weight_decay, final_weight_decay : float
        Weight decay where the cosine starts and at the last update.
    ema_momentum, final_ema_momentum : float
        Target-encoder EMA momentum at the first update, and where its linear ramp would
        reach one update after the last.
    """

    total_steps: int
    warmup_steps: int
    start_lr: float = 5e-5
    lr: float = 1e-3
    final_lr: float = 1e-6
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    ema_momentum: float = 0.996
    final_ema_momentum: float = 1.0

    @classmethod
    def from_epochs(cls, n_epochs, steps_per_epoch, warmup_epochs=None, **values):
        """Scale the recipe to a run.

        Parameters
        ----------
        n_epochs : int
            Epochs of the run.
        steps_per_epoch : int
            Optimizer steps per epoch.
        warmup_epochs : float, optional
            Epochs of warm-up; by default 40/300 of ``n_epochs``, as in the research recipe.
        **values
            Any other field (``lr``, ``final_weight_decay``, ...).

        Returns
        -------
        PretrainSchedule
        """
        if warmup_epochs is None:
            warmup_epochs = n_epochs * 40 / 300
        return cls(
            total_steps=int(n_epochs * steps_per_epoch),
            warmup_steps=int(round(warmup_epochs * steps_per_epoch)),
            **values,
        )

    def __call__(self, step):
        """Hyper-parameters at a step.

        Parameters
        ----------
        step : int
            Optimizer step (0-based).

        Returns
        -------
        tuple of float
            ``(lr, weight_decay, ema_momentum)`` of update ``step`` (see the class notes).
        """
        advanced = step + 1  # the research schedulers step before the update
        return (
            warmup_cosine(advanced, self.total_steps, self.warmup_steps, self.start_lr, self.lr,
                          self.final_lr),
            cosine_ramp(advanced, self.total_steps, self.weight_decay, self.final_weight_decay),
            linear_ramp(step, self.total_steps, self.ema_momentum, self.final_ema_momentum),
        )
