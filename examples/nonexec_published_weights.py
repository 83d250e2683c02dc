"""
Embeddings from the published UK Biobank weights (not run here)
===============================================================

.. note::

   This example is shown but **not executed** when the documentation is built: it downloads
   the research checkpoint and the model's 450-region atlas, and needs your own fMRI data.
   Run it on your own machine; a GPU helps but is not required.

:class:`~brainjepa_sk.BrainJEPAEmbedder` with its default ``weights="ukbiobank"`` uses the
Brain-JEPA checkpoint the authors pretrained on UK Biobank (ViT-base, ``jepa-ep300.pth.tar``)
with its gradient file (``gradient_mapping_450.csv``). The files are not distributed with this
package: the first ``fit`` downloads them (from the authors' Google Drive and repository) into
a cache folder, and later runs work offline from there.
"""

# %%
# Fetch the weights once
# ----------------------
# The cache folder is ``data_dir`` if given, else the ``BRAINJEPA_SK_DATA`` environment
# variable, else ``~/brainjepa_sk_data``; the files go into its ``brainjepa_ukbiobank``
# subfolder. Without network access, put ``jepa-ep300.pth.tar`` and
# ``gradient_mapping_450.csv`` there yourself; the error message says where.
from brainjepa_sk.datasets import fetch_ukbiobank_weights

paths = fetch_ukbiobank_weights()
print(paths)  # {"checkpoint": ..., "gradients": ...}

# %%
# Your data on the model's atlas
# ------------------------------
# The model knows 450 regions, in this order: the 50 regions of the Tian-S3 subcortical atlas,
# then the 400 regions of the Schaefer-400 atlas in its 17-network order.
# :func:`~brainjepa_sk.datasets.fetch_atlas_brainjepa450` builds that labels image once (it
# downloads Schaefer-400 through nilearn and Tian-S3 from its authors' release); nilearn's
# ``NiftiLabelsMasker`` then extracts the time series with the columns in the model's order.
# Pass your confounds to ``fit_transform`` as usual: here fMRIPrep's, in nilearn's "simple"
# denoising strategy, whose sample mask drops only the non-steady-state volumes at the start
# (a scrubbing strategy drops frames inside the series, which are then no longer evenly
# spaced in time). The file names below are placeholders. Each subject is one
# ``(n_timepoints, 450)`` array.
from pathlib import Path

import numpy as np
from nilearn.interfaces.fmriprep import load_confounds_strategy
from nilearn.maskers import NiftiLabelsMasker

from brainjepa_sk.datasets import fetch_atlas_brainjepa450

atlas = fetch_atlas_brainjepa450()
# standardize=None: the raw signals, no z-scoring (nilearn 0.14 warns on False, 0.11 reads
# both the same)
masker = NiftiLabelsMasker(labels_img=atlas.maps, standardize=None)
func_imgs = sorted(
    Path("derivatives").glob("sub-*/func/*task-rest*_desc-preproc_bold.nii.gz")
)
X = []
for img in func_imgs:
    confounds, sample_mask = load_confounds_strategy(str(img), denoise_strategy="simple")
    X.append(masker.fit_transform(img, confounds=confounds, sample_mask=sample_mask))
y = np.loadtxt("labels.txt")  # one label per subject, in the same order

# %%
# Frozen features
# ---------------
# Give your TR: the series are resampled to the model's TR (2.205 s: UK Biobank's 0.735 s, every
# third frame). The model's windows are 160 frames (about 5.9 minutes at 2.205 s); the centre
# window of each longer series is used, and series between 80 and 160 frames (after
# resampling) are padded with each region's mean. Each window is z-scored as a whole
# (``normalization="global_zscore"``, the default for these weights), because the
# normalization statistics of the research pretraining were not published.
#
# On a machine with CUDA, ``device="auto"`` runs the encoder there under bf16 autocast; the CPU
# works too, more slowly (the base encoder attends over 450 x 10 = 4500 tokens per window).
from brainjepa_sk import BrainJEPAEmbedder

embedder = BrainJEPAEmbedder(t_r=0.72)  # your TR in seconds
features = embedder.fit(X).transform(X)  # (n_subjects, 768)

# pooling="roi" keeps one 768-d vector per region instead
# (450 x 768 features).
roi_features = BrainJEPAEmbedder(t_r=0.72, pooling="roi").fit(X).transform(X)

# %%
# In a scikit-learn pipeline
# --------------------------
# The embedder is a transformer, so it goes into a pipeline and a cross-validation like any
# other step. Compare with a tangent-connectivity baseline on the same folds before trusting
# the features: independent evaluations found frozen Brain-JEPA features at or below it on
# most trait tasks.
from nilearn.connectome import ConnectivityMeasure
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

brainjepa = make_pipeline(
    BrainJEPAEmbedder(t_r=0.72),
    StandardScaler(),
    LogisticRegression(max_iter=1000),
)
baseline = make_pipeline(
    ConnectivityMeasure(kind="tangent", vectorize=True, discard_diagonal=True),
    StandardScaler(),
    LogisticRegression(max_iter=1000),
)
for name, model in [("Brain-JEPA", brainjepa), ("tangent FC", baseline)]:
    print(name, cross_val_score(model, X, y, cv=5, scoring="roc_auc").mean())
