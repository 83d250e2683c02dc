"""
Pretraining Brain-JEPA and watching it train
============================================

:class:`~brainjepa_sk.BrainJEPAPretrainer` pretrains Brain-JEPA on subjects' ROI time series,
without labels. This example runs a deliberately small model for a few epochs on the CPU
(about half a minute on two cores) and plots the curves it records in ``history_``: the loss,
the learning rate, and two monitors of *representation collapse*, the classic failure of
joint-embedding methods in which the encoder maps every input to (nearly) the same vector,
which makes the prediction task trivially easy.
"""

# %%
# Simulated subjects
# ------------------
# 40 subjects, 200 frames each at TR 2 s (6.7 minutes), on the Schaefer-100 atlas, from
# :func:`~brainjepa_sk.datasets.make_brain_dynamics`. Any list of
# ``(n_timepoints, n_regions)`` arrays works the same way.
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from brainjepa_sk import (
    BrainJEPAEmbedder,
    BrainJEPAPretrainer,
    GradientPositioner,
)
from brainjepa_sk.datasets import make_brain_dynamics

X, y = make_brain_dynamics(
    n_subjects=40, n_timepoints=200, n_regions=100, t_r=2.0, random_state=0
)
print(f"{len(X)} subjects of shape {X[0].shape} (n_timepoints, n_regions)")

# %%
# A small model
# -------------
# The presets (``model_size="tiny"`` to ``"base"``) have 12 blocks or more; here a dict gives a
# 2-block encoder of width 64 and a 2-block predictor, so that the example runs in seconds.
# Windows are 96 frames (6 time patches of 16 frames); ``window="sliding"`` cuts one every 48
# frames and a last one ending at the last frame, so each subject gives 4 training windows
# (starting at frames 0, 48, 96 and 104). ``t_r`` is recorded as the model's TR.
# All randomness (initialisation, masks, batch order) follows ``random_state``.
# ``checkpoint_dir`` keeps the training state on disk (see the end of this example).
checkpoint_dir = tempfile.mkdtemp()
pretrainer = BrainJEPAPretrainer(
    gradients=GradientPositioner(random_state=0),
    model_size={"embed_dim": 64, "depth": 2, "num_heads": 4},
    n_frames=96,
    predictor_embed_dim=64,
    predictor_depth=2,
    n_epochs=12,
    batch_size=16,
    t_r=2.0,
    window="sliding",
    normalization="robust",
    device="cpu",
    random_state=0,
    checkpoint_dir=checkpoint_dir,
    verbose=0,
)
pretrainer.fit(X)
print(
    f"{len(pretrainer.history_)} epochs; last record: {pretrainer.history_[-1]}"
)

# %%
# Training curves
# ---------------
# ``history_`` holds one record per epoch: ``loss`` (mean over the epoch's steps), ``lr`` (at
# the epoch's last step), and, computed with the target encoder on up to 64 training windows
# spread over the subjects, ``target_std`` (the standard deviation across windows of the
# mean-pooled features, averaged over features) and ``effective_rank`` (how many dimensions
# the features really use, between 1 and the width or the number of windows minus one,
# whichever is smaller: here 63).
#
# The learning rate follows the research recipe scaled to ``n_epochs``: a linear warm-up over
# 40/300 of the epochs, then a cosine decay. Collapse would show as ``target_std`` falling
# towards 0 and the effective rank towards 1 (dashed line) while the loss keeps falling. In
# this short run the loss falls steeply while both monitors stay roughly flat, far from
# collapse; the effective rank also shows that the features of this small, briefly trained
# model use only about a dozen of their 64 dimensions. A falling loss alone says little: it is
# also what collapse looks like, so look at the monitors.
history = pretrainer.history_
epochs = [h["epoch"] + 1 for h in history]
panels = [
    ("loss", "JEPA loss (log scale)", True),
    ("lr", "learning rate", False),
    ("target_std", "target feature std", False),
    ("effective_rank", "effective rank", False),
]
fig, axes = plt.subplots(
    2, 2, figsize=(9, 6), sharex=True, layout="constrained"
)
for ax, (key, label, log) in zip(axes.flat, panels):
    ax.plot(epochs, [h[key] for h in history], marker="o", color="#4c72b0")
    ax.set_ylabel(label)
    ax.set_title(label)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
axes[1, 1].axhline(
    1, color="#c44e52", linestyle="--", label="collapsed (rank 1)"
)
axes[1, 1].legend(loc="center right")
axes[1, 1].set_ylim(0, None)
axes[1, 0].set_ylim(0, None)
for ax in axes[1]:
    ax.set_xlabel("epoch")
fig.suptitle(
    "BrainJEPAPretrainer.history_ (2-block model, 40 simulated subjects)"
)
plt.show()

# %%
# Embeddings, saving and reloading
# --------------------------------
# ``transform`` embeds each subject: the target encoder's tokens are averaged per window
# (``pooling="mean"``) and the windows averaged per subject. ``save`` writes the weights with
# the gradients and the fitted preprocessing (here the robust scaling statistics), and
# :class:`~brainjepa_sk.BrainJEPAEmbedder` reads the file back and applies the same
# preprocessing, so both give the same embeddings.
embeddings = pretrainer.transform(X)
with tempfile.TemporaryDirectory() as folder:
    path = Path(folder) / "my_brainjepa.pt"
    pretrainer.save(path)
    embedder = BrainJEPAEmbedder(weights=path, device="cpu").fit(X)
    reloaded = embedder.transform(X)
print(
    f"embeddings {embeddings.shape}; reloaded model agrees: "
    f"max |difference| = {np.abs(embeddings - reloaded).max():.1e}"
)

# %%
# Resuming a long run
# -------------------
# With ``checkpoint_dir``, the training state (weights, optimizer, mask sampler and data-order
# generators) is written after every epoch. A ``fit`` interrupted by a crash or a job time
# limit continues from the last epoch when called again with the same settings, data and
# integer ``random_state``; on the CPU it ends exactly where an uninterrupted run would. A
# finished run found there is not trained again, so this second ``fit`` takes seconds:
history_before = pretrainer.history_
pretrainer.fit(X)
print(
    "same history after the second fit:", pretrainer.history_ == history_before
)
shutil.rmtree(checkpoint_dir)
