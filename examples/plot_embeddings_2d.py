"""
Subjects' embeddings in two dimensions
======================================

What does a pretrained encoder pick up? A quick look: embed every subject, project the
embeddings on their first two principal components, and colour the subjects by what we know
about them. Here the subjects are simulated, so we know their age, their group and the
scanner site they were "measured" at, which is pure nuisance. For comparison, the same view of
tangent-space functional connectivity.
"""

# %%
# Pretrain and embed
# ------------------
# 90 simulated subjects (Schaefer-100, 200 frames at TR 2 s) and a small model pretrained for
# a few epochs on the CPU, as in the pretraining example.
import matplotlib.pyplot as plt
import numpy as np
from nilearn.connectome import ConnectivityMeasure
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainjepa_sk import BrainJEPAPretrainer, GradientPositioner
from brainjepa_sk.datasets import make_brain_dynamics

X, y = make_brain_dynamics(
    n_subjects=90, n_timepoints=200, n_regions=100, t_r=2.0, random_state=1
)

pretrainer = BrainJEPAPretrainer(
    gradients=GradientPositioner(random_state=0),
    model_size={"embed_dim": 64, "depth": 2, "num_heads": 4},
    n_frames=96,
    predictor_embed_dim=64,
    predictor_depth=2,
    n_epochs=6,
    batch_size=16,
    t_r=2.0,
    window="sliding",
    normalization="robust",
    device="cpu",
    random_state=0,
    verbose=0,
)
features = {
    "Brain-JEPA embeddings (64-d)": pretrainer.fit_transform(X),
    "tangent FC (4950-d)": ConnectivityMeasure(
        kind="tangent", vectorize=True, discard_diagonal=True
    ).fit_transform(X),
}

# %%
# Two principal components
# ------------------------
# Each feature is standardised, then PCA keeps two components. This is a descriptive view of
# all subjects at once (no prediction, no held-out data): it shows which variation dominates
# the features, not what a classifier could extract from the rest.
projections, explained = {}, {}
for name, values in features.items():
    pca = make_pipeline(StandardScaler(), PCA(n_components=2, random_state=0))
    projections[name] = pca.fit_transform(values)
    explained[name] = pca[-1].explained_variance_ratio_
    print(
        f"{name}: variance explained by PC1, PC2 =",
        np.round(explained[name].astype(float), 3).tolist(),
    )

# %%
# Colour by group, age and site
# -----------------------------
# Rows: feature sets; columns: what the colour shows. In this simulation, site changes the
# signal gain and the noise level and adds a slow drift with a site-specific spatial pattern,
# while age and group act on connectivity and regional timescales.
#
# In this build, the first two components of tangent connectivity split the subjects into
# three tight clusters, one per site: the site's drift pattern is the largest source of
# variance in connectivity, larger than age or group. The Brain-JEPA embeddings show no such
# clusters, and neither feature set shows an obvious age or group gradient in its first two
# components. That is a description, not a verdict: phenotype information can sit in later
# components (the :ref:`phenotype example <sphx_glr_auto_examples_plot_phenotype_prediction.py>`
# measures it), and with real data the same plot is a quick check for scanner effects that
# call for site-aware cross-validation or harmonisation.
sites = y["site"].cat.codes.to_numpy()
site_colors = ["#4c72b0", "#dd8452", "#55a868"]
group_colors = ["#8172b3", "#c44e52"]
fig, axes = plt.subplots(2, 3, figsize=(13, 8), layout="constrained")
for row, (name, points) in zip(axes, projections.items()):
    pc1, pc2 = explained[name] * 100
    for ax in row:
        ax.set_xlabel(f"PC1 ({pc1:.0f}% of variance)")
        ax.set_ylabel(f"PC2 ({pc2:.0f}%)")
    for g in (0, 1):
        members = y["group"].to_numpy() == g
        row[0].scatter(
            *points[members].T, s=22, color=group_colors[g], label=f"group {g}"
        )
    row[0].legend(loc="best", fontsize=8)
    row[0].set_title(f"{name}\ncoloured by group")
    sc = row[1].scatter(*points.T, s=22, c=y["age"], cmap="viridis")
    fig.colorbar(sc, ax=row[1], label="age (years)")
    row[1].set_title(f"{name}\ncoloured by age")
    for k in range(3):
        members = sites == k
        row[2].scatter(
            *points[members].T, s=22, color=site_colors[k], label=f"site {k}"
        )
    row[2].legend(loc="best", fontsize=8)
    row[2].set_title(f"{name}\ncoloured by site")
plt.show()
