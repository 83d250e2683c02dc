"""Synthetic ROI time series with phenotypes, grounded in a real group connectome.

:func:`make_brain_dynamics` simulates subjects' parcellated fMRI from the Human Connectome
Project group connectivity matrices that BrainSpace ships (Schaefer 100/200/300/400). Age and a
binary group label act on the subjects' connectivity *and* on the intrinsic timescales of some
regions, so static functional connectivity sees only part of the signal.
"""

from __future__ import annotations

import numbers
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.signal import lfilter
from scipy.stats import gamma
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import validate_params

from ..validation import POSITIVE, Range

__all__ = ["load_group_connectivity", "make_brain_dynamics"]

_ATLAS_SIZES = (100, 200, 300, 400)
_MIN_REGIONS = 8

# --- constants of the generative model (see the docstring of make_brain_dynamics) -------------
_AGE_RANGE = (8.0, 80.0)  # years, uniform
_N_SITES = 3
_N_NETWORKS = 7  # communities found in the group matrix
_EIG_FLOOR = 1e-2  # eigen-clipping floor (the mean eigenvalue of a correlation matrix is 1)
_AGE_WITHIN = -0.25  # Fisher-z change of within-network-A coupling from age 8 to 80
_AGE_BETWEEN = 0.25  # Fisher-z change of network A - network B coupling from age 8 to 80
_GROUP_BETWEEN = 0.15  # Fisher-z change of network C - network D coupling in group 1
_GROUP_WITHIN = -0.1  # Fisher-z change of within-network-D coupling in group 1
_WISHART_DOF = 200  # subject heterogeneity: Wishart degrees of freedom (at least n_regions + 50)
_TAU_RANGE = (2.0, 6.0)  # seconds, baseline intrinsic timescales along the principal axis
_TAU_JITTER = 0.15  # sd of log-timescale, per subject and region
_TAU_AGE = 0.9  # log-timescale increase from age 8 to 80 in the age regions (x2.5)
_TAU_GROUP = 0.55  # log-timescale increase in group 1 in the group regions (x1.7)
_TIMESCALE_FRACTION = 0.25  # fraction of regions whose timescales carry each phenotype
_SITE_GAIN = (1.0, 0.85, 1.2)  # global signal gain per site
_SITE_GAIN_JITTER = 0.15  # sd of the log gain per site and region
_SITE_NOISE = (1.0, 1.2, 0.9)  # sd of the white measurement noise per site (signal sd is 1)
_SITE_DRIFT = (0.4, 0.6, 0.5)  # sd of the structured site noise per site
_DRIFT_PHI = 0.95  # autocorrelation of the structured site noise at 1 s (0.95 ** t_r per frame)
_HRF_LENGTH = 32.0  # seconds


def _matrix_dir():
    spec = find_spec("brainspace")
    if spec is None or spec.origin is None:
        raise ImportError(
            "make_brain_dynamics needs the brainspace package (pip install brainspace)"
        )
    return Path(spec.origin).parent / "datasets" / "matrices" / "main_group"


# up to the largest bundled Schaefer atlas
_N_REGIONS = [Range(numbers.Integral, _MIN_REGIONS, _ATLAS_SIZES[-1], closed="both")]


@validate_params({"n_regions": _N_REGIONS}, prefer_skip_nested_validation=True)
def load_group_connectivity(n_regions=100):
    """HCP group connectivity of the first ``n_regions`` regions of a Schaefer atlas.

    Reads BrainSpace's bundled matrix (``schaefer_{n}_mean_connectivity_matrix.csv``, the mean
    functional connectivity of Human Connectome Project subjects) of the smallest Schaefer atlas
    (100, 200, 300 or 400 regions) with at least ``n_regions`` regions, and keeps its first
    ``n_regions`` rows and columns: the matrix of
    ``brainspace.datasets.load_group_fc("schaefer", scale)``, read from BrainSpace's files
    directly because importing ``brainspace.datasets`` loads VTK (seconds, for a CSV file).

    Parameters
    ----------
    n_regions : int, default=100
        Number of regions, 8 to 400.

    Returns
    -------
    numpy.ndarray of shape (n_regions, n_regions)
        The group correlation matrix (float64, unit diagonal).
    """
    n_regions = int(n_regions)
    atlas = next(size for size in _ATLAS_SIZES if size >= n_regions)
    path = _matrix_dir() / f"schaefer_{atlas}_mean_connectivity_matrix.csv"
    if not path.is_file():
        raise FileNotFoundError(f"BrainSpace's group matrix is missing: {path}")
    matrix = np.loadtxt(path, delimiter=",", dtype=np.float64)
    matrix = matrix[:n_regions, :n_regions]
    return (matrix + matrix.T) / 2


def _nearest_correlation(matrix, floor=_EIG_FLOOR):
    """Eigenvalues clipped at ``floor`` (symmetric input), then rescaled to a unit diagonal."""
    values, vectors = np.linalg.eigh(matrix)
    values = np.maximum(values, floor)
    clipped = (vectors * values) @ vectors.T
    scale = 1.0 / np.sqrt(np.diagonal(clipped))
    clipped = clipped * scale[:, None] * scale[None, :]
    np.fill_diagonal(clipped, 1.0)
    return (clipped + clipped.T) / 2


def _as_generator(random_state):
    # None draws from NumPy's global RandomState, as scikit-learn's make_* functions do, so
    # that np.random.seed before the call reproduces the data
    if random_state is None or isinstance(random_state, np.random.RandomState):
        state = check_random_state(random_state)
        return np.random.default_rng(state.randint(0, 2**31 - 1, size=4))
    return np.random.default_rng(random_state)  # a Generator is returned as it is


def _hrf(t_r):
    """Double-gamma haemodynamic response (peak ~5 s, undershoot ~15 s), unit energy."""
    times = np.arange(0.0, _HRF_LENGTH, t_r)
    response = gamma.pdf(times, 6.0) - gamma.pdf(times, 16.0) / 6.0
    return response / np.linalg.norm(response)


def _filtered_variance(phi, hrf):
    """Variance of a unit-variance AR(1) process with coefficient ``phi`` after the HRF filter."""
    taps = len(hrf)
    autocorrelation = np.array([hrf[: taps - k] @ hrf[k:] for k in range(taps)])
    powers = phi[..., None] ** np.arange(taps)
    return autocorrelation[0] + 2 * (powers[..., 1:] * autocorrelation[1:]).sum(-1)


def _structure(group_connectivity):
    """Networks, principal axis and phenotype region sets of a group matrix (no randomness)."""
    n_regions = len(group_connectivity)
    n_networks = int(np.clip(n_regions // 8, 2, _N_NETWORKS))
    # Communities: Ward clustering of the regions' connectivity profiles, largest first.
    labels = fcluster(linkage(group_connectivity, "ward"), n_networks, "maxclust") - 1
    sizes = np.bincount(labels, minlength=labels.max() + 1)
    order = np.lexsort((np.arange(len(sizes)), -sizes))  # by size, then label
    networks = np.argsort(order)[labels]
    n_networks = len(sizes)
    # Principal axis: second eigenvector (the first is the global mode of positive correlations),
    # oriented so that the first region (visual cortex in the Schaefer order) is negative.
    _, vectors = np.linalg.eigh(group_connectivity)
    axis = vectors[:, -2]
    if axis[0] > 0:
        axis = -axis
    rank = np.empty(n_regions)
    rank[np.argsort(axis, kind="stable")] = np.arange(n_regions) / max(n_regions - 1, 1)
    n_timescale = max(2, round(_TIMESCALE_FRACTION * n_regions))
    by_axis = np.argsort(axis, kind="stable")
    return {
        "networks": networks,
        "n_networks": n_networks,
        "principal_axis": axis,
        "axis_rank": rank,
        "age_networks": (0 % n_networks, 1 % n_networks),
        "group_networks": (2 % n_networks, 3 % n_networks),
        "age_regions": np.sort(by_axis[-n_timescale:]),  # transmodal end
        "group_regions": np.sort(by_axis[:n_timescale]),  # unimodal end
    }


def _patterns(structure):
    """Fisher-z connectivity changes per unit of (scaled) age and of group."""
    networks = structure["networks"]
    a, b = structure["age_networks"]
    c, d = structure["group_networks"]
    in_a, in_b, in_c, in_d = (networks == k for k in (a, b, c, d))

    def block(rows, cols):
        out = np.outer(rows, cols).astype(np.float64)
        out = np.maximum(out, out.T)
        np.fill_diagonal(out, 0.0)
        return out

    age = _AGE_WITHIN * block(in_a, in_a) + _AGE_BETWEEN * block(in_a, in_b)
    group = _GROUP_BETWEEN * block(in_c, in_d) + _GROUP_WITHIN * block(in_d, in_d)
    return age, group


@validate_params(
    {
        "n_subjects": [Range(numbers.Integral, 1, None, closed="left")],
        "n_timepoints": [Range(numbers.Integral, 8, None, closed="left")],
        "n_regions": _N_REGIONS,
        "t_r": POSITIVE,
        "random_state": [Range(numbers.Integral, 0, None, closed="left"),
                         np.random.RandomState, np.random.Generator, None],
        "return_params": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_brain_dynamics(
    n_subjects=120,
    n_timepoints=200,
    n_regions=100,
    t_r=2.0,
    random_state=None,
    *,
    return_params=False,
):
    r"""Simulate subjects' ROI time series with age, group and site, from a real connectome.

    The regions are the first ``n_regions`` regions of a Schaefer atlas and their group
    connectivity is the Human Connectome Project mean functional connectivity that BrainSpace
    ships (see :func:`load_group_connectivity`). Each subject gets its own connectivity and its
    own intrinsic timescales; age and group change both, so a model of the dynamics can find
    signal that static functional connectivity does not see.

    Parameters
    ----------
    n_subjects : int, default=120
        Number of subjects.
    n_timepoints : int, default=200
        Frames per subject (at least 8).
    n_regions : int, default=100
        Number of regions, 8 to 400. For 100, 200, 300 or 400 the whole Schaefer atlas of that
        size; otherwise the first ``n_regions`` regions of the next larger one.
    t_r : float, default=2.0
        Repetition time in seconds. Timescales and the haemodynamic response are in seconds, so
        the same subjects are smoother, frame to frame, at a shorter TR.
    random_state : int, numpy.random.Generator, numpy.random.RandomState or None, default=None
        Source of randomness; an int gives the same data on every call. A ``Generator`` or
        ``RandomState`` is drawn from, so successive calls with the same instance give other
        data; ``None`` draws from NumPy's global ``RandomState`` (``np.random.seed`` before
        the call reproduces the data), as scikit-learn's ``make_*`` functions do.
    return_params : bool, default=False
        Also return a dict with the ground truth (see Returns).

    Returns
    -------
    X : list of ndarray of shape (n_timepoints, n_regions)
        One float64 array per subject, time on the first axis (nilearn orientation).
    y : pandas.DataFrame of shape (n_subjects, 3)
        ``"age"`` (float, years, uniform on [8, 80]), ``"group"`` (int 0/1, balanced up to one
        subject) and ``"site"`` (categorical 0, 1, 2, drawn uniformly; a nuisance independent of
        age and group).
    params : dict
        Only with ``return_params=True``. ``group_connectivity`` (the HCP matrix),
        ``connectivity`` (each subject's true correlation matrix of the innovations,
        ``(n_subjects, n_regions, n_regions)``), ``timescales`` (seconds,
        ``(n_subjects, n_regions)``), ``phi`` (the AR(1) coefficients), ``networks`` (community
        of each region) and ``n_networks`` (their number), ``age_networks`` /
        ``group_networks`` (the communities whose coupling carries age / group),
        ``age_regions`` / ``group_regions`` (the regions whose timescales carry age / group),
        ``principal_axis`` and ``axis_rank`` (each region's rank along it, from 0 to 1),
        ``hrf``, ``site_gain`` (the gain of each site and region, ``(3, n_regions)``),
        ``drift`` (each subject's site drift before its spatial map and site scale, unit
        variance, ``(n_subjects, n_timepoints)``).

    Raises
    ------
    ValueError
        For ``n_regions`` outside 8-400, ``n_subjects < 1``, ``n_timepoints < 8``, a
        non-positive ``t_r`` or an unusable ``random_state``.

    See Also
    --------
    load_group_connectivity : The group matrix the subjects are drawn around.

    Notes
    -----
    Generative model, for subject :math:`s` with age :math:`a_s` (scaled to
    :math:`\tilde a_s = (a_s - 8) / 72 \in [0, 1]`), group :math:`g_s \in \{0, 1\}` and site
    :math:`k_s`:

    1. **Group connectivity.** :math:`C_0` is the HCP group matrix. Its regions are split into
       ``n_regions // 8`` communities (at least 2, at most 7) by Ward clustering of their
       connectivity profiles (sorted by size: A, B, C, D, ...; with fewer than four, D is A,
       and so on), and ordered along its principal axis (second eigenvector, oriented so
       that the first, visual, region is at the negative end).
    2. **Phenotypes in connectivity.** In Fisher-z space,
       :math:`Z_s = \operatorname{arctanh}(C_0) + \tilde a_s P_{age} + g_s P_{group}`, where
       :math:`P_{age}` lowers the coupling within community A (-0.25) and raises the coupling
       between A and B (+0.25) (age-related dedifferentiation), and :math:`P_{group}` raises the
       coupling between C and D (+0.15) and lowers it within D (-0.1). :math:`\tanh(Z_s)` is
       made a valid correlation matrix :math:`\bar C_s` by clipping its eigenvalues at 0.01 and
       rescaling to a unit diagonal. The clipping takes back part of the shifts, most of the
       one between A and B: measured in the subjects' Fisher z (60 subjects at the default
       size, seeds 0 to 3), -0.17 to -0.2 within A, +0.01 to +0.05 between A and B, +0.07 to
       +0.1 between C and D, -0.05 to -0.08 within D, and side effects of +0.03 to +0.06
       within B (age) and +0.02 to +0.05 within C (group).
    3. **Subject heterogeneity.** The subject's own connectivity is a Wishart draw around it,
       :math:`\Sigma_s \sim W(\nu, \bar C_s) / \nu` with :math:`\nu = \max(200, R + 50)` degrees
       of freedom for :math:`R` regions (about 0.07 sd per correlation), rescaled to a
       correlation matrix :math:`C_s`.
    4. **Intrinsic timescales.** Region :math:`r` has a baseline timescale
       :math:`\tau_r` from 2 s (unimodal end of the principal axis) to 6 s (transmodal end),
       jittered per subject (log-normal, sd 0.15). Age lengthens the timescales of the 25% of
       regions at the transmodal end, :math:`\log \tau \mathrel{+}= 0.9 \tilde a_s` (2.5 times
       as long at 80 as at 8); group 1 lengthens those of the 25% at the unimodal end,
       :math:`\log \tau \mathrel{+}= 0.55 g_s` (1.7 times as long).
    5. **Latent dynamics.** Neural-like sources follow a region-wise AR(1),
       :math:`z_t = \phi \odot z_{t-1} + \sqrt{1 - \phi^2} \odot e_t` with
       :math:`\phi_r = \exp(-\mathrm{TR} / \tau_r)` and innovations
       :math:`e_t \sim N(0, C_s)` (so :math:`C_s` is the instantaneous coupling; regions with
       different timescales are a little less correlated than :math:`C_s` says).
    6. **Haemodynamics.** Each region's sources are convolved with a double-gamma haemodynamic
       response (gamma densities of shape 6 and 16, ratio 1/6, 32 s long, sampled at the TR)
       and scaled to unit variance (computed exactly from :math:`\phi` and the response). The
       first frames, until the response and the AR(1) reach their steady state, are dropped.
    7. **Site.** The signal of site :math:`k` is scaled by a site gain (1.0, 0.85, 1.2) times a
       site- and region-specific log-normal gain (sd 0.15); a structured site noise is added: a
       slow drift (AR(1), lag-one correlation 0.95 per second) with a site-specific spatial map,
       standard deviation 0.4, 0.6 or 0.5.
    8. **Measurement noise.** White Gaussian noise with site-specific standard deviation
       1.0, 1.2 or 0.9, i.e. a signal-to-noise ratio around one.

    Age is uniform on [8, 80] years, group is a random balanced split, site is uniform over three
    sites, all independent. The age and group signal is thus split between connectivity
    (step 2) and temporal dynamics (step 4); static connectivity picks up the latter only
    weakly, through step 5.

    Examples
    --------
    >>> from brainjepa_sk.datasets import make_brain_dynamics
    >>> X, y = make_brain_dynamics(n_subjects=4, n_timepoints=50, random_state=0)
    >>> len(X), X[0].shape, list(y.columns)
    (4, (50, 100), ['age', 'group', 'site'])
    """
    n_regions, n_subjects, n_timepoints = int(n_regions), int(n_subjects), int(n_timepoints)
    t_r = float(t_r)
    rng = _as_generator(random_state)

    group_connectivity = load_group_connectivity(n_regions)
    structure = _structure(group_connectivity)
    age_pattern, group_pattern = _patterns(structure)
    z_group = np.arctanh(np.clip(group_connectivity, -0.999, 0.999))
    np.fill_diagonal(z_group, 0.0)

    # Phenotypes and site.
    age = rng.uniform(*_AGE_RANGE, size=n_subjects)
    group = rng.permutation(np.arange(n_subjects) % 2)
    site = rng.integers(0, _N_SITES, size=n_subjects)
    age01 = (age - _AGE_RANGE[0]) / (_AGE_RANGE[1] - _AGE_RANGE[0])

    # Connectivity: phenotype shift, then Wishart heterogeneity.
    dof = max(_WISHART_DOF, n_regions + 50)
    connectivity = np.empty((n_subjects, n_regions, n_regions))
    for s in range(n_subjects):
        mean = np.tanh(z_group + age01[s] * age_pattern + group[s] * group_pattern)
        np.fill_diagonal(mean, 1.0)
        mean = _nearest_correlation(mean)
        draws = rng.standard_normal((dof, n_regions)) @ np.linalg.cholesky(mean).T
        sigma = draws.T @ draws / dof
        scale = 1.0 / np.sqrt(np.diagonal(sigma))
        connectivity[s] = sigma * scale[:, None] * scale[None, :]
        np.fill_diagonal(connectivity[s], 1.0)

    # Timescales.
    log_tau = np.log(_TAU_RANGE[0]) + structure["axis_rank"] * np.log(_TAU_RANGE[1] / _TAU_RANGE[0])
    log_tau = log_tau + _TAU_JITTER * rng.standard_normal((n_subjects, n_regions))
    log_tau[:, structure["age_regions"]] += _TAU_AGE * age01[:, None]
    log_tau[:, structure["group_regions"]] += _TAU_GROUP * group[:, None]
    timescales = np.exp(log_tau)
    phi = np.exp(-t_r / timescales)

    # Latent AR(1) sources with correlated innovations, burn-in included.
    hrf = _hrf(t_r)
    settle = max(int(np.ceil(5 * timescales.max() / t_r)), 1)
    n_burn = len(hrf) + settle
    n_total = n_timepoints + n_burn
    chol = np.linalg.cholesky(connectivity)  # (S, R, R)
    innovations = rng.standard_normal((n_subjects, n_total, n_regions)) @ chol.transpose(0, 2, 1)
    innovations *= np.sqrt(1.0 - phi**2)[:, None, :]
    sources = np.empty_like(innovations)
    state = innovations[:, 0] / np.sqrt(1.0 - phi**2)  # start at the stationary variance
    sources[:, 0] = state
    for t in range(1, n_total):
        state = phi * state + innovations[:, t]
        sources[:, t] = state
    bold = lfilter(hrf, [1.0], sources, axis=1)[:, n_burn:]
    bold /= np.sqrt(_filtered_variance(phi, hrf))[:, None, :]

    # Site: gains and structured drift, then white measurement noise.
    site_gain = np.asarray(_SITE_GAIN)[:, None] * np.exp(
        _SITE_GAIN_JITTER * rng.standard_normal((_N_SITES, n_regions))
    )
    site_maps = rng.standard_normal((_N_SITES, n_regions))
    site_maps /= np.sqrt((site_maps**2).mean(1, keepdims=True))
    drift_phi = _DRIFT_PHI**t_r
    drift = lfilter(
        [np.sqrt(1 - drift_phi**2)],
        [1.0, -drift_phi],
        rng.standard_normal((n_subjects, n_total)),
        axis=1,
    )[:, n_burn:]
    noise = rng.standard_normal((n_subjects, n_timepoints, n_regions))

    X = []
    for s in range(n_subjects):
        k = site[s]
        x = (
            bold[s] * site_gain[k]
            + _SITE_DRIFT[k] * drift[s][:, None] * site_maps[k]
            + _SITE_NOISE[k] * noise[s]
        )
        X.append(np.ascontiguousarray(x, dtype=np.float64))

    y = pd.DataFrame(
        {
            "age": age,
            "group": group.astype(np.int64),
            "site": pd.Categorical(site, categories=list(range(_N_SITES))),
        }
    )
    if not return_params:
        return X, y
    params = {
        "group_connectivity": group_connectivity,
        "connectivity": connectivity,
        "timescales": timescales,
        "phi": phi,
        "hrf": hrf,
        "site_gain": site_gain,
        "drift": drift,
        **structure,
    }
    return X, y, params
