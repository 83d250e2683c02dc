"""``BrainJEPAEmbedder``: frozen Brain-JEPA features for scikit-learn pipelines."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from sklearn.base import BaseEstimator

from ._base import (
    check_final_norm,
    check_pooling,
    EmbeddingTransformMixin,
    resolve_autocast,
    resolve_device,
    restore_on_error,
)
from .checkpoint import FORMAT_NAME, load_checkpoint, load_research_checkpoint
from .nn import BrainEncoder, BrainJEPA
from .preprocessing import WINDOW_STRATEGIES, Preprocessor
from .validation import check_n_regions, validate_subjects

__all__ = ["BrainJEPAEmbedder"]

#: TR (seconds) of the research UK Biobank model: TR 0.735 s, every third frame.
UKBIOBANK_T_R = 3 * 0.735


def _is_our_checkpoint(path):
    try:
        payload = torch.load(path, map_location="meta", weights_only=True)
    except Exception:
        return False
    return isinstance(payload, dict) and payload.get("format") == FORMAT_NAME


class BrainJEPAEmbedder(EmbeddingTransformMixin, BaseEstimator):
    """Frozen Brain-JEPA feature extractor: one embedding vector per subject.

    ``fit`` loads the weights and learns what the preprocessing needs from the training subjects
    (only the ``"robust"`` normalization learns anything); ``transform`` preprocesses each
    subject (resampling to the model's TR, windows, normalization), runs the target encoder over
    every window, pools its tokens and averages the windows of each subject.

    Parameters
    ----------
    weights : "ukbiobank", str, path-like or torch.nn.Module, default="ukbiobank"
        ``"ukbiobank"``: the research checkpoint pretrained on UK Biobank (450 regions: Tian-S3
        subcortex then Schaefer-400, 17-network order), fetched once into ``data_dir`` with its
        gradient file. A path: a checkpoint saved by this package (it carries its gradients and
        preprocessing) or a research checkpoint (then ``gradients`` is required). A module: a
        ``BrainJEPA`` (its target encoder is used) or a ``BrainEncoder``.
    gradients : str, path-like or array-like of shape (n_regions, n_components), optional
        Gradient matrix of a research checkpoint given by path.
    num_heads : int, optional
        Attention heads of a research checkpoint (default: 64-wide heads).
    pooling : {"mean", "roi", "roi_std"}, default="mean"
        ``"mean"``: mean over all tokens (``embedding_dim`` features); ``"roi"``: each region's
        mean over time patches, flattened (``n_regions * embedding_dim`` features);
        ``"roi_std"``: each region's standard deviation over time patches, same layout
        (statistics pooling: how much each region's representation varies within a window,
        which reads second-order, dynamic structure that means average away; needs at least
        two time patches per window).
    final_norm : bool, default=True
        Pool the encoder's output, after its final LayerNorm (the research model's features).
        ``False`` pools the last block's tokens before that LayerNorm. The LayerNorm rescales
        every token to unit spread over its features, which divides out how strongly the
        signal drives the token; ``pooling="roi_std"`` reads exactly that, and small
        pretrained models keep more of it without the LayerNorm (see the user guide on
        pretraining).
    t_r : float, optional
        TR of the input in seconds. When given, and the model's TR is known, series are
        resampled to the model's TR.
    model_t_r : "auto" or float or None, default="auto"
        TR the model expects. ``"auto"``: from our checkpoints; 2.205 s for ``"ukbiobank"``;
        unknown (no resampling) otherwise.
    n_frames : "auto" or int, default="auto"
        Frames per window. ``"auto"``: the length the model was trained on.
    window : {"auto", "center", "first", "sliding"}, default="auto"
        Which frames of a longer series are used; ``"sliding"`` averages windows every
        ``stride`` frames. ``"auto"``: what our checkpoint was pretrained with, else
        ``"center"``.
    stride : int, optional
        Step of the sliding windows. Default: our checkpoint's, else ``n_frames``.
    min_frames : int, optional
        Shortest series accepted (after resampling); shorter than a window but at least this
        long is padded with each region's mean. Default: our checkpoint's, else half a window.
    normalization : {"auto", "global_zscore", "roi_zscore", "robust"} or None, default="auto"
        Scaling of each window. ``"auto"``: what our checkpoint was trained with (with its
        statistics), ``"global_zscore"`` for research weights.
    batch_size : int, default=32
        Windows per forward pass.
    device : str or torch.device, default="auto"
        ``"auto"``: CUDA if available, else CPU.
    precision : {"auto", "fp32", "bf16"}, default="auto"
        ``"auto"``: bf16 autocast on CUDA, float32 on CPU.
    data_dir : str or path-like, optional
        Cache folder for ``weights="ukbiobank"`` (else ``BRAINJEPA_SK_DATA`` or
        ``~/brainjepa_sk_data``).

    Attributes
    ----------
    encoder_ : BrainEncoder
        The frozen encoder (on the CPU; a copy runs on ``device``).
    preprocessor_ : Preprocessor
        The fitted preprocessing.
    embedding_dim_ : int
        Width of the encoder's tokens.
    n_features_in_ : int
        Number of regions.
    feature_names_in_ : ndarray of str
        Region names, when fitted on DataFrames with string columns.
    """

    def __init__(
        self,
        weights="ukbiobank",
        *,
        gradients=None,
        num_heads=None,
        pooling="mean",
        final_norm=True,
        t_r=None,
        model_t_r="auto",
        n_frames="auto",
        window="auto",
        stride=None,
        min_frames=None,
        normalization="auto",
        batch_size=32,
        device="auto",
        precision="auto",
        data_dir=None,
    ):
        self.weights = weights
        self.gradients = gradients
        self.num_heads = num_heads
        self.pooling = pooling
        self.final_norm = final_norm
        self.t_r = t_r
        self.model_t_r = model_t_r
        self.n_frames = n_frames
        self.window = window
        self.stride = stride
        self.min_frames = min_frames
        self.normalization = normalization
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.data_dir = data_dir

    def _fitted_encoder(self):
        return self.encoder_

    def _load(self):
        """-> (encoder, saved preprocessing dict or None, model TR or None, training frames)."""
        weights = self.weights
        if isinstance(weights, torch.nn.Module):
            if isinstance(weights, BrainJEPA):
                encoder, config = weights.target_encoder, weights.config
                frames = None if config["n_patches"] is None else config["n_patches"] * config["patch_size"]
            elif isinstance(weights, BrainEncoder):
                encoder, frames = weights, None
            else:
                raise TypeError(
                    f"weights must be a BrainJEPA or BrainEncoder module, got {type(weights).__name__}"
                )
            encoder = copy.deepcopy(encoder).cpu()
            return encoder, None, None, frames
        model_t_r = None
        if isinstance(weights, str) and weights == "ukbiobank":
            from .datasets import fetch_ukbiobank_weights

            paths = fetch_ukbiobank_weights(data_dir=self.data_dir)
            weights, gradients, model_t_r = paths["checkpoint"], paths["gradients"], UKBIOBANK_T_R
        else:
            gradients = self.gradients
        if not isinstance(weights, (str, Path)):
            raise TypeError(
                "weights must be 'ukbiobank', a checkpoint path or a torch module, "
                f"got {type(weights).__name__}"
            )
        if not Path(weights).is_file():
            raise FileNotFoundError(f"weights file not found: {weights}")
        if _is_our_checkpoint(weights):
            loaded = load_checkpoint(weights)
            config = loaded.model.config
            frames = None if config["n_patches"] is None else config["n_patches"] * config["patch_size"]
            pre = loaded.preprocessing or None
            t_r = pre.get("target_t_r") if pre else None
            return loaded.model.target_encoder, pre, t_r, frames
        if gradients is None:
            raise ValueError(
                f"{weights} is a research checkpoint: pass the gradient matrix it was trained "
                "with as gradients= (a CSV/NPY path or an array)"
            )
        model = load_research_checkpoint(weights, gradients, num_heads=self.num_heads)
        frames = model.config["n_patches"] * model.config["patch_size"]
        return model.target_encoder, None, model_t_r, frames

    def fit(self, X, y=None):
        """Load the weights and fit the preprocessing on the training subjects.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions) or list of 2-D arrays
            Training subjects' ROI time series.
        y : None
            Ignored.

        Returns
        -------
        self
        """
        check_pooling(self.pooling)
        check_final_norm(self.final_norm)
        if isinstance(self.batch_size, bool) or int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        resolve_autocast(self.precision, resolve_device(self.device))  # checks both
        with restore_on_error(self):
            subjects = validate_subjects(X, estimator=self, reset=True)
            encoder, saved, saved_t_r, frames = self._load()
            check_n_regions(
                self.n_features_in_, encoder.n_regions, what="built for",
                n_timepoints=len(subjects[0]), name=type(self).__name__,
            )
            n_frames = frames if self.n_frames == "auto" else self.n_frames
            if n_frames is None:
                raise ValueError("the model does not say its window length: set n_frames")
            check_pooling(self.pooling, int(n_frames) // encoder.patch_size)
            model_t_r = saved_t_r if self.model_t_r == "auto" else self.model_t_r
            if self.t_r is not None and model_t_r is None:
                warnings.warn(
                    f"t_r={self.t_r} is ignored: the model's TR is unknown, so the series are "
                    "not resampled; set model_t_r to the TR the model was trained at",
                    stacklevel=3,
                )
            normalization = self.normalization
            if normalization == "auto":
                normalization = saved["normalization"] if saved else "global_zscore"
            # Our checkpoints carry their preprocessing: what the user leaves at its default is
            # taken from the file, so embedding repeats the pretraining preprocessing exactly.
            saved = saved or {}
            window = self.window if self.window != "auto" else saved.get("window", "center")
            if window not in WINDOW_STRATEGIES:
                raise ValueError(
                    f"window must be 'auto' or one of {WINDOW_STRATEGIES}, got {self.window!r}"
                )
            options = dict(
                n_frames=int(n_frames),
                t_r=self.t_r,
                target_t_r=model_t_r,
                window=window,
                stride=self.stride if self.stride is not None else saved.get("stride"),
                min_frames=(
                    self.min_frames if self.min_frames is not None else saved.get("min_frames")
                ),
            )
            if saved.get("normalization") == normalization and "n_frames" in saved:
                # our checkpoint's own scaling, with the statistics learned at pretraining
                preprocessor = Preprocessor.from_dict({**saved, **options})
            else:
                preprocessor = Preprocessor(normalization=normalization, **options).fit(subjects)
            self.encoder_ = encoder.eval().requires_grad_(False)
            self.preprocessor_ = preprocessor
            self.embedding_dim_ = encoder.embed_dim
            self.__dict__.pop("_device_cache", None)
        return self
