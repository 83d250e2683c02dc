"""
Readouts that keep connectivity and time: which token summary answers which question
=====================================================================================

An encoder gives one token per (region, time patch). How those tokens are summarised decides
what a linear model downstream can see. ``BrainJEPAEmbedder`` and ``BrainJEPAPretrainer``
offer:

* ``pooling="mean"``: the mean of all tokens (one vector per window);
* ``"roi_std"``: each region's spread over time patches (second-order, per region);
* ``"connectivity"``: the correlation between regions of their token features;
* ``"lagged"``: the lag-one (one time patch) cross-correlation of those features, for every
  ordered pair of regions, which keeps the direction of time;
* ``"tokens"``: no pooling: one ``(n_samples, n_regions)`` series per subject, which nilearn's
  ``ConnectivityMeasure`` (here in tangent space) consumes like ROI time series.

This example asks two questions of short windows of simulated scans: *whose scan is this?*
(subject identification: train on the windows of each scan's first half, test on its second
half) and *is this window played forward or backward?* (time direction, subjects held out), and
compares each readout with tangent connectivity and the lag-one covariance of the raw series.
It is small (20 subjects, a model pretrained for a few seconds), so its scores are noisy;
``benchmarks/readouts.py`` runs the same comparison with random-encoder controls.
"""

# %%
# Simulated scans, cut into windows
# ---------------------------------
import matplotlib.pyplot as plt
import numpy as np
from nilearn.connectome import ConnectivityMeasure
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainjepa_sk import BrainJEPAPretrainer, GradientPositioner
from brainjepa_sk.datasets import make_brain_dynamics

X, _ = make_brain_dynamics(n_subjects=20, n_timepoints=576, n_regions=50, t_r=2.0,
                           random_state=0)
WINDOW = 96
windows, subject, position = [], [], []
for i, scan in enumerate(X):
    for k, start in enumerate(range(0, len(scan) - WINDOW + 1, WINDOW)):
        windows.append(scan[start:start + WINDOW])
        subject.append(i)
        position.append(k)
subject, position = np.asarray(subject), np.asarray(position)
first_half = position < 3
reversed_windows = [w[::-1].copy() for w in windows]
both = windows + reversed_windows
forward = np.r_[np.ones(len(windows)), np.zeros(len(windows))].astype(int)
groups = np.r_[subject, subject]
print(f"{len(windows)} windows of {WINDOW} frames x 50 regions from {len(X)} subjects")

# %%
# A small pretrained encoder
# --------------------------
# The settings of the user guide for small models and short runs. With ``window="first"``
# the model is pretrained on the first 96 frames of each scan only (20 windows, as in
# ``benchmarks/readouts.py``), and ``transform`` embeds each 96-frame window whole.
model = BrainJEPAPretrainer(
    gradients=GradientPositioner(n_components=10, random_state=0),
    model_size={"embed_dim": 64, "depth": 1, "num_heads": 2}, patch_size=16, n_frames=WINDOW,
    predictor_embed_dim=64, predictor_depth=2, batch_size=16, patch_embed_init="xavier",
    n_epochs=15, warmup_epochs=3, final_lr=1e-3, ema_momentum=0.99, final_ema_momentum=0.99,
    t_r=2.0, window="first", normalization="robust", device="cpu", verbose=0, random_state=0,
).fit(X)


def classifier(*steps):
    return make_pipeline(*steps, StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))


def tangent():
    return ConnectivityMeasure(kind="tangent", vectorize=True, discard_diagonal=True)


def lag_covariance(series):
    """Lag-one covariance of each window's standardised series, every ordered pair of regions."""
    out = []
    for w in series:
        z = (w - w.mean(0)) / w.std(0)
        out.append((z[1:].T @ z[:-1] / (len(z) - 1)).ravel())
    return np.asarray(out)


def identification(features, steps=()):
    train = [f for f, keep in zip(features, first_half) if keep]
    test = [f for f, keep in zip(features, first_half) if not keep]
    fitted = classifier(*steps).fit(train, subject[first_half])
    return float((fitted.predict(test) == subject[~first_half]).mean())


def direction(features, steps=()):
    return float(cross_val_score(classifier(*steps), features, forward, groups=groups,
                                 cv=GroupKFold(5)).mean())


# %%
# Every readout on both questions
# -------------------------------
scores = {
    "tangent FC (raw)": (identification(windows, [tangent()]), direction(both, [tangent()])),
    "lag-one covariance (raw)": (identification(lag_covariance(windows)),
                                 direction(lag_covariance(both))),
}
for pooling in ["mean", "roi_std", "connectivity", "lagged", "tokens"]:
    model.set_params(pooling=pooling)
    steps = [tangent()] if pooling == "tokens" else []
    name = "tokens + tangent" if pooling == "tokens" else pooling
    scores[name] = (identification(model.transform(windows), steps),
                    direction(model.transform(both), steps))
for name, (ident, direct) in scores.items():
    print(f"{name:<26} identification {ident:.2f}   direction {direct:.2f}")

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
names = list(scores)
for ax, column, title, chance in zip(axes, range(2), ["subject identification",
                                                       "time direction"], [1 / 20, 0.5]):
    ax.barh(names, [scores[n][column] for n in names], color="0.6")
    ax.axvline(chance, color="C3", linestyle="--", label="chance")
    ax.set(xlim=(0, 1), title=title, xlabel="accuracy")
axes[0].invert_yaxis()
axes[1].legend(loc="lower right")
fig.tight_layout()

# %%
# Which readout for which question
# --------------------------------
# Static connectivity (tangent FC) is blind to the direction of time by construction: a window
# and its reverse have the same covariance. The lag-one covariance of the raw series sees it.
# Among the token readouts, the second-order ones (``tokens`` followed by a tangent projection,
# and ``connectivity``) are the ones to use for questions about individual connectivity, and
# ``lagged`` the one built to keep temporal order; ``mean`` averages both away. On this small
# simulation the benchmark found no token readout that told the direction of time
# (``benchmarks/README.md``); the printed scores above are this build's own.
