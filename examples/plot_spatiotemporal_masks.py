"""
Spatiotemporal masks of Brain-JEPA
==================================

Brain-JEPA cuts each region's time series into patches of a few frames, so one subject becomes
a grid of tokens: regions on one axis, time patches on the other. During pretraining the
encoder sees only a *context* block of this grid and the predictor must predict the encoder's
representation of *target* tokens it was not shown.

:class:`~brainjepa_sk.nn.masking.SpatiotemporalMaskSampler` draws the targets in three kinds:

* **Cross-ROI (alpha)**: *other regions at the context's times*. Regions outside the context,
  over a time span inside the observed block's span, which may reach into an edge span (sample
  1 below): the model must infer a region from the other regions at the same moment.
* **Cross-Time (beta)**: *context regions at other times*. Regions that are in the context,
  over spans at the temporal edges of the scan, which the context does not cover: the model
  must extrapolate the regions it sees forwards and backwards in time.
* **Double-Cross (gamma)**: *other regions at other times*. Regions outside the context over
  the same edge spans: neither the region nor the moment is in the context.

Context and targets never overlap; tokens that are neither are simply hidden.
"""

# %%
# Draw masks
# ----------
# A grid of 100 regions x 10 time patches (for example 160 frames cut into patches of 16).
# ``return_grid=True`` also returns the labelled grid ``(batch, regions, patches)``:
# 0 hidden, 1 context, 2 alpha, 3 beta, 4 gamma.
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.patches import Patch

from brainjepa_sk.nn.masking import ALPHA, BETA, CONTEXT, GAMMA, SpatiotemporalMaskSampler

n_regions, n_patches, n_samples = 100, 10, 3
sampler = SpatiotemporalMaskSampler(n_regions, n_patches, seed=0)
masks = sampler.sample(n_samples, return_grid=True)
grid = masks.grid.numpy()
print(grid.shape)

# %%
# Show the labelled grids
# -----------------------
# Each panel is one sample; rows are regions and columns time patches. The sampler picks
# regions at random, so the context regions are scattered over the rows, while the context's
# time span is contiguous. The beta and gamma targets sit in the edge zones (the first and
# last patches). The *sizes* of the blocks are drawn once per batch, their *positions* per
# sample, so the three panels here hold the same numbers of context, alpha and beta tokens in
# different places (counts below). The gamma count can differ: where an alpha span reaches
# into an edge span (sample 1's patch 1), alpha takes the cells its regions share with gamma.
labels = ["hidden", "context", "Cross-ROI (alpha)", "Cross-Time (beta)", "Double-Cross (gamma)"]
colors = ["#e6e6e6", "#4c72b0", "#dd8452", "#55a868", "#c44e52"]
cmap = ListedColormap(colors)
norm = BoundaryNorm(np.arange(len(colors) + 1) - 0.5, cmap.N)

# squeeze=False: a row of panels even for one sample
fig, axes = plt.subplots(1, n_samples, figsize=(9, 5), sharey=True, layout="constrained",
                         squeeze=False)
for i, ax in enumerate(axes[0]):
    ax.imshow(grid[i], cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    ax.set_title(f"sample {i}")
    ax.set_xlabel("time patch")
    ax.set_xticks(range(n_patches))
axes[0, 0].set_ylabel("region")
fig.legend(
    handles=[Patch(color=c, label=lab) for c, lab in zip(colors, labels)],
    loc="outside lower center",
    ncols=len(labels),
)
plt.show()

# %%
# Token counts
# ------------
# The grid shows every token of each kind. For batching, the sampler then keeps a random
# subset of the context and of the target tokens of one size for the whole batch, so that
# ``context_idx`` and ``target_idx`` are rectangular tensors.
names = {CONTEXT: "context", ALPHA: "alpha", BETA: "beta", GAMMA: "gamma"}
for i in range(n_samples):
    counts = ", ".join(f"{name} {int((grid[i] == label).sum())}" for label, name in names.items())
    print(f"sample {i} (grid): {counts}, hidden {int((grid[i] == 0).sum())}")

kinds = masks.target_kind.numpy()
print(f"kept per sample: {masks.context_idx.shape[1]} context, {masks.target_idx.shape[1]} target")
for i in range(n_samples):
    counts = ", ".join(f"{names[k]} {int((kinds[i] == k).sum())}" for k in (ALPHA, BETA, GAMMA))
    print(f"sample {i} (kept targets): {counts}")
