"""``BrainJEPAEmbedder``: frozen Brain-JEPA features for scikit-learn pipelines."""

from __future__ import annotations

from collections.abc import Iterator

from sklearn.base import BaseEstimator

from . import preprocessing
from ._base import (
    EMBEDDING_CONSTRAINTS,
    POSITIVE_INT,
    WEIGHTS_CONSTRAINTS,
    WEIGHTS_PARAMETERS,
    WEIGHTS_PREPROCESSING_PARAMETERS,
    EmbeddingTransformMixin,
    NestedParamsMixin,
    check_parameters,
    check_pooling,
    fit_then_transform,
    preprocessor_for_subjects,
    record_validated,
    resolve_device,
    resolve_estimator_weights,
    restore_on_error,
)
from .validation import validate_subjects

__all__ = ["BrainJEPAEmbedder"]


class BrainJEPAEmbedder(NestedParamsMixin, EmbeddingTransformMixin, BaseEstimator):
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
        preprocessing: a pretrainer's, or a fine-tuner's ``save``) or a research checkpoint
        (then ``gradients`` is required). A module: a ``BrainJEPA`` (its target encoder is
        used) or a ``BrainEncoder``, copied in float32 whatever its dtype (``precision`` sets
        the compute). A fine-tuner's
        ``module_.encoder`` carries the fine-tuner's preprocessing and region names: the
        settings left at ``"auto"`` take them, as they take a checkpoint's.
    gradients : str, path-like or array-like of shape (n_regions, n_components), optional
        Gradient matrix of a research checkpoint given by path. A DataFrame indexed by region
        names records them: X's columns are checked against them (see ``region_names_``).
    num_heads : int, optional
        Attention heads of a research checkpoint (default: those of the ViT size of its
        width, see :func:`~brainjepa_sk.checkpoint.load_research_checkpoint`).
    pooling : {"mean", "roi", "roi_std", "connectivity", "lagged", "tokens"}, default="mean"
        ``"mean"``: mean over all tokens (``embedding_dim`` features); ``"roi"``: each region's
        mean over time patches, flattened (``n_regions * embedding_dim`` features);
        ``"roi_std"``: each region's standard deviation over time patches, same layout
        (statistics pooling: how much each region's representation varies within a window,
        which reads second-order, dynamic structure that means average away; needs at least
        two time patches per window); ``"connectivity"``: the correlation between every two
        regions of their token features (each region's ``n_patches * embedding_dim`` values in
        a window as its signal), upper triangle row by row (the pairs of
        ``numpy.triu_indices(n_regions, k=1)``, another order than nilearn's
        ``sym_matrix_to_vec``), averaged over windows (``n_regions * (n_regions - 1) / 2``
        features); ``"lagged"``: the lag-one (one time patch) cross-correlation of those
        standardised signals for every ordered pair of regions, averaged over windows
        (``n_regions ** 2`` features; asymmetric, so it keeps the direction of time:
        ``{a}_{b}_lag1`` pairs region ``a`` with region ``b`` one patch earlier, and is large
        when ``b`` leads ``a``); ``"tokens"``: no pooling, ``transform``
        returns one ``(n_samples, n_regions)`` array per subject (those signals, window after
        window), for nilearn's ``ConnectivityMeasure`` (e.g. ``kind="tangent"``).
    final_norm : bool, default=True
        Pool the encoder's output, after its final LayerNorm (the research model's features).
        ``False`` pools the last block's tokens before that LayerNorm. The LayerNorm rescales
        every token to unit spread over its features, which divides out how strongly the
        signal drives the token; ``pooling="roi_std"`` reads exactly that, and small
        pretrained models keep more of it without the LayerNorm (see the user guide on
        pretraining).
    t_r : float, optional
        TR of the input in seconds. When given, and the model's TR is known, series are
        resampled to the model's TR. It describes the data, so it is never taken from a
        checkpoint: weights pretrained (or fine-tuned: a fine-tuner's encoder carries the
        fine-tuner's TRs) on series resampled to another TR warn when it is not set. Over
        20 s (milliseconds?), it is used with a warning, as is ``model_t_r``.
    model_t_r : "auto" or float or None, default="auto"
        TR the model expects. ``"auto"``: from our checkpoints; 2.205 s for ``"ukbiobank"``;
        unknown (no resampling) otherwise. Another TR than the one the weights record is
        used, with a warning (the input's TR is ``t_r``).
    n_frames : "auto" or int, default="auto"
        Frames per window. ``"auto"``: the length the model was trained on (a fine-tuner's
        ``module_.encoder``: its fine-tuning windows'; another ``BrainEncoder`` module, or a
        ``BrainJEPA`` built without ``n_patches``, does not say it: give ``n_frames`` then). A
        window longer than any the model was trained on is used with a warning: its later
        time patches get positions the model never saw (for a fine-tuned encoder, the longest
        of its pretraining and fine-tuning windows, which may be longer than ``"auto"``'s; for
        a linear probe's, frozen, those it was trained on before the probe).
    window : {"auto", "center", "first", "sliding"}, default="auto"
        Which frames of a longer series are used; ``"sliding"`` averages windows every
        ``stride`` frames. ``"auto"``: what our checkpoint was pretrained with, else
        ``"center"``.
    stride : int, optional
        Step of the sliding windows. Default: our checkpoint's (when ``n_frames`` is its window
        length), else ``n_frames``.
    min_frames : int, optional
        Shortest series accepted (after resampling); shorter than a window but at least this
        long is padded with each region's mean. Default: our checkpoint's (when ``n_frames`` is
        its window length), else half a window.
    normalization : {"auto", "global_zscore", "roi_zscore", "robust"} or None, default="auto"
        Scaling of each window. ``"auto"``: what our checkpoint was trained with (with its
        statistics), ``"global_zscore"`` for research weights. Naming our checkpoint's own
        scaling is the same as ``"auto"``: its ``"robust"`` statistics are the pretraining
        data's (a fine-tuned encoder's: its fine-tuner's), not relearned (``fit`` and
        ``transform`` warn when they leave the subjects they are given far above unit scale:
        series scaled otherwise than the data they were learned from);
        another scaling is fitted on the subjects given to ``fit``.
    constant_regions : {"error", "zero"}, default="error"
        A region whose signal is constant within a subject (outside the scan's field of view,
        say) carries no signal, and is refused by default. The weights fix the atlas, so such
        a region cannot be left out: ``"zero"`` accepts it and gives it to the model as 0
        after normalization (the level of a z-scored window's mean), the ``"global_zscore"``
        statistics taken over the other regions (see
        :class:`~brainjepa_sk.preprocessing.Preprocessor`). It acts window by window: a region
        constant within a window only (flat over part of the scan) is 0 in that window too,
        where ``"error"``, which refuses only a region constant over the whole scan, scales it
        as the others. The model then sees a region without activity, a pattern it did not
        meet in pretraining: check that the results do not hinge on it (e.g. with and without
        the subjects concerned).
    batch_size : int, default=32
        Windows per forward pass.
    device : str or torch.device, default="auto"
        ``"auto"``: CUDA if available, else CPU.
    precision : {"auto", "fp32", "bf16"}, default="auto"
        ``"auto"``: bf16 autocast on CUDA, float32 on CPU.
    data_dir : str or path-like, optional
        Cache folder for ``weights="ukbiobank"`` (else ``BRAINJEPA_SK_DATA`` or
        ``~/brainjepa_sk_data``): the folder above the ``brainjepa_ukbiobank/`` subfolder
        that holds the files.

    Attributes
    ----------
    encoder_ : BrainEncoder
        The frozen encoder (on the CPU; a copy runs on ``device``). Loaded by ``fit``:
        ``transform`` and a pickle of the fitted embedder need no weights file.
    preprocessor_ : Preprocessor
        The fitted preprocessing.
    embedding_dim_ : int
        Width of the encoder's tokens.
    n_features_in_ : int
        Number of regions.
    feature_names_in_ : ndarray of str
        Region names, when fitted on DataFrames with string columns.
    region_names_ : list of str or None
        The regions the weights were pretrained on, when their checkpoint recorded them (or
        the index of a gradient DataFrame): input with names (DataFrames, files with a header)
        must have them in this order. Fitted on arrays, ``get_feature_names_out`` names the
        regions by them.
    """

    # what an embedder pickled before the option existed behaves as (its __dict__ lacks it)
    constant_regions = "error"

    # the weights are loaded at fit, so a new weights, gradients or num_heads needs a refit
    _FROZEN_AT_FIT = (*WEIGHTS_PARAMETERS, *WEIGHTS_PREPROCESSING_PARAMETERS)

    # weights given, a user may take the embedder for ready: its fit reads them
    _not_fitted_message = (
        "This %(name)s instance is not fitted yet: its fit(X) loads the weights and checks X's "
        "regions against them (it trains nothing). Call fit(X) or fit_transform(X) before "
        "using it.")

    _parameter_constraints = {
        **EMBEDDING_CONSTRAINTS,
        **WEIGHTS_CONSTRAINTS,
        "batch_size": POSITIVE_INT,
    }

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
        constant_regions="error",
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
        self.constant_regions = constant_regions
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.data_dir = data_dir

    def _fitted_encoder(self):
        return self.encoder_

    def _resolve(self, subjects=None):
        return resolve_estimator_weights(self, subjects)

    def fit_transform(self, X, y=None, **fit_params):
        """Fit to ``X``, then transform it (an iterator ``X`` is read into a list first).

        ``X`` is checked once, by ``fit``: its transform takes the subjects so checked, with
        the checks that ``transform`` makes against the fit (the same errors and warnings as
        ``fit(X).transform(X)``, but for those of the check of ``X`` itself, given once),
        without reading files or converting arrays again for them. The warning that a
        checkpoint's robust statistics leave the series far above unit scale is decided once,
        by the transform, from the first subjects as it scales them: ``fit`` alone reads them
        for it.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Subjects' ROI time series; any iterable of subjects, a generator included.
        y : None
            Ignored.
        **fit_params : dict
            Further parameters of ``fit``.

        Returns
        -------
        X_new : ndarray or list of ndarray
            What ``transform`` returns for ``X``.
        """
        if isinstance(X, Iterator):  # fit would use it up, leaving transform none
            X = list(X)
        # an error in the block (fit's; transform's refusal of its output before it scales a
        # series, pooling="tokens" with pandas output, which fit takes) decides the deferred
        # warning first, as fit alone warns before its error
        with fit_then_transform():
            with preprocessing._scale_check_deferred():
                self.fit(X, y, **fit_params)
                self._check_output_container()
            return self.transform(X)

    def fit(self, X, y=None):
        """Load the weights and fit the preprocessing on the training subjects.

        Parameters
        ----------
        X : array-like of shape (n_subjects, n_timepoints, n_regions), list of 2-D arrays or files
            Training subjects' ROI time series.
            Files are a glob or a list of paths (see :mod:`brainjepa_sk.files`).
        y : None
            Ignored.

        Returns
        -------
        self : BrainJEPAEmbedder
            The fitted estimator.
        """
        check_parameters(self)
        resolve_device(self.device)  # a device that exists
        with restore_on_error(self):
            subjects = validate_subjects(X, estimator=self, reset=True, lazy=True)
            resolved = self._resolve(subjects)
            encoder = resolved.encoder
            preprocessor, n_patches = preprocessor_for_subjects(self, resolved, subjects)
            check_pooling(self.pooling, n_patches)
            self.encoder_ = encoder.eval().requires_grad_(False)
            self.region_names_ = resolved.region_names
            # transform does not ask for a refit when set_params changes one of them
            self._carried_by_weights_ = resolved.carried
            self._set_preprocessor(preprocessor)
            self.embedding_dim_ = encoder.embed_dim
            self.__dict__.pop("_device_cache", None)
        record_validated(self, X, subjects)  # for the transform of fit_transform
        return self
