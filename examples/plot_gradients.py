"""
Connectivity gradients: where Brain-JEPA places each region
===========================================================

Brain-JEPA does not give its regions arbitrary position numbers. It places each region by its
coordinates on the main axes ("gradients") of functional connectivity: regions with similar
connectivity profiles get similar positions, and a learned linear map turns those coordinates
into half of every token's positional embedding (the other half codes the time patch).

:class:`~brainjepa_sk.GradientPositioner` computes the coordinates with BrainSpace, with the
paper's defaults: a diffusion map (``approach="dm"``) of a normalized-angle affinity
(``kernel="normalized_angle"``) between the regions' connectivity profiles, each profile kept at
its strongest 10% of connections (``sparsity=0.9``), 30 components (``n_components=30``).

Here we compute them on the Human Connectome Project group connectivity of the Schaefer-400
atlas that BrainSpace ships, then on simulated subjects' time series.
"""

# %%
# Gradients of a group connectivity matrix
# ----------------------------------------
# :func:`~brainjepa_sk.datasets.load_group_connectivity` reads BrainSpace's bundled HCP mean
# connectivity matrix (no download). With ``kind="connectivity"`` the positioner takes
# connectivity matrices instead of time series; one ``(n_regions, n_regions)`` matrix is fine.
import matplotlib.pyplot as plt
import numpy as np

from brainjepa_sk import GradientPositioner
from brainjepa_sk.datasets import load_group_connectivity, make_brain_dynamics

n_regions = 400  # the Schaefer atlas: BrainSpace ships 100, 200, 300 and 400 regions
connectivity = load_group_connectivity(n_regions)
positioner = GradientPositioner(kind="connectivity", random_state=0).fit(
    connectivity
)
gradients = positioner.gradients_
print(f"connectivity {connectivity.shape} -> gradients {gradients.shape}")

# %%
# Colour the regions by network
# -----------------------------
# BrainSpace ships the matrices but not the names of the Schaefer networks, so the colours
# below are *not* the Yeo networks. They are the seven communities that
# :func:`~brainjepa_sk.datasets.make_brain_dynamics` finds in the same matrix (Ward clustering
# of the regions' connectivity profiles, numbered by size) and returns with
# ``return_params=True``; a tiny simulation is enough to get them.
_, _, params = make_brain_dynamics(
    n_subjects=1,
    n_timepoints=8,
    n_regions=n_regions,
    random_state=0,
    return_params=True,
)
communities = params["networks"]
n_communities = params["n_networks"]
print("regions per community:", np.bincount(communities).tolist())

# %%
# Each dot is one of the 400 cortical regions. The communities, found from the connectivity
# matrix without any gradient, occupy largely distinct parts of the gradient space (some
# overlap in one view and separate in the other): the first gradients summarise the
# large-scale organisation of connectivity. The signs of gradients
# are arbitrary (an eigenvector is defined up to its sign). The right panel shows the
# eigenvalues of the diffusion map (``lambdas_``): the first two gradients stand out (0.072 and
# 0.071, then 0.049 and 0.034); the others carry smaller, finer distinctions between regions,
# which the model can still use.
colors = plt.get_cmap("tab10")(np.arange(n_communities))
fig, axes = plt.subplots(1, 3, figsize=(13, 5), layout="constrained")
for ax, (i, j) in zip(axes[:2], [(0, 1), (0, 2)]):
    for k in range(n_communities):
        members = communities == k
        ax.scatter(
            gradients[members, i],
            gradients[members, j],
            s=14,
            color=colors[k],
            label=f"community {k + 1} ({members.sum()})",
            alpha=0.85,
            linewidths=0,
        )
    ax.set_xlabel(f"gradient {i + 1}")
    ax.set_ylabel(f"gradient {j + 1}")
    ax.set_title(f"Schaefer-{n_regions} regions, gradient {i + 1} vs {j + 1}")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(
    handles,
    labels,
    title="Ward community of the HCP matrix (number of regions)",
    loc="outside lower center",
    ncols=n_communities,
    fontsize=8,
    markerscale=2,
)

lambdas = positioner.lambdas_
axes[2].bar(
    np.arange(1, len(lambdas) + 1), lambdas / lambdas.sum(), color="#4c72b0"
)
axes[2].set_xlabel("gradient")
axes[2].set_ylabel(f"eigenvalue / sum of the {len(lambdas)}")
axes[2].set_title("Diffusion-map eigenvalues")
plt.show()

# %%
# Gradients from subjects' time series
# ------------------------------------
# With the default ``kind="timeseries"``, ``fit`` takes subjects' ROI time series (a list of
# ``(n_timepoints, n_regions)`` arrays), computes each subject's correlation matrix with
# nilearn (Ledoit-Wolf shrinkage), averages them in Fisher-z space and embeds the group matrix.
# Inside :class:`~brainjepa_sk.BrainJEPAPretrainer` this happens in ``fit``, on the training
# subjects only, so a cross-validation never sees test subjects' connectivity.
#
# ``reference`` rotates the result onto given gradients (Procrustes), for instance a published
# gradient file of the same atlas. Here we simulate 30 subjects on the Schaefer-100 atlas
# (about 7 minutes of scan each) and align their group gradients to those of the HCP matrix.
X, _ = make_brain_dynamics(
    n_subjects=30, n_timepoints=200, n_regions=100, random_state=0
)
hcp = (
    GradientPositioner(kind="connectivity")
    .fit(load_group_connectivity(100))
    .gradients_
)
simulated = GradientPositioner(reference=hcp).fit(X)

n_show = 10
agreement = [
    np.corrcoef(simulated.gradients_[:, c], hcp[:, c])[0, 1]
    for c in range(n_show)
]
print(
    f"correlation with the HCP gradients, first {n_show}:",
    np.round(agreement, 2).tolist(),
)

# %%
# The first gradients of 30 noisy simulated subjects are close to those of the HCP group
# matrix they were drawn around; later, weaker gradients are estimated less reliably. With
# real data the same holds: the more subjects and the longer the scans, the more gradients
# are stable.
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.bar(np.arange(1, n_show + 1), agreement, color="#55a868")
ax.set_ylim(min(0.0, min(agreement)), 1)
ax.set_xticks(np.arange(1, n_show + 1))
ax.set_xlabel("gradient")
ax.set_ylabel("correlation over regions")
ax.set_title("30 simulated subjects vs HCP group gradients (after alignment)")
plt.show()
