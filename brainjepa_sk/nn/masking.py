"""Spatiotemporal masking: Cross-ROI (alpha), Cross-Time (beta) and Double-Cross (gamma) targets.

Tokens live on a region x time-patch grid (``R x P``; token index ``r * P + p``). For each batch
the sampler draws the *sizes* once (on the host, so shapes are known without a device round
trip) and the *positions* per sample, vectorized, on the sampler's device:

1. an observation block: ``round(R * u)`` random regions over a contiguous span of
   ``round(P * v)`` time patches, ``u, v ~ U(observation_scale)``, the span shorter than ``P``;
2. alpha: ``round(R * U(alpha_region_scale))`` random regions (out of all regions) over a
   contiguous sub-span of the observation span of ``round(P * U(alpha_time_scale))`` patches;
3. at each temporal edge a span of ``round(P * U(edge_time_scale))`` patches (at most the
   first / last ``edge_fraction`` of the patches), starting at the first / ending at the last
   patch, so that the context is one contiguous span and edge targets lie before or after it;
   there, beta covers a fraction
   ``U(edge_region_scale)`` of the regions that stay visible in the context, gamma the same
   fraction of the regions that do not;
4. context = observation regions minus alpha regions, over the observation span minus the two
   edge spans. Targets = alpha | beta | gamma. They never overlap the context.

Equal token counts within a batch: every sample keeps a random subset of its context (and
target) tokens of one size. That size is a lower bound computed from the batch's sizes (the
number of alpha regions inside the observation block is drawn once per batch, from its exact
hypergeometric law, so the number of visible regions is the same for every sample), so no
device-to-host synchronisation is needed and nothing depends on region order.
"""

from __future__ import annotations

import hashlib
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from ._checks import check_count, is_real, with_article

__all__ = ["SpatiotemporalMaskSampler", "MaskBatch", "UnsatisfiableMaskingError", "CONTEXT",
           "ALPHA", "BETA", "GAMMA"]

#: Labels of the diagnostic grid (0 means hidden: neither context nor target).
CONTEXT, ALPHA, BETA, GAMMA = 1, 2, 3, 4


@dataclass
class MaskBatch:
    """Masks of one batch.

    Parameters
    ----------
    context_idx : torch.Tensor
        ``(batch, n_context)`` int64 token indices, sorted per sample.
    target_idx : torch.Tensor
        ``(batch, n_target)`` int64 token indices, sorted per sample.
    target_kind : torch.Tensor
        ``(batch, n_target)`` int8: ``ALPHA``, ``BETA`` or ``GAMMA`` of each target token.
    sizes : dict
        The batch's sizes drawn on the host (``n_obs`` regions and ``n_time`` patches of the
        observation block, ``n_alpha`` regions of which ``n_alpha_in`` observed, ``n_alpha_time``,
        ``n_left`` / ``n_right`` edge patches, ``n_beta`` / ``n_gamma`` regions per edge,
        ``n_context`` / ``n_target`` tokens kept per sample).
    grid : torch.Tensor or None
        ``(batch, n_regions, n_patches)`` int8 labels before equalising counts (0 hidden,
        ``CONTEXT``, ``ALPHA``, ``BETA``, ``GAMMA``); ``None`` unless asked for.
    """

    context_idx: torch.Tensor
    target_idx: torch.Tensor
    target_kind: torch.Tensor
    sizes: dict
    grid: torch.Tensor | None = None

    def take(self, samples):
        """The masks of some samples of the batch (an index, slice or index tensor).

        Parameters
        ----------
        samples : int, slice or torch.Tensor
            Which samples, as a tensor index along the batch axis (an ``int`` drops that axis).

        Returns
        -------
        MaskBatch
            ``context_idx``, ``target_idx``, ``target_kind`` and ``grid`` (when present) of
            those samples; ``sizes`` is the same dict.
        """
        return MaskBatch(
            context_idx=self.context_idx[samples],
            target_idx=self.target_idx[samples],
            target_kind=self.target_kind[samples],
            sizes=self.sizes,
            grid=None if self.grid is None else self.grid[samples],
        )


def _check_range(name, value):
    # a single number (e.g. masking__alpha_region_scale=0.5 in a grid) or a triple would
    # otherwise fail with Python's unpacking TypeError, which names no option
    try:
        low, high = value
        if not (is_real(low) and is_real(high)):  # float() would take "0.1" and True
            raise TypeError
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of fractions, with 0 <= low <= "
                         f"high <= 1, got {value!r}") from None
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"{name} must be (low, high) with 0 <= low <= high <= 1, got {value}")
    return low, high


def _check_edge_fraction(name, value):
    if not is_real(value) or not 0.0 < value <= 0.5:
        raise ValueError(f"{name} must be in (0, 0.5], got {value!r}")
    return float(value)


def _check_min_keep(name, value):
    # int() would pass 2.5 as 2, and 0 or less would let a context be empty
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an int >= 1 (the fewest context tokens), got "
                         f"{value!r}")
    return int(value)


def _check_flag(name, value):
    # bool() would take any string, "no" or "False" included, as True
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_quantile(name, value):
    if not is_real(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


_OPTION_CHECKS = {
    "observation_scale": _check_range, "alpha_region_scale": _check_range,
    "alpha_time_scale": _check_range, "edge_time_scale": _check_range,
    "edge_region_scale": _check_range, "edge_fraction": _check_edge_fraction,
    "min_keep": _check_min_keep, "static_shapes": _check_flag,
    "count_quantile": _check_quantile,
}


def _checked_options(**options):
    """The sampler's options that do not depend on the grid, checked and converted.

    Parameters
    ----------
    **options
        Any of the keyword arguments of :class:`SpatiotemporalMaskSampler` but
        ``n_regions``, ``n_patches``, ``seed`` and ``device``.

    Returns
    -------
    dict
        The same options as floats, pairs of floats, an int (``min_keep``) or a bool
        (``static_shapes``).

    Raises
    ------
    ValueError
        Naming the first option of the wrong kind or out of its range. A name that is no
        such option raises a ``KeyError``.
    """
    return {name: _OPTION_CHECKS[name](name, value) for name, value in options.items()}


class UnsatisfiableMaskingError(ValueError):
    """Masking options that too few mask size draws on the grid satisfy (the fewest context
    tokens, the fixed counts of ``static_shapes=True``): batches could not be drawn."""


class SpatiotemporalMaskSampler:
    """Draw Brain-JEPA context and target masks for batches of ``R x P`` token grids.

    Parameters
    ----------
    n_regions : int
        Number of regions ``R``.
    n_patches : int
        Number of time patches ``P`` (at least 2).
    observation_scale : (float, float), default=(0.84, 1.0)
        Range of the fraction of regions and of time patches in the observation block.
    alpha_region_scale : (float, float), default=(0.45, 0.6)
        Range of the fraction of regions of the Cross-ROI target (at least one region: the
        target is never empty).
    alpha_time_scale : (float, float), default=(0.2, 0.6)
        Range of the fraction of time patches of the Cross-ROI target (at least one patch).
    edge_time_scale : (float, float), default=(0.0, 0.4)
        Range of the fraction of time patches of each edge (Cross-Time / Double-Cross) span,
        capped at the edge zone.
    edge_fraction : float, default=0.3
        Width of each edge zone as a fraction of ``P`` (at least one patch).
    edge_region_scale : (float, float), default=(0.15, 0.3)
        Range of the fraction of visible (beta) or hidden (gamma) regions in the edge targets.
    min_keep : int, default=4
        Fewest context tokens a sample may keep (at least 1); sizes are redrawn until it
        holds.
    static_shapes : bool, default=True
        Keep the same numbers of context and target tokens in every batch (``n_context``,
        ``n_target``), so that every training step has the same tensor shapes (what
        ``torch.compile`` and CUDA graphs need). They are quantiles (``count_quantile``) of the
        per-batch counts of the configuration; sizes whose batch cannot keep them are redrawn
        (about one draw in five at the default quantile). ``False``: the research code's way,
        the counts of each batch's draw.
    count_quantile : float, default=0.1
        Quantile of the per-batch counts kept with ``static_shapes``: higher keeps more tokens
        but redraws more sizes (which favours larger contexts and targets).
    seed : int, default=0
        Seed of the sampler's generators: same seed, same masks.
    device : str or torch.device, default="cpu"
        Where masks are drawn and returned.

    Attributes
    ----------
    n_context, n_target : int or None
        Context and target tokens kept per sample in every batch (None unless
        ``static_shapes``).

    Notes
    -----
    All randomness comes from the sampler's own generators: sizes from a CPU
    ``torch.Generator`` (they decide tensor shapes, so they must be known on the host), positions
    from a generator on ``device``; on the CPU both are the same generator. Use
    :meth:`state_dict` / :meth:`load_state_dict` to resume a stream of masks exactly.
    """

    _MAX_TRIES = 1000
    #: Size draws that decide the fixed token counts of ``static_shapes=True``.
    COUNT_DRAWS = 1000
    #: Fewest of those draws that must keep both counts: at 2%, a batch fails its
    #: ``_MAX_TRIES`` redraws with probability below 1e-8.
    MIN_ACCEPTANCE = 0.02

    def __init__(
        self,
        n_regions,
        n_patches,
        *,
        observation_scale=(0.84, 1.0),
        alpha_region_scale=(0.45, 0.6),
        alpha_time_scale=(0.2, 0.6),
        edge_time_scale=(0.0, 0.4),
        edge_fraction=0.3,
        edge_region_scale=(0.15, 0.3),
        min_keep=4,
        static_shapes=True,
        count_quantile=0.1,
        seed=0,
        device="cpu",
    ):
        # int() would take 12.5 regions as 12 and "10" patches as 10
        for name, value in (("n_regions", n_regions), ("n_patches", n_patches)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool):
                raise ValueError(f"{name} must be an int >= 2, got {value!r}")
        self.n_regions = int(n_regions)
        self.n_patches = int(n_patches)
        if self.n_regions < 2 or self.n_patches < 2:
            raise ValueError(
                f"masking needs at least 2 regions and 2 time patches, got "
                f"n_regions={n_regions}, n_patches={n_patches}"
            )
        self.__dict__.update(_checked_options(
            observation_scale=observation_scale, alpha_region_scale=alpha_region_scale,
            alpha_time_scale=alpha_time_scale, edge_time_scale=edge_time_scale,
            edge_region_scale=edge_region_scale, edge_fraction=edge_fraction,
            min_keep=min_keep, static_shapes=static_shapes, count_quantile=count_quantile))
        self.edge_width = min(max(1, round(self.n_patches * self.edge_fraction)),
                              self.n_patches // 2)
        self.device = torch.device(device)
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):  # int() cut 1.5
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.seed = int(seed)
        if self.static_shapes:
            self.n_context, self.n_target = self._fixed_counts()
        else:  # refused now, not at a batch in the middle of training
            self.n_context = self.n_target = None
            self._check_acceptance(self.min_keep, 1)
        self._host_gen = torch.Generator().manual_seed(self.seed)
        if self.device.type == "cpu":
            self._device_gen = self._host_gen
        else:
            self._device_gen = torch.Generator(device=self.device).manual_seed(self.seed)

    # -- state -------------------------------------------------------------------------------
    def state_dict(self):
        """Generator states, to resume the exact stream of masks.

        Returns
        -------
        dict
            ``{"host": ByteTensor}`` plus ``"device"`` when the device generator is separate.
        """
        state = {"host": self._host_gen.get_state()}
        if self._device_gen is not self._host_gen:
            state["device"] = self._device_gen.get_state()
        return state

    def load_state_dict(self, state):
        """Restore generator states saved by :meth:`state_dict`.

        Parameters
        ----------
        state : dict
            What :meth:`state_dict` returned.
        """
        self._host_gen.set_state(state["host"])
        if self._device_gen is not self._host_gen:
            if "device" in state:
                self._device_gen.set_state(state["device"])
            else:  # saved on the CPU, resumed on a GPU: a seed drawn from the saved host state
                digest = hashlib.sha256(state["host"].numpy().tobytes()).digest()
                self._device_gen.manual_seed(int.from_bytes(digest[:8], "little") >> 1)

    # -- sizes (host) ------------------------------------------------------------------------
    @staticmethod
    def _uniform(low_high, generator):
        low, high = low_high
        return low + (high - low) * torch.rand((), generator=generator).item()

    def _draw_sizes(self, generator):
        R, P, E = self.n_regions, self.n_patches, self.edge_width

        def uniform(low_high):
            return self._uniform(low_high, generator)

        n_obs = min(max(round(R * uniform(self.observation_scale)), 1), R)
        n_time = min(max(round(P * uniform(self.observation_scale)), 1), P - 1)
        n_alpha = min(max(round(R * uniform(self.alpha_region_scale)), 1), R)
        # How many alpha regions fall inside the observation block: hypergeometric, drawn once.
        n_alpha_in = int((torch.randperm(R, generator=generator)[:n_alpha] < n_obs).sum())
        n_alpha_time = min(max(round(P * uniform(self.alpha_time_scale)), 1), n_time)
        n_left = min(round(P * uniform(self.edge_time_scale)), E)
        n_right = min(round(P * uniform(self.edge_time_scale)), E)
        fraction = uniform(self.edge_region_scale)
        n_visible = n_obs - n_alpha_in
        n_hidden = R - n_visible
        n_beta = round(fraction * n_visible)
        n_gamma = round(fraction * n_hidden)
        # Fewest context time patches over all observation-span starts (edge spans are fixed at
        # the ends): the count every sample of the batch can keep.
        n_context_time = self._context_time(n_time, n_left, n_right)
        n_context = n_visible * max(n_context_time, 0)
        # Gamma regions may be alpha regions: an edge span can overlap the alpha time span.
        n_target = n_alpha * n_alpha_time
        for n_edge in (n_left, n_right):
            overlap = min(n_gamma, n_alpha) * min(n_edge, n_alpha_time)
            n_target += n_beta * n_edge + max(n_gamma * n_edge - overlap, 0)
        return dict(
            n_obs=n_obs,
            n_time=n_time,
            n_alpha=n_alpha,
            n_alpha_in=n_alpha_in,
            n_alpha_time=n_alpha_time,
            n_left=n_left,
            n_right=n_right,
            n_beta=n_beta,
            n_gamma=n_gamma,
            n_context=n_context,
            n_target=n_target,
        )

    def _context_time(self, n_time, n_left, n_right):
        """Fewest time patches of an observation span of ``n_time`` left by edge spans of
        ``n_left`` and ``n_right`` patches, over all its starts (0 or less: none)."""
        P = self.n_patches
        return min(n_time - max(n_left - start, 0) - max(start + n_time - (P - n_right), 0)
                   for start in range(P - n_time + 1))

    def _fixed_counts(self):
        """Context and target tokens that every batch keeps (``static_shapes=True``).

        The ``count_quantile`` quantiles of the per-batch counts over ``COUNT_DRAWS`` size draws
        from a generator with a fixed seed, so that they depend on the configuration only.
        """
        generator = torch.Generator().manual_seed(0)
        draws = [self._draw_sizes(generator) for _ in range(self.COUNT_DRAWS)]
        valid = [d for d in draws if d["n_context"] >= self.min_keep and d["n_target"] >= 1]
        if not valid:
            raise self._no_context(draws) or self._unsatisfiable()
        # kept for counts_at: the counts of another quantile, without drawing again
        self._valid_counts = {key: torch.tensor([d[key] for d in valid], dtype=torch.float64)
                              for key in ("n_context", "n_target")}
        n_context, n_target = self.counts_at(self.count_quantile)
        # Each count is a quantile of its own, but a draw must reach both, and larger contexts
        # leave fewer tokens to targets: check that enough draws do.
        self._check_acceptance(n_context, n_target, draws)
        return n_context, n_target

    def counts_at(self, count_quantile):
        """The context and target tokens that ``static_shapes=True`` would keep at
        ``count_quantile``, the rest of the configuration as it is.

        Nearby quantiles often give the same counts, and then the same masks.

        Parameters
        ----------
        count_quantile : float
            A quantile in [0, 1].

        Returns
        -------
        (int, int)
            ``n_context`` and ``n_target`` (whether enough size draws reach both is not
            checked).

        Raises
        ------
        ValueError
            When the sampler was built with ``static_shapes=False`` (it counts no quantile).
        """
        if not self.static_shapes:
            raise ValueError("counts_at needs a sampler built with static_shapes=True: "
                             "without it every batch keeps the counts of its own draw")
        if not is_real(count_quantile) or not 0.0 <= count_quantile <= 1.0:
            raise ValueError(f"count_quantile must be in [0, 1], got {count_quantile!r}")

        def quantile(key):
            return int(torch.quantile(self._valid_counts[key], float(count_quantile),
                                      interpolation="lower"))

        return max(quantile("n_context"), self.min_keep), max(quantile("n_target"), 1)

    def _check_acceptance(self, n_context, n_target, draws=None):
        """Raise when fewer than ``MIN_ACCEPTANCE`` of the size draws (``COUNT_DRAWS`` of
        them, from a fixed seed) keep ``n_context`` context and ``n_target`` target tokens:
        redrawing could not draw every batch."""
        if draws is None:
            generator = torch.Generator().manual_seed(0)
            draws = [self._draw_sizes(generator) for _ in range(self.COUNT_DRAWS)]
        accepted = sum(d["n_context"] >= n_context and d["n_target"] >= n_target for d in draws)
        if accepted >= self.MIN_ACCEPTANCE * len(draws):
            return
        if not self.static_shapes:
            no_context = self._no_context(draws)
            if no_context is not None:
                raise no_context
            raise UnsatisfiableMaskingError(
                f"min_keep={self.min_keep} context tokens and a target are kept by only "
                f"{accepted / len(draws):.2%} of mask size draws on "
                f"{with_article(str(self.n_regions))} x "
                f"{self.n_patches} grid (at least {self.MIN_ACCEPTANCE:.0%} are needed to draw "
                "every batch); lower min_keep or widen the scales")
        # the settings that raise the counts: the quantile, and min_keep where it leaves
        # out draws (the quantiles are taken over the draws that keep min_keep)
        binds = any(d["n_context"] < self.min_keep for d in draws)
        lower = [name for name, raises in (("count_quantile", self.count_quantile > 0),
                                           ("min_keep", binds)) if raises]
        advice = f"lower {' or '.join(lower)}" if lower else "widen the scales"
        raise UnsatisfiableMaskingError(
            f"count_quantile={self.count_quantile} and min_keep={self.min_keep} keep "
            f"{n_context} context and {n_target} target tokens on "
            f"{with_article(str(self.n_regions))} x "
            f"{self.n_patches} grid, which only {accepted / len(draws):.2%} of mask size "
            f"draws reach together (at least {self.MIN_ACCEPTANCE:.0%} are needed to draw "
            f"every batch); {advice}"
        )

    def _no_context(self, draws):
        """The error for scales that leave no context token in any of ``draws`` (then no
        ``min_keep`` helps: it names the scales instead), or ``None``."""
        if any(d["n_context"] for d in draws):
            return None
        # a draw keeps no context when the alpha regions take every observed region, or the
        # edge spans take the whole observation span
        by_regions = [d for d in draws if d["n_obs"] == d["n_alpha_in"]]
        by_time = [d for d in draws if d["n_obs"] != d["n_alpha_in"]]
        no_regions = len(by_regions) / len(draws)
        # only the levers that can help the draws they failed: every region observed leaves
        # one visible only beside fewer alpha regions than regions, and the longest span
        # (n_patches - 1) keeps a patch only from edge spans that leave one
        lower = ["alpha_region_scale"] * bool(by_regions) + ["edge_time_scale"] * bool(by_time)
        widen = (any(d["n_alpha"] < self.n_regions for d in by_regions)
                 or any(self._context_time(self.n_patches - 1, d["n_left"], d["n_right"]) > 0
                        for d in by_time))
        advice = f"lower {' or '.join(lower)}" + (", or raise observation_scale" if widen else "")
        return UnsatisfiableMaskingError(
            f"no mask size draw leaves a context token on "
            f"{with_article(str(self.n_regions))} x {self.n_patches} grid: the Cross-ROI "
            f"regions (alpha_region_scale={self.alpha_region_scale}) take every observed region "
            f"(observation_scale={self.observation_scale}) in {no_regions:.0%} of the draws, and "
            f"the edge spans (edge_time_scale={self.edge_time_scale}, edge_fraction="
            f"{self.edge_fraction}) the observed time span in the others; {advice}")

    def _unsatisfiable(self):
        if self.static_shapes and getattr(self, "n_context", None) is not None:
            need = (f"{self.n_context} context and {self.n_target} target tokens "
                    f"(count_quantile={self.count_quantile})")
            advice = "lower count_quantile or min_keep, or widen the scales"
        else:
            need = f"min_keep={self.min_keep} context tokens and a target"
            advice = "lower min_keep or widen the scales"
        return UnsatisfiableMaskingError(
            f"could not draw masks keeping {need} on {with_article(str(self.n_regions))} x "
            f"{self.n_patches} grid; {advice}")

    def draw_sizes(self):
        """Draw one batch's sizes.

        Sizes are redrawn until every sample can keep ``n_context`` context tokens and
        ``n_target`` target tokens (with ``static_shapes=False``: ``min_keep`` and 1).

        Returns
        -------
        dict
            The sizes, as in ``MaskBatch.sizes``.
        """
        need_context = self.n_context if self.static_shapes else self.min_keep
        need_target = self.n_target if self.static_shapes else 1
        for _ in range(self._MAX_TRIES):
            sizes = self._draw_sizes(self._host_gen)
            if sizes["n_context"] >= need_context and sizes["n_target"] >= need_target:
                if self.static_shapes:
                    sizes.update(n_context=self.n_context, n_target=self.n_target)
                return sizes
        raise self._unsatisfiable()

    # -- positions (device) ------------------------------------------------------------------
    def _rand(self, *shape):
        return torch.rand(shape, generator=self._device_gen, device=self.device)

    def _randint(self, high, batch):
        """Per-sample integers in ``[0, high)`` (``high`` a positive Python int)."""
        return (self._rand(batch) * high).long().clamp_(max=high - 1)

    def _subset(self, candidates, k):
        """``k`` random columns of each row of ``candidates`` (batch, n) -> (batch, k)."""
        if k == 0:
            return candidates[:, :0]
        order = self._rand(*candidates.shape).argsort(dim=1)[:, :k]
        return torch.gather(candidates, 1, order)

    def _region_mask(self, regions, batch):
        mask = torch.zeros(batch, self.n_regions, dtype=torch.bool, device=self.device)
        return mask.scatter_(1, regions, True)

    def _span(self, start, length):
        t = torch.arange(self.n_patches, device=self.device)
        return (t[None] >= start[:, None]) & (t[None] < (start + length)[:, None])

    def _select(self, mask, k):
        """``k`` random true positions of each row of ``mask`` (batch, n), sorted."""
        keys = self._rand(*mask.shape).masked_fill_(~mask, 2.0)
        return keys.topk(k, dim=1, largest=False).indices.sort(dim=1).values

    def sample(self, batch_size, return_grid=False):
        """Draw the masks of one batch.

        Parameters
        ----------
        batch_size : int
            Number of samples.
        return_grid : bool, default=False
            Also return the labelled region x time grid (for plots and checks).

        Returns
        -------
        MaskBatch
            Context and target token indices of each sample (and the grid, when asked for).

        Raises
        ------
        ValueError
            When ``batch_size`` is not an int >= 0.
        """
        # int() would draw 2 samples for 2.5 and one for True
        B, R, P = check_count("batch_size", batch_size, 0), self.n_regions, self.n_patches
        s = self.draw_sizes()
        perm = self._rand(B, R).argsort(dim=1)
        observed, unobserved = perm[:, : s["n_obs"]], perm[:, s["n_obs"] :]
        alpha_regions = torch.cat(
            [observed[:, : s["n_alpha_in"]], unobserved[:, : s["n_alpha"] - s["n_alpha_in"]]], 1
        )
        visible = observed[:, s["n_alpha_in"] :]
        hidden = torch.cat([observed[:, : s["n_alpha_in"]], unobserved], 1)

        obs_start = self._randint(P - s["n_time"] + 1, B)
        obs_span = self._span(obs_start, s["n_time"])
        alpha_start = obs_start + self._randint(s["n_time"] - s["n_alpha_time"] + 1, B)
        # Edge spans sit at the ends of the scan, so the context stays one contiguous span and
        # Cross-Time targets are extrapolation (before / after the context), never gaps inside it.
        zeros = torch.zeros(B, dtype=torch.long, device=self.device)
        left = self._span(zeros, s["n_left"])
        right = self._span(zeros + (P - s["n_right"]), s["n_right"])

        def cells(regions, span):
            return self._region_mask(regions, B)[:, :, None] & span[:, None, :]

        context = cells(visible, obs_span & ~left & ~right)
        alpha = cells(alpha_regions, self._span(alpha_start, s["n_alpha_time"]))
        beta = cells(self._subset(visible, s["n_beta"]), left) | cells(
            self._subset(visible, s["n_beta"]), right
        )
        gamma = cells(self._subset(hidden, s["n_gamma"]), left) | cells(
            self._subset(hidden, s["n_gamma"]), right
        )
        grid = torch.zeros(B, R, P, dtype=torch.int8, device=self.device)
        for label, cell_mask in ((GAMMA, gamma), (BETA, beta), (ALPHA, alpha), (CONTEXT, context)):
            grid.masked_fill_(cell_mask, label)
        flat = grid.reshape(B, R * P)
        context_idx = self._select(flat == CONTEXT, s["n_context"])
        target_idx = self._select(flat >= ALPHA, s["n_target"])
        return MaskBatch(
            context_idx=context_idx,
            target_idx=target_idx,
            target_kind=torch.gather(flat, 1, target_idx),
            sizes=s,
            grid=grid if return_grid else None,
        )

    __call__ = sample
