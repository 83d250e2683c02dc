"""Spatiotemporal masking: invariants checked over many draws, for several grid sizes."""

import numpy as np
import pytest
import torch

from brainjepa_sk.nn.masking import (
    ALPHA,
    BETA,
    CONTEXT,
    GAMMA,
    SpatiotemporalMaskSampler,
    UnsatisfiableMaskingError,
)

GRIDS = [(8, 4), (24, 10), (50, 7), (100, 10), (16, 20), (450, 10)]


def _draws(n_regions, n_patches, n_batches=40, batch=8, seed=0, **kwargs):
    sampler = SpatiotemporalMaskSampler(n_regions, n_patches, seed=seed, **kwargs)
    return sampler, [sampler.sample(batch, return_grid=True) for _ in range(n_batches)]


def _runs(mask_1d):
    """Number of contiguous runs of True in a 1-D bool tensor."""
    padded = torch.cat([torch.tensor([False]), mask_1d])
    return int((padded[1:] & ~padded[:-1]).sum())


@pytest.mark.parametrize("static_shapes", [True, False])
@pytest.mark.parametrize("n_regions, n_patches", GRIDS)
def test_invariants_hold_on_every_draw(n_regions, n_patches, static_shapes):
    sampler, batches = _draws(n_regions, n_patches, static_shapes=static_shapes)
    n_tokens = n_regions * n_patches
    edge = sampler.edge_width
    for masks in batches:
        sizes, grid = masks.sizes, masks.grid
        ctx, tgt = masks.context_idx, masks.target_idx
        assert ctx.dtype == tgt.dtype == torch.int64
        assert ctx.shape == (8, sizes["n_context"]) and tgt.shape == (8, sizes["n_target"])
        assert ctx.shape[1] >= sampler.min_keep and tgt.shape[1] >= 1
        flat = grid.reshape(8, n_tokens)
        for b in range(8):
            c, t = ctx[b], tgt[b]
            assert 0 <= c.min() and c.max() < n_tokens and 0 <= t.min() and t.max() < n_tokens
            assert torch.all(c[1:] > c[:-1]) and torch.all(t[1:] > t[:-1])  # sorted, unique
            assert not set(c.tolist()) & set(t.tolist())  # context and targets never overlap
            assert torch.all(flat[b, c] == CONTEXT)
            assert torch.all(flat[b, t] >= ALPHA)
            assert torch.equal(masks.target_kind[b], flat[b, t])
            # every sample had at least as many tokens as kept (subsampling, never padding)
            assert int((flat[b] == CONTEXT).sum()) >= sizes["n_context"]
            assert int((flat[b] >= ALPHA).sum()) >= sizes["n_target"]

            g = grid[b]
            context = g == CONTEXT
            ctx_regions, ctx_times = context.any(1), context.any(0)
            # the context is a product set: visible regions x context times
            assert torch.equal(context, ctx_regions[:, None] & ctx_times[None, :])
            assert int(ctx_regions.sum()) == sizes["n_obs"] - sizes["n_alpha_in"]
            assert int(ctx_times.sum()) >= sizes["n_time"] - sizes["n_left"] - sizes["n_right"]
            assert int(ctx_times.sum()) <= sizes["n_time"] < n_patches

            alpha = g == ALPHA
            alpha_regions, alpha_times = alpha.any(1), alpha.any(0)
            assert not (alpha_regions & ctx_regions).any()  # Cross-ROI: other regions
            assert int(alpha_regions.sum()) == sizes["n_alpha"]
            assert _runs(alpha_times) == 1  # one contiguous span
            # a sub-span of the observation span, which also holds the context's times
            used = (alpha_times | ctx_times).nonzero().flatten()
            assert int(used.max() - used.min()) + 1 <= sizes["n_time"]

            assert _runs(ctx_times) == 1  # the context is one contiguous time span
            first, last = ctx_times.nonzero().min(), ctx_times.nonzero().max()
            beta, gamma = g == BETA, g == GAMMA
            edge_zone = torch.zeros(n_patches, dtype=torch.bool)
            edge_zone[:edge] = edge_zone[n_patches - edge :] = True
            for cells in (beta, gamma):
                times = cells.any(0)
                assert not (times & ~edge_zone).any()  # only at the temporal edges
                # before or after the context, never inside it
                assert all(t < first or t > last for t in times.nonzero().flatten().tolist())
            assert not (beta.any(1) & ~ctx_regions).any()  # Cross-Time: context regions
            assert not (gamma.any(1) & ctx_regions).any()  # Double-Cross: other regions
            for zone in (slice(0, edge), slice(n_patches - edge, n_patches)):
                assert int(beta[:, zone].any(1).sum()) <= sizes["n_beta"]
                assert int(gamma[:, zone].any(1).sum()) <= sizes["n_gamma"]


def test_each_temporal_edge_draws_its_own_target_regions():
    # one Cross-Time / Double-Cross pair per edge: the regions at the left edge and at the
    # right edge are separate draws, equal only by chance
    _, batches = _draws(100, 10, n_batches=60)
    pairs = [(kind, (grid[:, :2] == kind).any(1), (grid[:, -2:] == kind).any(1))
             for masks in batches for grid in masks.grid for kind in (BETA, GAMMA)]
    both = [(kind, left, right) for kind, left, right in pairs if left.any() and right.any()]
    assert len({kind for kind, _, _ in both}) == 2 and len(both) > 100
    same = sum(torch.equal(left, right) for _, left, right in both)
    assert same < 0.1 * len(both)


@pytest.mark.parametrize("n_regions, n_patches", [(24, 10), (100, 10), (450, 10)])
def test_sizes_stay_in_the_configured_ranges(n_regions, n_patches):
    sampler, batches = _draws(n_regions, n_patches, n_batches=300, batch=1)
    R, P = n_regions, n_patches
    half = 0.5 + 1e-9  # rounding to whole regions / patches
    seen = {key: [] for key in ("obs", "alpha", "alpha_time", "edge_regions")}
    for masks in batches:
        s = masks.sizes
        assert 0.84 * R - half <= s["n_obs"] <= R
        assert 0.84 * P - half <= s["n_time"] <= P - 1
        assert 0.45 * R - half <= s["n_alpha"] <= 0.6 * R + half
        assert 1 <= s["n_alpha_time"] <= min(0.6 * P + half, s["n_time"])
        assert s["n_alpha_time"] >= min(0.2 * P - half, s["n_time"])
        for n_edge in (s["n_left"], s["n_right"]):
            assert 0 <= n_edge <= min(0.4 * P + half, sampler.edge_width)
        n_visible = s["n_obs"] - s["n_alpha_in"]
        assert 0.15 * n_visible - half <= s["n_beta"] <= 0.3 * n_visible + half
        assert 0.15 * (R - n_visible) - half <= s["n_gamma"] <= 0.3 * (R - n_visible) + half
        seen["obs"].append(s["n_obs"] / R)
        seen["alpha"].append(s["n_alpha"] / R)
        seen["alpha_time"].append(s["n_alpha_time"] / P)
        seen["edge_regions"].append(s["n_beta"] / max(n_visible, 1))
    mean = {k: sum(v) / len(v) for k, v in seen.items()}
    # the draws cover their ranges (means near the middle of each uniform range)
    assert mean["obs"] == pytest.approx(0.92, abs=0.03)
    assert mean["alpha"] == pytest.approx(0.525, abs=0.03)
    assert mean["alpha_time"] == pytest.approx(0.4, abs=0.05)  # rounding to whole patches
    if R >= 100:
        assert mean["edge_regions"] == pytest.approx(0.225, abs=0.03)


def test_alpha_regions_inside_the_observation_block_follow_the_hypergeometric_law():
    sampler, batches = _draws(24, 10, n_batches=1500, batch=1)
    got = sum(m.sizes["n_alpha_in"] / m.sizes["n_alpha"] for m in batches) / len(batches)
    expected = sum(m.sizes["n_obs"] / 24 for m in batches) / len(batches)
    assert got == pytest.approx(expected, abs=0.02)


def test_cross_roi_targets_reach_every_time_patch_the_first_and_last_included():
    # the observation block may end at the last patch and the alpha span at the end of the
    # observation block (an off-by-one in either start leaves the last patch never a target)
    _, batches = _draws(24, 10, n_batches=50)
    grids = torch.cat([masks.grid for masks in batches])
    covered = (grids == ALPHA).any(1).float().mean(0)
    assert (covered > 0.05).all(), covered


def test_same_seed_same_masks_and_resume():
    a = SpatiotemporalMaskSampler(30, 8, seed=7)
    b = SpatiotemporalMaskSampler(30, 8, seed=7)
    for _ in range(5):
        ma, mb = a.sample(4), b.sample(4)
        assert torch.equal(ma.context_idx, mb.context_idx)
        assert torch.equal(ma.target_idx, mb.target_idx)
    state = a.state_dict()
    expected = [a.sample(4) for _ in range(3)]
    c = SpatiotemporalMaskSampler(30, 8, seed=123)
    c.load_state_dict(state)
    for want in expected:
        got = c.sample(4)
        assert torch.equal(got.context_idx, want.context_idx)
        assert torch.equal(got.target_idx, want.target_idx)
    d = SpatiotemporalMaskSampler(30, 8, seed=8)
    assert not torch.equal(d.sample(4).context_idx, SpatiotemporalMaskSampler(30, 8, seed=7).sample(4).context_idx)


def test_sampling_does_not_touch_global_random_state():
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    SpatiotemporalMaskSampler(30, 8, seed=1).sample(4)
    assert torch.equal(before, torch.random.get_rng_state())


def test_positions_differ_between_samples_of_a_batch():
    masks = SpatiotemporalMaskSampler(100, 10, seed=0).sample(8)
    rows = {tuple(r.tolist()) for r in masks.context_idx}
    assert len(rows) == 8


def test_each_sample_of_a_batch_draws_its_own_regions():
    # sizes are drawn once per batch, but which regions are observed, visible or Cross-ROI
    # targets is drawn per sample
    masks = SpatiotemporalMaskSampler(100, 10, seed=0).sample(8, return_grid=True)
    for label in (CONTEXT, ALPHA):
        regions = {tuple((grid == label).any(1).tolist()) for grid in masks.grid}
        assert len(regions) == 8, label


def test_research_style_counts_redraw_sizes_below_min_keep():
    # without static shapes each batch keeps its own count, never fewer than min_keep (60 is
    # about the median context of this grid, so half the size draws are redrawn)
    sampler = SpatiotemporalMaskSampler(24, 10, min_keep=60, static_shapes=False)
    counts = [sampler.sample(2).context_idx.shape[1] for _ in range(100)]
    assert min(counts) >= 60 and len(set(counts)) > 1
    # refused when built, not at a batch in the middle of training
    with pytest.raises(UnsatisfiableMaskingError, match=r"min_keep=1000 context tokens and a "
                                                        r"target are kept by only 0\.00%"):
        SpatiotemporalMaskSampler(8, 4, min_keep=1000, static_shapes=False)


def test_impossible_min_keep_is_refused():
    with pytest.raises(ValueError, match="min_keep"):
        SpatiotemporalMaskSampler(8, 4, min_keep=1000).sample(2)
    with pytest.raises(ValueError, match="at least 2"):
        SpatiotemporalMaskSampler(1, 10)
    with pytest.raises(ValueError, match="at least 2 regions and 2 time patches"):
        SpatiotemporalMaskSampler(10, 1)  # one patch: no span shorter than the scan
    with pytest.raises(ValueError, match="alpha_region_scale"):
        SpatiotemporalMaskSampler(10, 10, alpha_region_scale=(0.6, 0.4))
    with pytest.raises(ValueError, match="observation_scale"):
        SpatiotemporalMaskSampler(10, 10, observation_scale=(0.5, 1.5))


@pytest.mark.parametrize(("option", "value", "message"), [
    ("min_keep", 0, r"min_keep must be an int >= 1 \(the fewest context tokens\), got 0"),
    ("min_keep", -1, r"min_keep must be an int >= 1"),
    ("min_keep", 2.5, r"min_keep must be an int >= 1 .*got 2\.5"),
    ("min_keep", "4", r"min_keep must be an int >= 1 .*got '4'"),
    ("min_keep", True, r"min_keep must be an int >= 1 .*got True"),
    ("static_shapes", "no", r"static_shapes must be True or False, got 'no'"),
    ("static_shapes", 0, r"static_shapes must be True or False"),
    ("count_quantile", "0.5", r"count_quantile must be in \[0, 1\], got '0.5'"),
    ("seed", 1.5, r"seed must be an int, got 1\.5"),
    ("seed", "3", r"seed must be an int, got '3'"),
])
def test_options_of_the_wrong_kind_are_refused_naming_the_option(option, value, message):
    """min_keep went through int() (2.5 was 2, "4" was 4) and 0 or less let a batch train
    on an empty context; static_shapes went through bool() ("no" was True); a string
    count_quantile failed with a comparison TypeError naming no option."""
    with pytest.raises(ValueError, match=message):
        SpatiotemporalMaskSampler(8, 4, **{option: value})


@pytest.mark.parametrize(("n_regions", "n_patches", "message"), [
    (12.5, 10, r"n_regions must be an int >= 2, got 12\.5"),
    (True, 10, r"n_regions must be an int >= 2, got True"),
    (12, "10", r"n_patches must be an int >= 2, got '10'"),
    (12, 10.0, r"n_patches must be an int >= 2, got 10\.0"),
])
def test_a_grid_size_that_is_not_a_count_is_refused(n_regions, n_patches, message):
    # int() drew masks on a 12-region grid for 12.5 regions, and on 10 patches for "10"
    with pytest.raises(ValueError, match=message):
        SpatiotemporalMaskSampler(n_regions, n_patches)
    sampler = SpatiotemporalMaskSampler(np.int64(12), np.int64(10), seed=np.int64(3))
    assert (sampler.n_regions, sampler.n_patches, sampler.seed) == (12, 10, 3)
    assert sampler.sample(2).grid is None


@pytest.mark.parametrize("value", [0.5, (0.1, 0.2, 0.3), "0.5", ("low", "high"),
                                   ("0.1", "0.2"), (False, True), (0.1, "0.2"), (0.5, True)])
def test_a_range_that_is_not_a_pair_is_refused_naming_the_option(value):
    """A single fraction where a (low, high) range is expected (natural in a grid over
    masking__alpha_region_scale) failed with Python's bare unpacking TypeError ("'float'
    object is not iterable"), naming no option."""
    with pytest.raises(ValueError, match=r"alpha_region_scale must be a \(low, high\) pair"):
        SpatiotemporalMaskSampler(10, 10, alpha_region_scale=value)


@pytest.mark.parametrize("static_shapes", [True, False])
def test_the_smallest_grids_work(static_shapes):
    # two time patches (e.g. 32 frames in patches of 16): one edge patch, a one-patch context
    sampler = SpatiotemporalMaskSampler(6, 2, min_keep=1, static_shapes=static_shapes)
    assert sampler.edge_width == 1
    masks = sampler.sample(3)
    assert masks.context_idx.shape[1] >= 1 and masks.target_idx.shape[1] >= 1
    # the widest edge zones stay whole patches, at most half the grid
    wide = SpatiotemporalMaskSampler(6, 3, edge_fraction=0.5, min_keep=1)
    assert wide.edge_width == 1 and isinstance(wide.edge_width, int)
    wide.sample(2)


def test_masks_feed_the_model():
    from brainjepa_sk.nn import BrainJEPA

    torch.manual_seed(0)
    model = BrainJEPA(torch.randn(20, 4), patch_size=4, embed_dim=16, depth=1, num_heads=2,
                      predictor_embed_dim=8, predictor_depth=1)
    masks = SpatiotemporalMaskSampler(20, 6, seed=0).sample(3)
    out = model(torch.randn(3, 24, 20), masks.context_idx, masks.target_idx)
    assert out["predictions"].shape == (3, masks.target_idx.shape[1], 16)


@pytest.mark.gpu
def test_cuda_sampling_has_no_host_sync_and_matches_invariants():
    sampler = SpatiotemporalMaskSampler(450, 10, seed=0, device="cuda")
    sampler.sample(16)  # warm up kernels
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        masks = sampler.sample(16, return_grid=True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert masks.context_idx.is_cuda and masks.target_idx.is_cuda
    flat = masks.grid.reshape(16, -1)
    assert torch.all(torch.gather(flat, 1, masks.context_idx) == CONTEXT)
    assert torch.all(torch.gather(flat, 1, masks.target_idx) >= ALPHA)
    again = SpatiotemporalMaskSampler(450, 10, seed=0, device="cuda")
    again.sample(16)
    assert torch.equal(again.sample(16).context_idx, masks.context_idx)


def test_static_shapes_keep_the_same_token_counts_in_every_batch():
    sampler = SpatiotemporalMaskSampler(20, 10, seed=3)
    shapes = {(m.context_idx.shape, m.target_idx.shape) for m in map(sampler.sample, [4] * 30)}
    assert shapes == {((4, sampler.n_context), (4, sampler.n_target))}
    # the counts are a function of the configuration, not of the seed
    other = SpatiotemporalMaskSampler(20, 10, seed=99)
    assert (other.n_context, other.n_target) == (sampler.n_context, sampler.n_target)
    # they are low quantiles of the research-style per-batch counts
    research = SpatiotemporalMaskSampler(20, 10, seed=3, static_shapes=False)
    assert research.n_context is None
    counts = [research.sample(4) for _ in range(200)]
    context = torch.tensor([m.context_idx.shape[1] for m in counts], dtype=torch.float64)
    target = torch.tensor([m.target_idx.shape[1] for m in counts], dtype=torch.float64)
    assert len(set(context.tolist())) > 3  # research-style counts vary from batch to batch
    assert 0.02 < (context < sampler.n_context).double().mean() < 0.25
    assert 0.02 < (target < sampler.n_target).double().mean() < 0.25
    # a higher quantile keeps more tokens
    more = SpatiotemporalMaskSampler(20, 10, count_quantile=0.5)
    assert more.n_context > sampler.n_context and more.n_target > sampler.n_target
    with pytest.raises(ValueError, match="count_quantile"):
        SpatiotemporalMaskSampler(20, 10, count_quantile=1.5)


def test_counts_at_gives_the_counts_a_sampler_of_that_quantile_keeps():
    """counts_at (which the pretrainer keys its runs on) is what a sampler built with that
    quantile keeps, and it refuses what it cannot answer."""
    sampler = SpatiotemporalMaskSampler(20, 10)
    for quantile in (0.0, 0.05, 0.1, 0.3, 0.5):
        other = SpatiotemporalMaskSampler(20, 10, count_quantile=quantile)
        assert sampler.counts_at(quantile) == (other.n_context, other.n_target)
    with pytest.raises(ValueError, match=r"count_quantile must be in \[0, 1\], got 1.5"):
        sampler.counts_at(1.5)
    with pytest.raises(ValueError, match="static_shapes=True"):
        SpatiotemporalMaskSampler(20, 10, static_shapes=False).counts_at(0.1)


def test_a_state_saved_on_the_cpu_restores_a_separate_device_generator():
    # On CUDA the sampler has its own device generator; a CPU state has none to restore.
    # Simulated on the CPU with a separate generator standing for the device's.
    saved = SpatiotemporalMaskSampler(12, 4, seed=3).state_dict()
    assert set(saved) == {"host"}
    draws = []
    for _ in range(2):
        sampler = SpatiotemporalMaskSampler(12, 4, seed=99)
        sampler._device_gen = torch.Generator().manual_seed(7)
        sampler.load_state_dict(saved)
        assert torch.equal(sampler._host_gen.get_state(), saved["host"])
        draws.append(torch.rand(4, generator=sampler._device_gen))
    assert torch.equal(draws[0], draws[1])  # seeded from the saved state, the same each time


def test_a_count_quantile_whose_counts_few_draws_reach_together_is_refused_up_front():
    SpatiotemporalMaskSampler(450, 10, count_quantile=0.7)
    with pytest.raises(ValueError, match=r"count_quantile=0.9 and min_keep=4 keep \d+ context "
                                         r"and \d+ target tokens on a 450 x 10 grid, which only"
                                         r".*; lower count_quantile$"):
        SpatiotemporalMaskSampler(450, 10, count_quantile=0.9)
    # the redraw error names the quantile too
    sampler = SpatiotemporalMaskSampler(12, 4)
    sampler.n_context = 10**6
    with pytest.raises(ValueError, match=r"count_quantile=0.1\).*lower count_quantile"):
        sampler.draw_sizes()
    sampler = SpatiotemporalMaskSampler(18, 4)
    sampler.n_context = 10**6
    with pytest.raises(ValueError, match=r" on an 18 x 4 grid; "):  # had read "a 18 x 4"
        sampler.draw_sizes()


def test_a_min_keep_that_few_size_draws_reach_is_refused_up_front():
    # the share of size draws that keep both counts is counted over all draws: about 1% of
    # this grid's draws keep 100 context tokens, too few to draw every batch by redrawing
    with pytest.raises(ValueError, match=r"which only 1\.\d+% of mask size draws.*; lower "
                                         r"count_quantile or min_keep$"):
        SpatiotemporalMaskSampler(24, 10, min_keep=100)
    # the advice names only what can help: with the lowest quantile, min_keep
    with pytest.raises(ValueError, match=r"; lower min_keep$"):
        SpatiotemporalMaskSampler(24, 10, min_keep=100, count_quantile=0.0)
    sampler = SpatiotemporalMaskSampler(24, 10, min_keep=90)  # about 5% of the draws
    assert sampler.n_context >= 90
    assert sampler.sample(2).context_idx.shape == (2, sampler.n_context)


@pytest.mark.parametrize("static_shapes", [True, False])
@pytest.mark.parametrize(("options", "share"), [
    # every region Cross-ROI: no region stays visible
    (dict(alpha_region_scale=(1.0, 1.0)), "100%"),
    # edge spans of half the scan at each end take the short observed span
    (dict(observation_scale=(0.3, 0.3), edge_time_scale=(1.0, 1.0), edge_fraction=0.5), r"\d+%"),
])
def test_scales_that_leave_no_context_are_refused_naming_the_scales(options, share,
                                                                     static_shapes):
    # no min_keep helps, so the advice is about the scales, not "lower min_keep"
    with pytest.raises(UnsatisfiableMaskingError,
                       match=rf"no mask size draw leaves a context token on a 10 x 4 grid: the "
                             rf"Cross-ROI regions \(alpha_region_scale=.*\) take every observed "
                             rf"region .* in {share} of the draws.*; lower alpha_region_scale"):
        SpatiotemporalMaskSampler(10, 4, static_shapes=static_shapes, **options)


@pytest.mark.parametrize(("grid", "options", "advice"), [
    # every region Cross-ROI and observed, no edge span: only fewer alpha regions can help
    ((10, 4), dict(alpha_region_scale=(1.0, 1.0), observation_scale=(1.0, 1.0),
                   edge_time_scale=(0.0, 0.0)),
     "lower alpha_region_scale"),
    # one alpha region (the fewest) of three observed, edge spans of 2 patches at both ends
    # of 4: even the longest observed span (3 patches) keeps none
    ((10, 4), dict(alpha_region_scale=(0.0, 0.0), observation_scale=(0.3, 0.3),
                   edge_time_scale=(1.0, 1.0), edge_fraction=0.5),
     "lower edge_time_scale"),
    # the same on 20 x 10: an observed span of 1 patch of 10, which a longer one would outlast
    ((20, 10), dict(alpha_region_scale=(0.0, 0.0), observation_scale=(0.1, 0.1),
                    edge_time_scale=(1.0, 1.0), edge_fraction=0.2),
     "lower edge_time_scale, or raise observation_scale"),
])
def test_scales_that_leave_no_context_are_told_only_the_levers_that_help(grid, options, advice):
    """The advice named alpha_region_scale, edge_time_scale and observation_scale whatever
    took the context; the levers it leaves out here are at the end of their range already,
    or cannot help (checked below)."""
    with pytest.raises(UnsatisfiableMaskingError, match=rf"; {advice}$"):
        SpatiotemporalMaskSampler(*grid, **options)
    if "observation_scale" not in advice:
        with pytest.raises(UnsatisfiableMaskingError, match="no mask size draw leaves"):
            SpatiotemporalMaskSampler(*grid, **{**options, "observation_scale": (1.0, 1.0)})
    else:
        SpatiotemporalMaskSampler(*grid, **{**options, "observation_scale": (0.9, 0.9)})


def test_a_share_of_a_batch_keeps_every_field_of_its_samples():
    # how each process takes its samples of the global batch's masks
    masks = SpatiotemporalMaskSampler(24, 10, seed=0).sample(6, return_grid=True)
    share = masks.take(slice(1, None, 2))
    for name in ("context_idx", "target_idx", "target_kind", "grid"):
        assert torch.equal(getattr(share, name), getattr(masks, name)[1::2]), name
    one = masks.take(4)
    assert torch.equal(one.target_kind, masks.target_kind[4]) and one.sizes is masks.sizes


def test_static_counts_are_quantiles_of_the_counts_kept_above_min_keep():
    # draws below min_keep are redrawn, so the per-batch counts a fixed count is a quantile of
    # are those that keep min_keep (here about one draw in five is below it)
    sampler = SpatiotemporalMaskSampler(24, 10, min_keep=50, seed=3)
    assert sampler.n_context > 50
    research = SpatiotemporalMaskSampler(24, 10, min_keep=50, seed=3, static_shapes=False)
    context = torch.tensor([research.sample(2).context_idx.shape[1] for _ in range(300)],
                           dtype=torch.float64)
    assert context.min() >= 50
    assert 0.02 < (context < sampler.n_context).double().mean() < 0.25


def test_fixed_scales_give_fixed_sizes():
    # a range whose low and high are equal fixes that size: the same in every batch
    sampler = SpatiotemporalMaskSampler(
        24, 10, observation_scale=(0.75, 0.75), alpha_region_scale=(0.5, 0.5),
        alpha_time_scale=(0.4, 0.4), edge_time_scale=(0.2, 0.2), edge_region_scale=(0.25, 0.25))
    for _ in range(5):
        s = sampler.sample(2).sizes
        assert (s["n_obs"], s["n_time"], s["n_alpha"], s["n_alpha_time"]) == (18, 8, 12, 4)
        assert (s["n_left"], s["n_right"]) == (2, 2)


def test_a_cross_roi_span_wider_than_the_observation_block_is_cut_to_it():
    # alpha_time_scale asks for 90-100% of the patches, the observation block has 50%: the
    # Cross-ROI target covers the observation span, never patches outside it
    _, batches = _draws(24, 10, n_batches=20, observation_scale=(0.5, 0.5),
                        alpha_time_scale=(0.9, 1.0), min_keep=1)
    for masks in batches:
        assert masks.sizes["n_alpha_time"] == masks.sizes["n_time"] == 5
        for grid in masks.grid:
            alpha_times = (grid == ALPHA).any(0)
            used = (alpha_times | (grid == CONTEXT).any(0)).nonzero().flatten()
            assert int(alpha_times.sum()) == 5 and _runs(alpha_times) == 1
            assert int(used.max() - used.min()) + 1 <= 5


@pytest.mark.parametrize("edge_fraction", [0.0, -0.1, 0.6, "0.3", True])
def test_edge_fractions_outside_the_half_open_range_are_refused(edge_fraction):
    with pytest.raises(ValueError, match=r"edge_fraction must be in \(0, 0.5\]"):
        SpatiotemporalMaskSampler(24, 10, edge_fraction=edge_fraction)


@pytest.mark.parametrize(("tokens", "spread"), [("context", 0.03), ("target", 0.05)])
def test_kept_tokens_are_not_biased_towards_low_region_indices(tokens, spread):
    # The research code truncates sorted index lists, which drops high regions preferentially.
    # Random subsampling keeps every region equally often, among context and target tokens.
    n_regions, n_patches = 24, 10
    _, batches = _draws(n_regions, n_patches, n_batches=400, batch=8)
    kept = torch.zeros(n_regions)
    available = torch.zeros(n_regions)
    for masks in batches:
        index = masks.context_idx if tokens == "context" else masks.target_idx
        kept += torch.bincount(index.flatten() // n_patches, minlength=n_regions)
        candidates = masks.grid == CONTEXT if tokens == "context" else masks.grid >= ALPHA
        available += candidates.sum((0, 2)).float()
    ratio = kept / available
    assert ratio.std() / ratio.mean() < spread, ratio
    low, high = ratio[: n_regions // 2].mean(), ratio[n_regions // 2 :].mean()
    assert abs(low - high) / ratio.mean() < 0.03, ratio


def test_double_cross_targets_are_drawn_among_all_regions_hidden_from_the_context():
    # gamma picks its regions among every region that is not visible in the context: the
    # alpha regions and the regions outside the observation block alike (a small block, so
    # that many hidden regions are not alpha regions)
    _, batches = _draws(100, 10, n_batches=40, observation_scale=(0.5, 0.6))
    n_gamma = n_other = expected = 0
    for masks in batches:
        for grid in masks.grid:
            hidden = ~(grid == CONTEXT).any(1)
            alpha, gamma = (grid == ALPHA).any(1), (grid == GAMMA).any(1)
            n_gamma += int(gamma.sum())
            n_other += int((gamma & ~alpha).sum())
            expected += int(gamma.sum()) * float((hidden & ~alpha).sum() / hidden.sum())
    assert n_gamma > 1000
    # (an alpha region drawn for gamma may show no GAMMA cell where the alpha span covers its
    # edge span, hence a margin above the expected share)
    assert expected / n_gamma - 0.03 < n_other / n_gamma < expected / n_gamma + 0.06


@pytest.mark.parametrize("n_patches, edge_fraction, width", [
    (10, 0.3, 3), (4, 0.3, 1), (5, 0.3, 2), (12, 0.3, 4), (2, 0.2, 1), (7, 0.5, 3)])
def test_edge_zones_are_the_rounded_fraction_of_the_patches(n_patches, edge_fraction, width):
    # round(P * edge_fraction), at least 1 and at most P // 2 (the user guide)
    sampler = SpatiotemporalMaskSampler(24, n_patches, edge_fraction=edge_fraction, min_keep=1)
    assert sampler.edge_width == width


def test_a_state_saved_on_the_cpu_seeds_the_device_generator_from_that_state():
    # two saved states resume two different device streams, whatever the sampler's own seed
    draws = []
    for seed in (3, 4):
        saved = SpatiotemporalMaskSampler(12, 4, seed=seed).state_dict()
        sampler = SpatiotemporalMaskSampler(12, 4, seed=99)
        sampler._device_gen = torch.Generator().manual_seed(7)
        sampler.load_state_dict(saved)
        draws.append(torch.rand(4, generator=sampler._device_gen))
    assert not torch.equal(draws[0], draws[1])


def test_a_full_observation_scale_observes_every_region():
    # every region may be observed; the observation span stays one patch shorter than the scan
    sampler = SpatiotemporalMaskSampler(24, 10, observation_scale=(1.0, 1.0))
    for _ in range(5):
        s = sampler.sample(2).sizes
        assert (s["n_obs"], s["n_time"]) == (24, 9)


def test_the_advice_names_min_keep_only_where_it_leaves_size_draws_out():
    # min_keep equal to the smallest context of the calibration draws leaves none out (a draw
    # that keeps exactly min_keep is kept): lowering it cannot help, the advice is the quantile
    probe = SpatiotemporalMaskSampler(450, 10, static_shapes=False)
    generator = torch.Generator().manual_seed(0)  # the calibration's fixed-seed draws
    smallest = min(probe._draw_sizes(generator)["n_context"] for _ in range(probe.COUNT_DRAWS))
    with pytest.raises(ValueError, match=rf"min_keep={smallest} keep .*; lower count_quantile$"):
        SpatiotemporalMaskSampler(450, 10, min_keep=smallest, count_quantile=0.9)


def test_static_counts_are_lower_quantiles_that_most_calibration_draws_reach():
    # the lower count_quantile quantile: a count the draws reach, with fewer than that share
    # of the draws below it (the next one up would leave exactly that share out here)
    sampler = SpatiotemporalMaskSampler(100, 10)
    generator = torch.Generator().manual_seed(0)  # the calibration's fixed-seed draws
    draws = [sampler._draw_sizes(generator) for _ in range(sampler.COUNT_DRAWS)]
    assert all(d["n_context"] >= sampler.min_keep and d["n_target"] >= 1 for d in draws)
    for key, fixed in (("n_context", sampler.n_context), ("n_target", sampler.n_target)):
        counts = torch.tensor([d[key] for d in draws])
        assert (counts == fixed).any()
        assert (counts < fixed).double().mean() < sampler.count_quantile


def test_beta_and_gamma_cover_one_fraction_of_the_visible_and_hidden_regions():
    # one U(edge_region_scale) fraction per batch for both: the rounded counts of visible
    # (beta) and hidden (gamma) regions must come from a common fraction
    sampler = SpatiotemporalMaskSampler(450, 10, static_shapes=False)
    for _ in range(30):
        s = sampler.draw_sizes()
        n_visible = s["n_obs"] - s["n_alpha_in"]
        n_hidden = 450 - n_visible
        low = max((s["n_beta"] - 0.5) / n_visible, (s["n_gamma"] - 0.5) / n_hidden)
        high = min((s["n_beta"] + 0.5) / n_visible, (s["n_gamma"] + 0.5) / n_hidden)
        assert low <= high + 1e-12, s


def test_each_edge_span_holds_exactly_n_beta_and_n_gamma_whole_region_rows():
    # at each temporal edge, Cross-Time targets are n_beta visible regions and Double-Cross
    # targets n_gamma hidden ones, each over the whole edge span (n_left first / n_right last
    # patches); a gamma row can lose cells to the Cross-ROI span only, so it is counted where
    # that span leaves some of the edge
    _, batches = _draws(100, 10, n_batches=30)
    checked = 0
    for masks in batches:
        s = masks.sizes
        spans = (range(0, s["n_left"]), range(10 - s["n_right"], 10))
        for g in masks.grid:
            alpha_times = (g == ALPHA).any(0)
            outside = torch.ones(10, dtype=torch.bool)
            for span in spans:
                cols = torch.tensor(list(span), dtype=torch.long)
                outside[cols] = False
                beta = (g == BETA)[:, cols]
                rows = beta.any(1)
                assert int(rows.sum()) == (s["n_beta"] if len(span) else 0)
                assert torch.equal(beta, rows[:, None].expand_as(beta))  # whole rows
                if len(span) and not alpha_times[cols].all():
                    assert int((g == GAMMA)[:, cols].any(1).sum()) == s["n_gamma"]
                    checked += 1
            assert not ((g == BETA) | (g == GAMMA))[:, outside].any()
    assert checked > 100


@pytest.mark.parametrize("static_shapes", [True, False])
def test_the_smallest_scales_keep_one_context_and_one_target_token(static_shapes):
    # fractions that round to no region or patch keep one of each (one observed region over
    # one patch, one Cross-ROI region over one patch), and one target token is enough
    sampler = SpatiotemporalMaskSampler(
        24, 10, observation_scale=(0.0, 0.01), alpha_region_scale=(0.0, 0.0),
        edge_time_scale=(0.0, 0.0), min_keep=1, static_shapes=static_shapes)
    masks = sampler.sample(4, return_grid=True)
    assert (masks.sizes["n_obs"], masks.sizes["n_time"], masks.sizes["n_alpha"]) == (1, 1, 1)
    assert masks.context_idx.shape == masks.target_idx.shape == (4, 1)
    assert ((masks.grid == CONTEXT).sum((1, 2)) == 1).all()
    assert ((masks.grid == ALPHA).sum((1, 2)) == 1).all()


def test_the_target_count_subtracts_at_most_the_alpha_span_shared_with_each_edge():
    # every visible region a Cross-Time and every hidden one a Double-Cross target: each edge
    # span of 3 patches covers all 10 regions (30 cells), of which the one-patch alpha span of
    # the 5 alpha regions can share 5; 5 alpha cells + 2 x (30 - 5)
    sampler = SpatiotemporalMaskSampler(
        10, 10, observation_scale=(0.5, 0.5), alpha_region_scale=(0.5, 0.5),
        alpha_time_scale=(0.1, 0.1), edge_fraction=0.5, edge_time_scale=(0.3, 0.3),
        edge_region_scale=(1.0, 1.0), min_keep=1, static_shapes=False)
    for _ in range(5):
        masks = sampler.sample(4, return_grid=True)
        assert masks.target_idx.shape == (4, 55)
        assert ((masks.grid >= ALPHA).sum((1, 2)) >= 55).all()


def test_static_counts_take_the_draws_that_keep_exactly_min_keep():
    # a draw that keeps exactly min_keep context tokens is kept: the lowest quantile is then
    # the smallest count of the calibration draws
    probe = SpatiotemporalMaskSampler(450, 10, static_shapes=False)
    generator = torch.Generator().manual_seed(0)  # the calibration's fixed-seed draws
    smallest = min(probe._draw_sizes(generator)["n_context"] for _ in range(probe.COUNT_DRAWS))
    sampler = SpatiotemporalMaskSampler(450, 10, min_keep=smallest, count_quantile=0.0)
    assert sampler.n_context == smallest


@pytest.mark.parametrize("batch_size", [2.5, True, "3", -1])
def test_a_batch_size_that_is_not_a_count_is_refused(batch_size):
    # int() drew 2 samples for 2.5, one for True and three for "3"; -1 failed in torch
    sampler = SpatiotemporalMaskSampler(12, 4)
    with pytest.raises(ValueError, match=rf"batch_size must be an int >= 0, got {batch_size!r}"):
        sampler.sample(batch_size)
    assert sampler.sample(0).context_idx.shape == (0, sampler.n_context)
    assert sampler.sample(np.int64(2)).context_idx.shape == (2, sampler.n_context)


def test_the_grid_codes_are_one_to_four_in_the_documented_order():
    # plots colour the grid by value (the masking example's colour list runs hidden, context,
    # alpha, beta, gamma): code 3 must mark Cross-Time targets, edge cells of regions the
    # context sees, and code 4 Double-Cross ones, of regions it does not
    assert (CONTEXT, ALPHA, BETA, GAMMA) == (1, 2, 3, 4)
    _, batches = _draws(100, 10, n_batches=10)
    n_beta = n_gamma = 0
    for masks in batches:
        grid = masks.grid.numpy()
        seen = (grid == 1).any(2)  # (batch, regions) with context
        cross_time = (grid == 3).any(2)
        double_cross = (grid == 4).any(2)
        assert not (cross_time & ~seen).any() and not (double_cross & seen).any()
        n_beta, n_gamma = n_beta + cross_time.sum(), n_gamma + double_cross.sum()
    assert n_beta > 0 and n_gamma > 0


def test_counts_few_size_draws_reach_are_still_drawn_batch_after_batch():
    # counts that about 3% of the size draws reach pass the up-front check (2%): a batch then
    # takes some 30 redraws, and the redraw budget must leave a failure unlikely at that rate
    sampler = SpatiotemporalMaskSampler(20, 10, count_quantile=0.8)
    for _ in range(10):
        masks = sampler.sample(1)
        assert masks.context_idx.shape == (1, sampler.n_context)
        assert masks.target_idx.shape == (1, sampler.n_target)


@pytest.mark.parametrize("static_shapes", [True, False])
def test_numpy_options_give_the_sampler_of_python_ones(static_shapes):
    # a grid search over np.array([True, False]) passes np.bool_, over an int array np.int64
    sampler = SpatiotemporalMaskSampler(
        np.int64(20), np.int64(10), min_keep=np.int64(4), seed=np.int64(3),
        static_shapes=np.bool_(static_shapes), edge_fraction=np.float64(0.3))
    python = SpatiotemporalMaskSampler(20, 10, min_keep=4, seed=3, static_shapes=static_shapes)
    assert sampler.static_shapes is static_shapes and type(sampler.min_keep) is int
    assert (sampler.n_context, sampler.n_target) == (python.n_context, python.n_target)
    for _ in range(3):
        masks, expected = sampler.sample(2), python.sample(2)
        assert torch.equal(masks.context_idx, expected.context_idx)
        assert torch.equal(masks.target_idx, expected.target_idx)


def test_both_edge_spans_reach_the_whole_edge_zone():
    # an edge span longer than the zone is cut to the zone, at the start and at the end alike
    sampler = SpatiotemporalMaskSampler(24, 10, edge_time_scale=(0.5, 0.5), static_shapes=False)
    assert sampler.edge_width == 3
    for _ in range(3):
        masks = sampler.sample(2, return_grid=True)
        assert masks.sizes["n_left"] == masks.sizes["n_right"] == 3
        edge_cells = (masks.grid == BETA) | (masks.grid == GAMMA)
        assert edge_cells[:, :, :3].any(1).all() and edge_cells[:, :, -3:].any(1).all()


def test_the_two_temporal_edges_draw_their_lengths_independently():
    # each edge span draws its own length: over many batches they take every length up to the
    # edge zone and differ as often as two independent draws do (the right edge had copied
    # the left one's length unnoticed, since each stayed within its range)
    sampler = SpatiotemporalMaskSampler(24, 10, static_shapes=False)
    sizes = [sampler.draw_sizes() for _ in range(400)]
    left, right = [s["n_left"] for s in sizes], [s["n_right"] for s in sizes]
    assert set(left) == set(right) == set(range(sampler.edge_width + 1))
    # round(10 * U(0, 0.4)) capped at 3 is 0, 1, 2, 3 with probabilities 1/8, 1/4, 1/4, 3/8
    differ = 1 - (1 / 8) ** 2 - 2 * (1 / 4) ** 2 - (3 / 8) ** 2
    assert sum(a != b for a, b in zip(left, right)) / len(sizes) == pytest.approx(differ, abs=0.08)


def test_the_observation_blocks_region_and_time_fractions_are_drawn_independently():
    # u and v are two draws: a large block of regions says nothing of its span (one draw for
    # both had kept each within its range and made them move together)
    sampler = SpatiotemporalMaskSampler(50, 50, static_shapes=False)
    sizes = [sampler.draw_sizes() for _ in range(300)]
    n_obs = np.array([s["n_obs"] for s in sizes], dtype=float)
    n_time = np.array([s["n_time"] for s in sizes], dtype=float)
    assert n_obs.std() > 0 and n_time.std() > 0
    assert abs(np.corrcoef(n_obs, n_time)[0, 1]) < 0.2
