"""One training step: the loss goes down, the target encoder moves only through EMA."""

import collections
import contextlib
import math
import os
import signal
import types

import numpy as np
import pytest
import torch
import torch.distributed as dist

from brainjepa_sk.nn import BrainJEPA
from brainjepa_sk.nn.masking import SpatiotemporalMaskSampler
from brainjepa_sk.train import (
    PretrainSchedule,
    collapse_metrics,
    cosine_ramp,
    distributed,
    linear_ramp,
    make_optimizer,
    parameter_groups,
    set_hyperparameters,
    train_step,
    warmup_cosine,
)
from brainjepa_sk.train.runtime import global_rng_state, set_global_rng_state

N_REGIONS, N_FRAMES, PATCH = 16, 32, 4


def _setup(seed=0):
    torch.manual_seed(seed)
    model = BrainJEPA(torch.randn(N_REGIONS, 8), patch_size=PATCH, embed_dim=32, depth=2,
                      num_heads=2, predictor_embed_dim=16, predictor_depth=1).train()
    optimizer = make_optimizer(model, lr=1e-3, weight_decay=0.04)
    sampler = SpatiotemporalMaskSampler(N_REGIONS, N_FRAMES // PATCH, seed=seed)
    data = torch.randn(64, N_FRAMES, N_REGIONS, generator=torch.Generator().manual_seed(seed))
    return model, optimizer, sampler, data


def test_loss_goes_down_over_50_steps():
    model, optimizer, sampler, data = _setup()
    batches = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(50):
        x = data[torch.randint(0, 64, (8,), generator=batches)]
        losses.append(train_step(model, optimizer, x, sampler.sample(8), momentum=0.99).item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_target_encoder_moves_only_through_ema():
    model, optimizer, sampler, data = _setup()
    x = data[:8]
    for step in range(3):
        target_before = [p.detach().clone() for p in model.target_encoder.parameters()]
        train_step(model, optimizer, x, sampler.sample(8), momentum=0.9)
        for before, after, online in zip(
            target_before, model.target_encoder.parameters(), model.encoder.parameters()
        ):
            assert after.grad is None and not after.requires_grad
            torch.testing.assert_close(after, 0.9 * before + 0.1 * online.detach())
    # momentum 1: the target encoder does not move at all while the encoder does
    frozen = [p.detach().clone() for p in model.target_encoder.parameters()]
    online_before = [p.detach().clone() for p in model.encoder.parameters()]
    train_step(model, optimizer, x, sampler.sample(8), momentum=1.0)
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.target_encoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(online_before, model.encoder.parameters()))


def test_momentum_0_is_accepted_and_makes_the_target_encoder_the_online_one():
    """Both ends of [0, 1] are valid momenta: at 0 the target encoder is a copy of the online
    encoder after the step (it is not refused as out of range)."""
    model, optimizer, sampler, data = _setup()
    train_step(model, optimizer, data[:8], sampler.sample(8), momentum=0.0)
    for target, online in zip(model.target_encoder.parameters(), model.encoder.parameters()):
        assert torch.equal(target, online.detach())


def test_a_batch_that_does_not_split_into_the_micro_batches_is_refused_before_any_change():
    """7 windows cannot be run as 2 equal micro-batches: ``train_step`` names the problem and
    leaves the weights alone (it does not train on uneven pieces or drop a window)."""
    model, optimizer, sampler, data = _setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"a batch of 7 windows cannot be split into "
                                         r"accumulation_steps=2 equal micro-batches"):
        train_step(model, optimizer, data[:7], sampler.sample(7), 0.99, accumulation_steps=2)
    # int() ran 2.5 as 2 micro-batches and True as 1; refused as PretrainLoop refuses them
    for steps in (0, 2.5, True, 2.0):
        with pytest.raises(ValueError, match=rf"^accumulation_steps must be an int >= 1, got "
                                             rf"{steps!r}$"):
            train_step(model, optimizer, data[:8], sampler.sample(8), 0.99,
                       accumulation_steps=steps)
    assert all(torch.equal(value, before[key]) for key, value in model.state_dict().items())


def test_step_is_deterministic_given_model_data_and_masks():
    results = []
    for _ in range(2):
        model, optimizer, sampler, data = _setup(seed=3)
        losses = [train_step(model, optimizer, data[:8], sampler.sample(8), 0.99).item()
                  for _ in range(3)]
        results.append((losses, [p.detach().clone() for p in model.parameters()]))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))


def test_optimizer_groups_exclude_biases_and_norms_from_weight_decay():
    model, optimizer, _, _ = _setup()
    decayed, plain = optimizer.param_groups
    assert all(p.ndim >= 2 for p in decayed["params"])
    assert all(p.ndim <= 1 for p in plain["params"]) and plain["weight_decay"] == 0.0
    target_ids = {id(p) for p in model.target_encoder.parameters()}
    optimised = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not optimised & target_ids
    n_trainable = sum(1 for m in (model.encoder, model.predictor) for _ in m.parameters())
    assert len(optimised) == n_trainable
    set_hyperparameters(optimizer, lr=0.5, weight_decay=0.3)
    assert decayed["lr"] == plain["lr"] == 0.5
    assert decayed["weight_decay"] == 0.3 and plain["weight_decay"] == 0.0
    assert len(parameter_groups([model.encoder], 0.1)[0]["params"]) > 0


def test_set_hyperparameters_decays_a_group_whose_weight_decay_was_zero():
    """A decayed group is told apart by its mark, not by its current value: one that starts
    at a weight decay of 0 still follows the schedule."""
    model, _, _, _ = _setup()
    optimizer = make_optimizer(model, weight_decay=0.0)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == plain["weight_decay"] == 0.0
    set_hyperparameters(optimizer, lr=0.1, weight_decay=0.3)
    assert decayed["weight_decay"] == 0.3 and plain["weight_decay"] == 0.0


def test_parameter_groups_leave_frozen_parameters_out():
    model, _, _, _ = _setup()
    model.encoder.patch_embed.requires_grad_(False)
    frozen = {id(p) for p in model.encoder.patch_embed.parameters()}
    groups = parameter_groups([model.encoder, model.predictor], 0.1)
    optimised = [id(p) for group in groups for p in group["params"]]
    assert frozen and not frozen & set(optimised)
    n_trainable = sum(p.requires_grad for m in (model.encoder, model.predictor)
                      for p in m.parameters())
    assert len(optimised) == n_trainable


def test_the_pretraining_optimizer_holds_each_encoder_and_predictor_parameter_once():
    """Every trainable parameter of the context encoder and of the predictor is in exactly one
    of the optimizer's groups and the target encoder's in none (it moves only by the EMA); one
    step then moves every parameter of the predictor, not only the encoder's."""
    model, optimizer, sampler, data = _setup()
    held = collections.Counter(id(p) for group in optimizer.param_groups for p in group["params"])
    predictor = list(model.predictor.parameters())
    trainable = [p for p in [*model.encoder.parameters(), *predictor] if p.requires_grad]
    assert predictor
    assert held == collections.Counter(id(p) for p in trainable)
    assert not held.keys() & {id(p) for p in model.target_encoder.parameters()}
    before = [p.detach().clone() for p in predictor]
    train_step(model, optimizer, data[:8], sampler.sample(8), momentum=0.99)
    unmoved = [name for (name, p), old in zip(model.predictor.named_parameters(), before)
               if torch.equal(p, old)]
    assert not unmoved, f"predictor parameters unchanged by a step: {unmoved}"


def test_research_schedule_values():
    schedule = PretrainSchedule.from_epochs(300, steps_per_epoch=10)
    assert schedule.total_steps == 3000 and schedule.warmup_steps == 400
    # as the research code counts: lr and weight decay advance before each update, the EMA
    # momentum after it
    lr, wd, momentum = schedule(0)
    assert lr == pytest.approx(5e-5 + (1e-3 - 5e-5) / 400)
    assert wd == pytest.approx(0.4 + 0.5 * (0.04 - 0.4) * (1 + math.cos(math.pi / 3000)))
    assert momentum == 0.996
    lr, _, _ = schedule(399)  # the warm-up's last update reaches the peak
    assert lr == pytest.approx(1e-3)
    lr, wd, momentum = schedule(2999)  # the last update
    assert (lr, wd) == (pytest.approx(1e-6), pytest.approx(0.4))
    assert momentum == pytest.approx(0.996 + 0.004 * 2999 / 3000)
    lrs = [schedule(s)[0] for s in range(0, 3000, 50)]
    peak = lrs.index(max(lrs))
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1 : peak + 1]))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :]))
    assert warmup_cosine(5, 10, 0, 0.0, 1.0, 0.0) == pytest.approx(0.5)
    # past the end the final value holds (a run extended without a new schedule)
    assert warmup_cosine(12, 10, 2, 0.0, 1.0, 0.1) == pytest.approx(0.1)
    assert schedule(3500)[0] == pytest.approx(1e-6)
    # the warm-up is rounded to whole steps, not truncated: 10 epochs x 5 steps x 40/300
    assert PretrainSchedule.from_epochs(10, steps_per_epoch=5).warmup_steps == 7
    # a warm-up of 0 epochs asked for is none, not the default share
    assert PretrainSchedule.from_epochs(10, steps_per_epoch=5, warmup_epochs=0).warmup_steps == 0


def test_the_schedules_hold_their_final_values_past_the_last_step():
    """A run extended without a new schedule keeps every final value: the weight decay and
    the EMA momentum do not swing back (a cosine past its end) or overshoot 1 (a line)."""
    schedule = PretrainSchedule(total_steps=10, warmup_steps=2)
    for step in (10, 15, 19, 40):
        lr, weight_decay, momentum = schedule(step)
        assert lr == pytest.approx(1e-6)
        assert weight_decay == pytest.approx(0.4)
        assert momentum == pytest.approx(1.0)
    assert cosine_ramp(25, 10, 0.04, 0.4) == pytest.approx(0.4)
    assert linear_ramp(25, 10, 0.996, 1.0) == pytest.approx(1.0)
    # a ramp of no steps (a one-step run) is at its end, without a division by zero
    assert cosine_ramp(1, 0, 0.04, 0.4) == pytest.approx(0.4)
    assert linear_ramp(1, 0, 0.996, 1.0) == pytest.approx(1.0)
    # before the end they still move (the test can fail)
    assert cosine_ramp(5, 10, 0.04, 0.4) == pytest.approx(0.22)
    assert linear_ramp(5, 10, 0.996, 1.0) == pytest.approx(0.998)


def test_the_weight_decay_cosine_spans_the_whole_run_and_the_lrs_the_steps_after_warm_up():
    """Halfway through a run the weight decay is halfway between its ends, warm-up or not (the
    research recipe's weight-decay cosine starts at step 0); the learning rate's cosine starts
    at the end of the warm-up and is halfway down halfway between it and the last step."""
    schedule = PretrainSchedule(total_steps=100, warmup_steps=20)
    _, weight_decay, _ = schedule(49)  # update 49 uses the values at step 50 of 100
    assert weight_decay == pytest.approx((0.04 + 0.4) / 2)
    lr, _, _ = schedule(59)  # step 60: 40 of the cosine's 80 steps
    assert lr == pytest.approx((1e-3 + 1e-6) / 2)


def test_make_optimizer_takes_the_given_betas():
    model, _, _, _ = _setup()
    optimizer = make_optimizer(model, betas=(0.8, 0.95))
    assert [group["betas"] for group in optimizer.param_groups] == [(0.8, 0.95)] * 2
    assert make_optimizer(model).defaults["betas"] == (0.9, 0.999)


def test_collapse_metrics():
    torch.manual_seed(0)
    healthy = collapse_metrics(torch.randn(256, 16))
    assert healthy["std"] == pytest.approx(1.0, abs=0.1)
    assert 12 < healthy["effective_rank"] <= 16
    offset = collapse_metrics(torch.randn(256, 16) + 100.0)  # a mean is no collapse
    assert 12 < offset["effective_rank"] <= 16
    collapsed = collapse_metrics(torch.ones(256, 16) + 1e-7 * torch.randn(256, 16))
    assert collapsed["std"] < 1e-5
    # the spread is across samples, feature by feature: every sample alike is collapse even
    # when the features differ from one another
    alike = collapse_metrics(torch.arange(16.0).repeat(256, 1))
    assert alike["std"] == pytest.approx(0.0, abs=1e-6)
    scaled = torch.randn(256, 16) * torch.arange(1.0, 17.0)
    assert collapse_metrics(scaled)["std"] == pytest.approx(float(scaled.std(0).mean()), rel=1e-5)
    rank_one = collapse_metrics(torch.randn(256, 1) * torch.randn(1, 16))
    assert rank_one["effective_rank"] == pytest.approx(1.0, abs=0.05)
    single = collapse_metrics(torch.randn(1, 16))  # one sample: unknown, not "collapsed"
    assert math.isnan(single["std"]) and math.isnan(single["effective_rank"])
    # two samples are the fewest with a spread: measured, not NaN
    pair = collapse_metrics(torch.tensor([[0.0, 1.0], [2.0, 1.0]]))
    assert pair["std"] == pytest.approx(math.sqrt(2.0) / 2)
    assert pair["effective_rank"] == pytest.approx(1.0)
    diverged = torch.randn(8, 16)
    diverged[3, 2] = float("inf")  # a diverged run: no SVD error, NaN (the loss guard reports)
    metrics = collapse_metrics(diverged)
    assert math.isnan(metrics["std"]) and math.isnan(metrics["effective_rank"])


def test_features_that_are_all_alike_are_collapsed_not_unknown():
    """Every sample the same: no spread at all, std 0 and effective rank 1 (not NaN)."""
    metrics = collapse_metrics(torch.ones(8, 4))
    assert metrics["std"] == 0.0 and metrics["effective_rank"] == pytest.approx(1.0)


def test_the_effective_rank_is_the_entropy_of_the_singular_values_not_of_their_squares():
    """Roy & Vetterli: the singular values themselves, normalised to sum to 1."""
    # centred features with orthogonal columns: singular values 2 * sqrt(2) and sqrt(2)
    features = torch.tensor([[2.0, 1.0], [-2.0, 1.0], [2.0, -1.0], [-2.0, -1.0]])
    p = torch.tensor([2.0, 1.0]) / 3.0
    expected = math.exp(float(-(p * p.log()).sum()))  # 1.89; of the squares: 1.65
    assert collapse_metrics(features)["effective_rank"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.gpu
def test_bf16_step_on_cuda():
    model, _, _, data = _setup()
    model = model.to("cuda")
    optimizer = make_optimizer(model)
    assert optimizer.defaults["fused"]
    sampler = SpatiotemporalMaskSampler(N_REGIONS, N_FRAMES // PATCH, seed=0, device="cuda")
    losses = [train_step(model, optimizer, data[:8].cuda(), sampler.sample(8), 0.99,
                         autocast_dtype=torch.bfloat16).item() for _ in range(20)]
    assert losses[-1] < losses[0]


def test_tensor_checksum_depends_on_where_each_tensor_is():
    """Two same-shape weights swapped (a damaged or mixed-up file) change the checksum."""
    from brainjepa_sk.train.runtime import tensor_checksum

    first, second = torch.zeros(2, 3), torch.ones(2, 3)
    assert tensor_checksum({"a": first, "b": second}) != tensor_checksum({"a": second, "b": first})
    assert tensor_checksum([first, second]) != tensor_checksum([second, first])
    # the same tensors in the same order, under other keys
    assert tensor_checksum({"a": first, "b": {}}) != tensor_checksum({"a": {}, "b": first})
    assert tensor_checksum({"a": first, "b": second}) == tensor_checksum({"b": second, "a": first})


def test_tensor_checksum_depends_on_the_dtype_of_same_bytes():
    """Zeros are zero bytes in every dtype: a weight stored in another dtype still differs."""
    from brainjepa_sk.train.runtime import tensor_checksum

    assert (tensor_checksum({"w": torch.zeros(4, dtype=torch.float32)})
            != tensor_checksum({"w": torch.zeros(4, dtype=torch.int32)}))


def test_all_finite_is_false_for_nan_or_infinite_values_anywhere():
    from brainjepa_sk.train.runtime import all_finite

    assert all_finite([torch.ones(3), torch.zeros(2, 2)])
    for bad in (float("nan"), float("inf"), float("-inf")):
        assert not all_finite([torch.ones(3), torch.tensor([[0.0, bad]])])
    assert all_finite([])  # nothing to check: nothing is broken


def test_cpu_copy_shares_nothing_with_the_state_it_copies():
    from brainjepa_sk.train.runtime import cpu_copy

    weights = torch.nn.Parameter(torch.ones(3))
    state = {"w": weights, "groups": [{"lr": 0.1, "params": [0]}], "extra": np.array([1.0]),
             "pair": (torch.zeros(1), 2), "listed": [weights]}
    copied = cpu_copy(state)
    with torch.no_grad():
        weights += 1
    state["extra"][0] = 5.0
    state["groups"][0]["params"].append(1)
    assert torch.equal(copied["w"], torch.ones(3)) and not copied["w"].requires_grad
    assert copied["extra"].tolist() == [1.0]
    assert copied["groups"] == [{"lr": 0.1, "params": [0]}]
    assert type(copied["pair"]) is tuple and torch.equal(copied["pair"][0], torch.zeros(1))
    assert torch.equal(copied["listed"][0], torch.ones(3))  # tensors in lists: detached too
    assert not copied["listed"][0].requires_grad
    # a namedtuple (e.g. a sampler's or a scheduler's state) keeps its type and fields
    Pair = collections.namedtuple("Pair", ["tensor", "count"])
    copied = cpu_copy({"pair": Pair(weights, 3)})["pair"]
    assert type(copied) is Pair and copied.count == 3
    assert torch.equal(copied.tensor, weights.detach()) and copied.tensor is not weights


def test_tensor_checksum_counts_other_values_when_asked():
    from brainjepa_sk.train.runtime import tensor_checksum

    weights = torch.ones(2)
    first = {"w": weights, "n_frames": 16, "names": ["a", "b"], "t_r": 0.72}
    for change in ({"n_frames": 20}, {"names": ["a", "c"]}, {"t_r": 0.7200001},
                   {"n_frames": "16"}):
        other = {**first, **change}
        assert tensor_checksum(other) == tensor_checksum(first)  # tensors only by default
        assert tensor_checksum(other, values=True) != tensor_checksum(first, values=True)
    # a value counts by its place too: a renamed key, or a value moved to another list
    assert tensor_checksum({"a": 1}, values=True) != tensor_checksum({"b": 1}, values=True)
    assert (tensor_checksum({"x": [1, 2], "y": []}, values=True)
            != tensor_checksum({"x": [1], "y": [2]}, values=True))


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(),
                    reason="checks the messages on a machine with neither")
@pytest.mark.parametrize(("device", "message"), [
    ("gpu", "device='gpu' is not a device torch knows: use 'auto', 'cpu', 'cuda'"),
    ("cuda:x", "device='cuda:x' is not a device torch knows"),
    ("mps", "device='mps' was asked for but MPS is not available"),
    ("cuda:1", "device='cuda:1' was asked for but CUDA is not available"),
])
def test_devices_that_do_not_exist_here_are_named_in_a_value_error(device, message):
    """Not torch's RuntimeError from deep inside a fit (found by a new-user review)."""
    from brainjepa_sk.train.runtime import resolve_device

    with pytest.raises(ValueError, match=message):
        resolve_device(device)
    assert resolve_device("cpu:0") == torch.device("cpu:0")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_cuda_indices_past_the_last_gpu_are_named(monkeypatch):
    """Runs anywhere: the machine is made to look like one with a single GPU."""
    from brainjepa_sk.train.runtime import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"device='cuda:1' was asked for but this machine has "
                                         r"1 CUDA device\(s\)"):
        resolve_device("cuda:1")
    assert resolve_device(torch.device("cuda", 0)) == torch.device("cuda:0")
    assert resolve_device("cuda") == torch.device("cuda")


@pytest.mark.parametrize(("device", "message"), [
    ("meta", r"device='meta' holds tensors' shapes without their data: the model cannot "
             r"compute on it; use 'auto', 'cpu' or 'cuda'$"),
    # no torch.ipu module to ask: torch's own error, found by computing on it
    ("ipu", r"device='ipu' cannot run the model with this torch \(\w+Error: [^\n]+\); use "
            r"'auto', 'cpu' or 'cuda', or install the backend's torch package$"),
])
def test_devices_the_model_cannot_compute_on_are_named_in_a_value_error(device, message):
    """Not torch's error from deep inside fit ('unsupported scalarType', 'META device type not
    an accelerator'): resolve_device, which every estimator calls first, names device."""
    from brainjepa_sk.train import runtime

    with pytest.raises(ValueError, match=message):
        runtime.resolve_device(device)
    # out-of-tree backends without an is_available are asked the same way: one that computes
    # (as the CPU does) is taken
    assert runtime._compute_failure("cpu") is None


def test_auto_and_none_take_cuda_where_there_is_one_else_the_cpu(monkeypatch):
    """Runs anywhere: the machine is made to look like one with a GPU, then one without."""
    from brainjepa_sk.train.runtime import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == torch.device("cpu")


@pytest.mark.parametrize(("world_size", "local_rank", "n_gpus"), [(4, 2, 2), (4, 3, 2), (2, 1, 1)])
def test_more_torchrun_processes_than_gpus_is_named_before_joining_the_group(
        monkeypatch, world_size, local_rank, n_gpus):
    from brainjepa_sk.train.distributed import process_device

    monkeypatch.setenv("WORLD_SIZE", str(world_size))
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))  # 2 of 2: the first past the last GPU
    monkeypatch.delenv("MASTER_ADDR", raising=False)  # joining would fail otherwise
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n_gpus)
    with pytest.raises(ValueError, match=rf"LOCAL_RANK={local_rank} but this machine has "
                                         rf"{n_gpus} CUDA device\(s\).*--nproc-per-node"):
        process_device(torch.device("cuda"))


def test_each_torchrun_process_takes_the_gpu_of_its_local_rank(monkeypatch):
    """Runs anywhere: the second of two 2-GPU machines, where global rank 3 is local rank 1."""
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(distributed, "init_from_environment", lambda device: True)  # joined
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_rank", lambda group=None: 3)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 4)
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert distributed.process_device(torch.device("cuda")) == torch.device("cuda", 1)
    assert chosen == [torch.device("cuda", 1)]  # made current, for NCCL's collectives
    # a device with an index is the one asked for
    assert distributed.process_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert len(chosen) == 1


@pytest.mark.parametrize(("environment", "warns"), [
    ({}, True),  # a process on its own
    ({"WORLD_SIZE": "2", "RANK": "0"}, True),
    ({"WORLD_SIZE": "2", "RANK": "1"}, False),
    ({"WORLD_SIZE": "two", "RANK": "1"}, True),  # not a launcher's numbers
    ({"RANK": "1"}, True),  # a RANK without torchrun's WORLD_SIZE (another launcher's)
    ({"WORLD_SIZE": "2", "RANK": "one"}, True),  # a RANK that is not a launcher's number
    ({"WORLD_SIZE": "2"}, True),  # a WORLD_SIZE left without RANK: a process on its own
])
def test_under_torchrun_only_process_0_warns_also_before_joining_the_group(
        monkeypatch, environment, warns):
    """The checks before fit joins the group (input, checkpoint_dir) run in every process:
    torchrun's RANK decides which warns, as the group's rank does after joining."""
    import warnings

    from brainjepa_sk._warnings import warn_user

    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_user("a warning")
    assert [str(w.message) for w in caught] == (["a warning"] if warns else [])


def test_warn_user_skips_only_the_packages_own_folder_and_keeps_the_category(monkeypatch):
    """A script beside the package whose name starts with the package's (``brainjepa_sk_demo.py``)
    is the user's code: the warning names it, not its caller; the category is the one given."""
    import os
    import warnings

    import brainjepa_sk
    from brainjepa_sk._warnings import warn_user

    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    beside = os.path.dirname(os.path.abspath(brainjepa_sk.__file__)) + "_demo.py"
    code = compile("warn_user('a warning', RuntimeWarning)", beside, "exec")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(code, {"warn_user": warn_user})
    assert [(w.filename, w.category) for w in caught] == [(beside, RuntimeWarning)]


def _waits_for_another_threads_catch_warnings_block(call):
    """Whether ``call()`` in a second thread waits while a first thread is inside one of the
    package's catch_warnings blocks, and runs once that block ends."""
    import threading

    from brainjepa_sk._warnings import catch_warnings

    inside, release, done = (threading.Event() for _ in range(3))

    def hold():
        with catch_warnings():
            inside.set()
            release.wait(10)

    def second():
        call()
        done.set()

    threads = [threading.Thread(target=hold, daemon=True),
               threading.Thread(target=second, daemon=True)]
    threads[0].start()
    assert inside.wait(10)
    threads[1].start()
    waited = not done.wait(0.3)  # waits for the first block to end
    release.set()
    assert done.wait(10)
    for thread in threads:
        thread.join(10)
    return waited


def test_the_packages_catch_warnings_blocks_of_two_threads_never_overlap():
    """A second thread's block waits until the first thread's block has restored the filters
    (two overlapping ``warnings.catch_warnings`` left one's filters in force)."""
    from brainjepa_sk._warnings import catch_warnings

    def block():
        with catch_warnings():
            pass

    assert _waits_for_another_threads_catch_warnings_block(block)


def test_the_packages_check_array_waits_for_another_threads_catch_warnings_block():
    """scikit-learn's check_array enters warnings.catch_warnings itself: overlapping with a
    block of the package in another thread (threads transforming one embedder), it restored
    the filters in the wrong order, leaving its ComplexWarning error filter in force."""
    import numpy as np

    from brainjepa_sk import _warnings, validation

    assert validation.check_array is _warnings.check_array  # the package's calls go through it
    assert _waits_for_another_threads_catch_warnings_block(
        lambda: _warnings.check_array(np.ones((2, 2))))


def test_the_packages_catch_warnings_blocks_nest_within_one_thread():
    """A block inside another in the same thread (a helper called under a block) goes on."""
    import threading
    import warnings

    from brainjepa_sk._warnings import catch_warnings

    recorded = []

    def nested():
        with catch_warnings(), catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.warn("inner", UserWarning)
        recorded.extend(str(w.message) for w in caught)

    thread = threading.Thread(target=nested, daemon=True)  # left behind if it never ends
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and recorded == ["inner"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:.*fork:DeprecationWarning")
def test_a_child_forked_while_a_thread_is_inside_a_catch_warnings_block_can_enter_one():
    """The lock a thread held at the fork has no owner in the child: the child gets a new one
    (else its first block, in a DataLoader worker say, would wait forever)."""
    import threading

    from brainjepa_sk import _warnings

    inside, release = threading.Event(), threading.Event()

    def hold():
        with _warnings.catch_warnings():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert inside.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: report whether it could take the lock, then leave at once
            os._exit(0 if _warnings._CATCH_LOCK.acquire(timeout=2) else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        thread.join(10)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_world_size_without_the_launchers_other_variables_is_named(monkeypatch):
    """WORLD_SIZE left in the environment (a job script's export, a notebook on a cluster node)
    makes fit join a group: torch's own error said only that RANK was expected. A WORLD_SIZE
    that is not a number is another program's, a process on its own (as for warnings): it
    stopped fit with int()'s message."""
    from brainjepa_sk import BrainJEPAPretrainer

    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    model = BrainJEPAPretrainer(
        gradients=np.random.default_rng(0).standard_normal((6, 3)),
        model_size=dict(embed_dim=8, depth=1, num_heads=2), patch_size=2, n_frames=8,
        predictor_depth=1, n_epochs=1, batch_size=4, device="cpu", verbose=0, random_state=0)
    X = np.random.default_rng(1).standard_normal((4, 8, 6))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"^WORLD_SIZE=2 is set in the environment, so this "
                                         r"process joins a process group of 2 processes, .*"
                                         r"RANK expected, but not set; start the script with "
                                         r"torchrun .*or unset WORLD_SIZE"):
        model.fit(X)
    assert not dist.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "two")
    assert len(model.fit(X).history_) == 1


def test_without_torchrun_a_cuda_device_is_left_as_asked(monkeypatch):
    """Runs anywhere: one process, no group. "cuda" stays the current device, whichever the
    user made current; LOCAL_RANK is torchrun's only."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "1")
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert distributed.process_device(torch.device("cuda")) == torch.device("cuda")
    assert chosen == []


def _record_joining(monkeypatch):
    """Process 1 of a group of 2 under torchrun, whose joining is recorded, not done: the
    list of the backends joined with."""
    joined = []
    monkeypatch.setattr(dist, "init_process_group", lambda backend: joined.append(backend))
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(joined))
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(dist, "get_rank", lambda group=None: 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    return joined


@pytest.mark.parametrize(("device", "backend"), [("cpu", "gloo"), ("cuda", "nccl")])
def test_torchruns_group_is_joined_once_with_the_backend_of_the_device(
        monkeypatch, device, backend):
    """Runs anywhere: joining is recorded, not done."""
    joined = _record_joining(monkeypatch)
    assert distributed.init_from_environment(torch.device(device))
    assert distributed.init_from_environment(torch.device(device))  # already a member
    assert joined == [backend]
    # a group joined without torchrun's variables (mp.spawn) counts too
    monkeypatch.delenv("WORLD_SIZE")
    assert distributed.init_from_environment(torch.device(device)) and joined == [backend]


def test_a_group_of_one_process_already_joined_is_not_data_parallel(monkeypatch):
    """Runs anywhere: whatever WORLD_SIZE says, the group joined decides."""
    joined = _record_joining(monkeypatch)
    joined.append("gloo")  # a member already
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 1)
    assert not distributed.init_from_environment(torch.device("cpu"))
    assert joined == ["gloo"]


def test_a_launcher_setting_no_local_rank_gives_its_process_the_first_gpu(monkeypatch):
    """Runs anywhere: WORLD_SIZE and RANK without LOCAL_RANK (not torchrun's way): a machine of
    one GPU is enough, and "cuda" is its first."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(distributed, "init_from_environment", lambda device: True)  # joined
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert distributed.process_device(torch.device("cuda")) == torch.device("cuda", 0)
    assert chosen == [torch.device("cuda", 0)]


def test_under_torchrun_a_cpu_process_joins_the_group_and_keeps_its_device(monkeypatch):
    """LOCAL_RANK picks a GPU only for "cuda" without an index; the group is joined anyway."""
    joined = _record_joining(monkeypatch)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.process_device(torch.device("cpu")) == torch.device("cpu")
    assert joined == ["gloo"]


def test_only_process_0_is_the_main_process(monkeypatch):
    assert distributed.world() == (0, 1) and distributed.is_main_process()  # no group
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 3)
    for rank in range(3):
        monkeypatch.setattr(dist, "get_rank", lambda group=None, rank=rank: rank)
        assert distributed.world() == (rank, 3)
        assert distributed.is_main_process() == (rank == 0)


def test_without_a_process_group_the_collectives_answer_as_one_process():
    assert distributed.all_gather_objects(k for k in range(3)) == [0, 1, 2]
    assert distributed.any_process(1, torch.device("cpu")) is True
    assert distributed.any_process(0, torch.device("cpu")) is False
    assert distributed.any_process_each([1, 0, True], torch.device("cpu")) == [True, False, True]
    value = torch.ones(2)
    assert distributed.all_reduce_mean(value) is value
    assert distributed.on_main_process(lambda a, b=0: a + b, 1, b=2) == 3


def test_forked_rng_blocks_nest_and_leave_the_callers_stream_alone():
    """The same thread may nest seeded blocks (a prediction inside a fit); each block draws
    from its own seed and hands the stream back as it found it."""
    import threading

    from brainjepa_sk.train.runtime import forked_rng

    cpu, draws = torch.device("cpu"), {}

    def nested():
        with forked_rng(0, cpu):
            draws["outer"] = torch.rand(2)
            with forked_rng(1, cpu):
                draws["inner"] = torch.rand(2)
            with forked_rng(None, cpu):
                torch.rand(5)  # an unseeded block's draws are undone too
            draws["outer"] = torch.cat([draws["outer"], torch.rand(2)])

    before = torch.get_rng_state()
    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "a nested block waited for its own lock"
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(draws["outer"], torch.rand(4, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(draws["inner"], torch.rand(2, generator=torch.Generator().manual_seed(1)))


def test_an_unseeded_forked_rng_block_draws_from_the_callers_stream_without_seeding_it():
    """seed=None (random_state=None) seeds nothing: the block draws what the caller's stream
    would give next, not a fixed stream (every unseeded fit would start alike), and hands the
    stream back as it found it."""
    from brainjepa_sk.train.runtime import forked_rng

    cpu = torch.device("cpu")
    for caller_seed in (3, 4):
        torch.manual_seed(caller_seed)
        with forked_rng(None, cpu):
            drawn = torch.rand(3)
        expected = torch.rand(3, generator=torch.Generator().manual_seed(caller_seed))
        assert torch.equal(drawn, expected)
        assert torch.equal(torch.rand(3), expected)  # the caller's stream, untouched


def test_the_saved_generator_state_is_that_of_the_training_gpu(monkeypatch):
    """Runs anywhere: two fake CUDA generators. A run on cuda:1 saves and restores cuda:1's
    state, whichever device is current; a CPU run leaves the CUDA generators alone."""
    generators = {k: torch.tensor([10 + k], dtype=torch.uint8) for k in (0, 1)}

    def index(device):
        return torch.device(device).index or 0  # "cuda": the current device, 0 here

    def get_rng_state(device="cuda"):
        return generators[index(device)].clone()

    def set_rng_state(new_state, device="cuda"):
        generators[index(device)] = new_state.clone()

    monkeypatch.setattr(torch.cuda, "get_rng_state", get_rng_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_rng_state)
    device = torch.device("cuda", 1)
    state = global_rng_state(device)
    assert state["cuda"].tolist() == [11] and torch.equal(state["cpu"], torch.get_rng_state())
    generators[1] = torch.tensor([99], dtype=torch.uint8)  # the run drew from it
    set_global_rng_state(state, device)
    assert {k: v.tolist() for k, v in generators.items()} == {0: [10], 1: [11]}
    gpu_state = {"cpu": torch.get_rng_state(), "cuda": torch.tensor([5], dtype=torch.uint8)}
    set_global_rng_state(gpu_state, torch.device("cpu"))
    assert {k: v.tolist() for k, v in generators.items()} == {0: [10], 1: [11]}
    # a state saved by a CPU run, resumed on a GPU: its CPU state only
    cpu_state = global_rng_state(torch.device("cpu"))
    assert list(cpu_state) == ["cpu"]
    set_global_rng_state(cpu_state, device)
    assert {k: v.tolist() for k, v in generators.items()} == {0: [10], 1: [11]}


def test_forked_rng_computes_in_float32_and_gives_the_callers_default_dtype_back():
    """Inside the block the default dtype is float32; the caller's float64 default is given
    back, also when the block fails (a fit that raises)."""
    from brainjepa_sk.train.runtime import forked_rng

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with forked_rng(0, torch.device("cpu")):
            assert torch.get_default_dtype() == torch.float32
        assert torch.get_default_dtype() == torch.float64
        with pytest.raises(RuntimeError, match="the fit failed"):
            with forked_rng(0, torch.device("cpu")):
                raise RuntimeError("the fit failed")
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(before)


def test_tensor_checksum_depends_on_the_shape_of_same_bytes():
    """The same values in another shape (a transposed or flattened weight) differ."""
    from brainjepa_sk.train.runtime import tensor_checksum

    digests = {tensor_checksum({"w": torch.zeros(shape)}) for shape in ((2, 3), (3, 2), (6,))}
    assert len(digests) == 3


def test_tensor_checksum_counts_the_place_of_tensors_in_nested_lists():
    """The same tensors, in the same order, in other places of nested lists."""
    from brainjepa_sk.train.runtime import tensor_checksum

    first, second = torch.zeros(2), torch.ones(2)
    assert tensor_checksum([[first], [second]]) != tensor_checksum([[first, second]])
    assert tensor_checksum([[first], [second]]) != tensor_checksum([[first], [], [second]])


def test_devices_of_a_type_torch_does_not_take_are_a_value_error_too():
    from brainjepa_sk.train.runtime import resolve_device

    for device in (1.5, ["cpu"]):
        with pytest.raises(ValueError, match="is not a device torch knows"):
            resolve_device(device)


def test_resolve_autocast_takes_bf16_where_asked_or_auto_on_cuda_and_refuses_others():
    from brainjepa_sk.train.runtime import resolve_autocast

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_autocast("auto", cpu) is None and resolve_autocast("fp32", cuda) is None
    assert resolve_autocast("auto", cuda) is resolve_autocast("bf16", cpu) is torch.bfloat16
    assert resolve_autocast("auto", torch.device("mps")) is None  # bf16 on CUDA only
    for precision in ("fp16", "float32", None):
        with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'fp32'"):
            resolve_autocast(precision, cpu)


def test_forked_rng_on_cuda_forks_seeds_and_makes_current_only_the_training_gpu(monkeypatch):
    """Runs anywhere: torch's CUDA calls are recorded, not made. A CUDA device without an
    index is the current one (1 here); only its generator is forked and seeded, and it is the
    current device inside the block."""
    from brainjepa_sk.train.runtime import forked_rng

    calls = []

    @contextlib.contextmanager
    def fork_rng(devices=None, **kwargs):
        calls.append(("fork", list(devices)))
        cpu_state = torch.get_rng_state()  # the CPU part of the fork, done for real
        try:
            yield
        finally:
            torch.set_rng_state(cpu_state)
            calls.append("join")

    @contextlib.contextmanager
    def current(index):
        calls.append(("current", index))
        yield
        calls.append("current back")

    monkeypatch.setattr(torch.random, "fork_rng", fork_rng)
    monkeypatch.setattr(torch.cuda, "device", current)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(("seed", seed)))
    monkeypatch.setattr(torch.cuda, "manual_seed_all",
                        lambda seed: calls.append(("seed all", seed)))
    before = torch.get_rng_state()
    with forked_rng(5, torch.device("cuda")):
        calls.append("block")
        drawn = torch.rand(2)
    assert calls == [("fork", [1]), ("current", 1), ("seed", 5), "block", "current back",
                     "join"]
    assert torch.equal(drawn, torch.rand(2, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(torch.get_rng_state(), before)
    calls.clear()
    with forked_rng(None, torch.device("cuda", 0)):
        calls.append("block")
    assert calls == [("fork", [0]), ("current", 0), "block", "current back", "join"]


def test_work_on_the_main_process_waits_in_a_gloo_group_of_its_own_then_leaves_it(
        monkeypatch):
    """Runs anywhere: a group of two is simulated, process 0 then process 1. The group has the
    long timeout and is destroyed, after a result and after an error alike."""
    made, destroyed, sent = [], [], []
    monkeypatch.setattr(distributed, "_default_store", dist.HashStore)
    monkeypatch.setattr(dist, "new_group", lambda **kwargs: made.append(kwargs) or "group")
    monkeypatch.setattr(dist, "destroy_process_group", destroyed.append)

    def broadcast(objects, src, group):
        sent.append((objects[0], src, group))
        objects[0] = sent[0][0]  # process 1 receives what process 0 sent first

    monkeypatch.setattr(dist, "broadcast_object_list", broadcast)
    calls = []
    monkeypatch.setattr(distributed, "world", lambda: (0, 2))
    assert distributed.on_main_process(lambda a, b: calls.append(a) or a + b, 1, b=2) == 3
    monkeypatch.setattr(distributed, "world", lambda: (1, 2))
    assert distributed.on_main_process(lambda a, b: calls.append(a) or a + b, 1, b=2) == 3
    assert calls == [1]  # process 1 did not do the work
    assert sent == [((True, 3), 0, "group"), (None, 0, "group")]
    assert made == 2 * [{"backend": "gloo", "timeout": distributed.MAIN_PROCESS_TIMEOUT}]
    assert distributed.MAIN_PROCESS_TIMEOUT.total_seconds() >= 3600
    assert destroyed == ["group", "group"]

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(distributed, "world", lambda: (0, 2))
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C in process 0 is sent on to the others
        distributed.on_main_process(interrupted)
    assert sent[-1][0][0] is False and isinstance(sent[-1][0][1], KeyboardInterrupt)
    assert destroyed == 3 * ["group"]


def test_an_error_in_process_0_is_raised_in_the_processes_waiting_for_its_result(monkeypatch):
    """Runs anywhere: process 1 of a simulated group of two receives process 0's error and
    raises it (it does not return it as a result), without doing the work."""
    error = ValueError("the file x.npy is damaged")
    monkeypatch.setattr(distributed, "_default_store", dist.HashStore)
    monkeypatch.setattr(dist, "new_group", lambda **kwargs: "group")
    monkeypatch.setattr(dist, "destroy_process_group", lambda group: None)
    monkeypatch.setattr(dist, "broadcast_object_list",
                        lambda objects, src, group: objects.__setitem__(0, (False, error)))
    monkeypatch.setattr(distributed, "world", lambda: (1, 2))
    calls = []
    with pytest.raises(ValueError, match=r"x\.npy is damaged"):
        distributed.on_main_process(calls.append, 1)
    assert calls == []


def _simulated_process_0(monkeypatch):
    """Process 0 of a simulated group of two, for on_main_process: the group's store, the
    list of what it sends the others, and the stop key of its next call (as process 1 knows
    it)."""
    store, sent = dist.HashStore(), []
    monkeypatch.setattr(distributed, "_default_store", lambda: store)
    monkeypatch.setattr(dist, "new_group", lambda **kwargs: "group")
    monkeypatch.setattr(dist, "destroy_process_group", lambda group: None)
    monkeypatch.setattr(dist, "broadcast_object_list",
                        lambda objects, src, group: sent.append(objects[0]))
    monkeypatch.setattr(distributed, "world", lambda: (0, 2))
    monkeypatch.setattr(distributed, "_main_process_calls", iter([7]))
    return store, sent, "brainjepa_sk/on_main_process/7/stopped"


def test_process_0s_work_is_interrupted_when_a_waiting_process_asks_to_stop(monkeypatch,
                                                                           ctrl_c_raises):
    """Runs anywhere: process 0 of a simulated group of two. Process 1 writes its stop key into
    the group's store (as at its Ctrl-C) while process 0 sleeps in its work: the sleep is
    interrupted at once, and the KeyboardInterrupt that names process 1 is sent to the others
    and raised here."""
    import threading
    import time

    store, sent, stop_key = _simulated_process_0(monkeypatch)

    def work():
        threading.Timer(0.2, store.set, (stop_key, "1")).start()
        time.sleep(10)
        return "done"

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt, match=r"Ctrl-C \(SIGINT\) in process 1, which waited "
                                                r"for process 0 to run .*work: every process"):
        distributed.on_main_process(work)
    assert time.monotonic() - start < 5  # not the 10 s of the work
    assert sent[0][0] is False and isinstance(sent[0][1], KeyboardInterrupt)
    assert "in process 1" in str(sent[0][1])  # the same error, for the others
    assert not store.check([stop_key])  # removed: a later call does not find it


def test_process_0s_work_in_another_thread_is_not_interrupted_in_the_main_thread(
        monkeypatch, ctrl_c_raises):
    """Runs anywhere: process 0 of a simulated group of two calls on_main_process in a thread
    of its own (a fit run in a thread) while its main thread does other work. At the word of
    process 1's Ctrl-C, the watch interrupted the main thread, which raised a
    KeyboardInterrupt in the middle of that other work while the work went on. A signal
    reaches the main thread only: the work ends, then every process stops."""
    import threading
    import time

    store, sent, stop_key = _simulated_process_0(monkeypatch)

    def work():
        store.set(stop_key, "1")  # process 1's Ctrl-C, at once
        time.sleep(1)  # the watch looks every STOP_POLL_SECONDS
        return "done"

    outcome = []

    def call():
        try:
            outcome.append(distributed.on_main_process(work))
        except KeyboardInterrupt as error:
            outcome.append(error)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    interrupted = False
    try:
        time.sleep(1.5)  # the main thread's own work
    except KeyboardInterrupt:
        interrupted = True
    thread.join(10)
    assert not interrupted
    assert isinstance(outcome[0], KeyboardInterrupt) and "in process 1" in str(outcome[0])
    assert sent[0][0] is False and "in process 1" in str(sent[0][1])  # the others stop too


@pytest.mark.parametrize("presses", [1, 2])
def test_a_waiting_process_asks_process_0_to_stop_at_a_first_ctrl_c_and_raises_at_a_second(
        presses, monkeypatch, ctrl_c_raises):
    """Runs anywhere: process 1 of a simulated group of two, whose receive of process 0's
    result blocks. At a first SIGINT it writes its rank under the call's stop key and waits
    on, then raises what process 0 sends; a second SIGINT raises at once."""
    import threading
    import time

    store, answer = dist.HashStore(), threading.Event()
    stop_key = "brainjepa_sk/on_main_process/3/stopped"
    # (raising=False: the test says what a version without them does)
    monkeypatch.setattr(distributed, "_default_store", lambda: store, raising=False)
    monkeypatch.setattr(distributed, "_main_process_calls", iter([3]), raising=False)
    monkeypatch.setattr(dist, "new_group", lambda **kwargs: "group")
    monkeypatch.setattr(dist, "destroy_process_group", lambda group: None)
    monkeypatch.setattr(distributed, "world", lambda: (1, 2))
    sent = KeyboardInterrupt("stopped by Ctrl-C (SIGINT) in process 1, which waited")

    def receive(objects, src, group):  # process 0's answer comes once it was asked to stop
        answer.wait(30)
        objects[0] = (False, sent)

    monkeypatch.setattr(dist, "broadcast_object_list", receive)

    def press():
        for _ in range(presses):
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
        answer.set()  # (after a second press: too late, it raised at once)

    threading.Thread(target=press, daemon=True).start()
    with pytest.raises(KeyboardInterrupt) as raised:
        distributed.on_main_process(lambda: "not run here")
    assert store.check([stop_key]) and store.get(stop_key) == b"1"  # asked, by process 1
    assert (raised.value is sent) == (presses == 1)
    answer.set()


def test_noting_ctrl_c_outside_the_main_thread_changes_nothing():
    """Signal handlers can only be set in the main thread: a fit in another thread (joblib's
    threading backend) runs, and Ctrl-C is left to the main thread's handler."""
    import threading

    from brainjepa_sk.train.runtime import noting_ctrl_c

    handler, outcome = signal.getsignal(signal.SIGINT), []

    def in_a_thread():
        try:
            with noting_ctrl_c({}):
                outcome.append(signal.getsignal(signal.SIGINT))
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert outcome == [handler] and signal.getsignal(signal.SIGINT) is handler


def test_noting_ctrl_c_leaves_an_ignored_sigint_ignored():
    """A process started in the background ignores SIGINT: nothing is marked, nothing raised."""
    from brainjepa_sk.train.runtime import noting_ctrl_c

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        pressed = {}
        with noting_ctrl_c(pressed):
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
        assert pressed == {} and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_noting_first_ctrl_c_notes_the_first_press_and_lets_a_second_one_raise(ctrl_c_raises):
    """With several processes, the first Ctrl-C is a request to stop at a step they agree on
    (noted, nothing raised); a second one in the same process raises at once."""
    from brainjepa_sk.train.runtime import noting_first_ctrl_c

    received, pressed, reached = {}, {}, []
    with pytest.raises(KeyboardInterrupt):
        with noting_first_ctrl_c(received, pressed):
            signal.raise_signal(signal.SIGINT)
            reached.append((dict(received), dict(pressed)))
            signal.raise_signal(signal.SIGINT)
            reached.append("after the second press")
    assert reached == [({"ctrl_c": True}, {})]
    assert pressed == {"ctrl_c": True}
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # an ignored SIGINT stays ignored
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    received = {}
    with noting_first_ctrl_c(received, {}):
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert received == {}


def test_deferring_ctrl_c_lets_the_error_of_its_block_go_on(ctrl_c_raises):
    """Ctrl-C held back in a block that then fails does not hide the failure; the press acts
    at the end of a block that succeeds, with the previous handler back in place."""
    from brainjepa_sk.train.runtime import deferring_ctrl_c

    try:
        with deferring_ctrl_c():
            signal.raise_signal(signal.SIGINT)
            raise RuntimeError("the step failed")
    except BaseException as error:  # a KeyboardInterrupt must not end the test session
        raised = error
    assert type(raised) is RuntimeError and str(raised) == "the step failed"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with deferring_ctrl_c():
            signal.raise_signal(signal.SIGINT)
            reached.append("end of the block")
    assert reached == ["end of the block"]


def test_accumulated_micro_batches_skip_the_gradient_sync_except_the_last():
    """With ``no_sync`` (``DistributedDataParallel.no_sync``), the forward and backward of every
    micro-batch but the last run under it and the last one outside it: the processes all-reduce
    the summed gradients once per step, after the last backward."""
    model, optimizer, sampler, data = _setup()
    inside = {"now": False}
    forwards, backwards = [], []

    @contextlib.contextmanager
    def no_sync():
        inside["now"] = True
        try:
            yield
        finally:
            inside["now"] = False

    model.register_forward_pre_hook(lambda module, args: forwards.append(inside["now"]))
    model.encoder.patch_embed.proj.weight.register_hook(
        lambda grad: backwards.append(inside["now"]))
    train_step(model, optimizer, data[:6], sampler.sample(6), 0.99, accumulation_steps=3,
               no_sync=no_sync)
    assert forwards == backwards == [True, True, False]


def test_the_step_computes_its_loss_with_the_given_forward_and_the_ema_on_the_model():
    """``forward`` (a compiled or DDP wrapper) computes every micro-batch's loss; the optimizer
    step and the EMA act on ``model`` itself, and the result is that of the plain model."""

    class Wrapper(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module, self.calls = module, 0

        def forward(self, *args):
            self.calls += 1
            return self.module(*args)

    model, optimizer, sampler, data = _setup()
    plain, plain_optimizer, _, _ = _setup()
    masks = sampler.sample(8)
    wrapper = Wrapper(model)
    loss = train_step(model, optimizer, data[:8], masks, 0.9, forward=wrapper,
                      accumulation_steps=2)
    expected = train_step(plain, plain_optimizer, data[:8], masks, 0.9, accumulation_steps=2)
    assert wrapper.calls == 2
    assert torch.equal(loss, expected)
    for p, q in zip(model.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(p, q)


def test_the_step_runs_its_forward_under_the_autocast_it_is_given():
    """``autocast_dtype=torch.bfloat16`` runs the forward under CPU autocast: the step's loss is
    the autocast forward's, not the float32 one."""
    model, optimizer, sampler, data = _setup()
    masks = sampler.sample(8)
    x = data[:8]
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            in_bf16 = model(x, masks.context_idx, masks.target_idx)["loss"]
        in_fp32 = model(x, masks.context_idx, masks.target_idx)["loss"]
    assert not torch.equal(in_bf16, in_fp32)  # (the test can fail)
    loss = train_step(model, optimizer, x, masks, 0.99, autocast_dtype=torch.bfloat16)
    assert torch.equal(loss, in_bf16)
    # without an autocast dtype, no autocast (CPU autocast would pick bf16 by itself)
    model, optimizer, _, _ = _setup()
    assert torch.equal(train_step(model, optimizer, x, masks, 0.99), in_fp32)


def test_make_optimizer_starts_from_the_given_learning_rate_and_weight_decay():
    """The decayed group starts at the given weight decay and the other at 0, both at the given
    learning rate: an optimizer stepped before any schedule sets its values uses these."""
    model, _, _, _ = _setup()
    decayed, plain = make_optimizer(model, lr=0.02, weight_decay=0.07).param_groups
    assert (decayed["lr"], decayed["weight_decay"]) == (0.02, 0.07)
    assert (plain["lr"], plain["weight_decay"]) == (0.02, 0.0)
    groups = parameter_groups([model.encoder], 0.3)
    assert [group["weight_decay"] for group in groups] == [0.3, 0.0]


def test_a_warm_up_of_zero_steps_starts_at_the_peak_value():
    """With no warm-up, step 0 already has ``ref_value`` (the cosine's start), not
    ``start_value``; one step of warm-up starts at ``start_value`` and peaks at step 1."""
    assert warmup_cosine(0, 10, 0, 0.0, 1.0, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(0, 10, 1, 0.0, 1.0, 0.1) == pytest.approx(0.0)
    assert warmup_cosine(1, 10, 1, 0.0, 1.0, 0.1) == pytest.approx(1.0)
    # the cosine is at its midpoint halfway between the warm-up's end and the last step
    assert warmup_cosine(6, 10, 2, 0.0, 1.0, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(10, 10, 2, 0.0, 1.0, 0.1) == pytest.approx(0.1)


def test_parameter_groups_spare_biases_by_name_whatever_their_shape():
    """A bias is kept out of weight decay by its name, not only by being 1-D: a 2-D bias (a
    per-token offset, say) is not decayed, while a 2-D weight is; also a bias of the module
    given itself, whose name has no dot before it."""

    class TokenBias(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(3, 4))
            self.bias = torch.nn.Parameter(torch.zeros(3, 4))

    inner = TokenBias()
    for given in (torch.nn.Sequential(inner), inner):  # names "0.bias", then "bias"
        decayed, plain = parameter_groups([given], 0.1)
        assert [id(p) for p in decayed["params"]] == [id(inner.weight)]
        assert [id(p) for p in plain["params"]] == [id(inner.bias)]
    # a scalar parameter (a learned temperature, say) is of at most one dimension too
    inner.temperature = torch.nn.Parameter(torch.tensor(1.0))
    decayed, plain = parameter_groups([inner], 0.1)
    assert [id(p) for p in plain["params"]] == [id(inner.bias), id(inner.temperature)]


def test_a_parameter_frozen_between_steps_stays_where_it_is():
    """Each step clears the gradients to None, not to zeros: a parameter frozen after some
    steps (``requires_grad_(False)``) then has no gradient, and AdamW leaves it alone instead
    of moving it on with its momentum and weight decay."""
    model, optimizer, sampler, data = _setup()
    train_step(model, optimizer, data[:8], sampler.sample(8), 0.99)
    model.encoder.patch_embed.requires_grad_(False)
    frozen = [p.detach().clone() for p in model.encoder.patch_embed.parameters()]
    trained = [p.detach().clone() for p in model.encoder.blocks.parameters()]
    for _ in range(2):
        train_step(model, optimizer, data[:8], sampler.sample(8), 0.99)
    assert all(p.grad is None for p in model.encoder.patch_embed.parameters())
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.encoder.patch_embed.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(trained, model.encoder.blocks.parameters()))


def test_the_schedules_give_python_floats_for_numpy_settings():
    """Settings from a numpy grid reach the optimizer's groups through the schedules, and a
    saved optimizer state must load with ``weights_only=True``: every value is a Python
    float, in the warm-up as after it."""
    start, ref, final = np.float64(0.0), np.float64(1.0), np.float64(0.1)
    values = [warmup_cosine(1, 10, 4, start, ref, final),  # in the warm-up
              warmup_cosine(6, 10, 4, start, ref, final),  # in the cosine
              cosine_ramp(3, 10, ref, final), linear_ramp(3, 10, ref, final)]
    assert [type(value) for value in values] == [float] * 4
    assert values[0] == pytest.approx(0.25)
    schedule = PretrainSchedule(total_steps=10, warmup_steps=4, start_lr=start, lr=ref,
                                weight_decay=np.float64(0.04), ema_momentum=np.float64(0.99))
    for step in (0, 3, 8):
        assert [type(value) for value in schedule(step)] == [float] * 3


def test_make_optimizer_uses_the_fused_kernel_only_where_asked_or_on_cuda():
    """``fused=None`` picks the fused kernel for a model on a CUDA device only: on the CPU the
    optimizer runs the default (foreach) implementation unless ``fused=True`` is given."""
    model, _, _, _ = _setup()
    assert not make_optimizer(model).defaults["fused"]
    assert not make_optimizer(model, fused=False).defaults["fused"]
    assert make_optimizer(model, fused=True).defaults["fused"] is True


def test_make_optimizer_picks_the_fused_kernel_for_a_model_on_cuda(monkeypatch):
    """``fused=None`` reads the device of the model's first parameter: a model on a CUDA device
    gets the fused kernel (checked here without a GPU: only the parameter's device is faked,
    and AdamW's fused kernel takes the CPU parameters of the groups)."""
    model, _, _, _ = _setup()
    cuda_parameter = types.SimpleNamespace(device=torch.device("cuda", 0))
    monkeypatch.setattr(model, "parameters", lambda: iter([cuda_parameter]))
    assert make_optimizer(model).defaults["fused"] is True
    assert not make_optimizer(model, fused=False).defaults["fused"]


def test_collapse_metrics_of_tokens_are_those_of_every_token_as_a_sample():
    """Features with more than two dimensions (samples x tokens x dim) are read as one sample
    per token, each of ``dim`` features."""
    tokens = torch.randn(4, 5, 8, generator=torch.Generator().manual_seed(0))
    assert collapse_metrics(tokens) == collapse_metrics(tokens.reshape(20, 8))
    assert collapse_metrics(tokens)["effective_rank"] > 6  # 8 features, not 40


def test_make_optimizer_leaves_frozen_parameters_out_and_refuses_a_fully_frozen_model():
    model, _, _, _ = _setup()
    for param in model.encoder.blocks.parameters():
        param.requires_grad_(False)
    optimized = {id(p) for group in make_optimizer(model).param_groups for p in group["params"]}
    assert not optimized & {id(p) for p in model.encoder.blocks.parameters()}
    assert {id(p) for p in model.predictor.parameters()} <= optimized
    for param in [*model.encoder.parameters(), *model.predictor.parameters()]:
        param.requires_grad_(False)
    # torch's AdamW takes two empty groups; every step then failed in its backward pass
    with pytest.raises(ValueError, match="no trainable parameter"):
        make_optimizer(model)


def test_make_optimizer_takes_a_model_that_trains_only_its_biases_and_norms():
    """Every weight matrix frozen, only biases and 1-D parameters trained (as in bias-only
    fine-tuning): the decayed group is empty but the optimizer is made over the other group,
    not refused as having nothing to optimise."""
    model, _, _, _ = _setup()
    for param in [*model.encoder.parameters(), *model.predictor.parameters()]:
        param.requires_grad_(param.ndim <= 1)
    decayed, plain = make_optimizer(model).param_groups
    assert decayed["params"] == []
    spared = [p for m in (model.encoder, model.predictor) for p in m.parameters() if p.ndim <= 1]
    assert spared and [id(p) for p in plain["params"]] == [id(p) for p in spared]


def test_forked_rng_on_cuda_takes_seed_0_as_a_seed(monkeypatch):
    """Runs anywhere: torch's CUDA calls are recorded, not made. ``random_state=0`` is a seed
    on a GPU as on the CPU: the block's CPU and CUDA generators are seeded with 0, not left
    unseeded as ``None`` leaves them."""
    from brainjepa_sk.train.runtime import forked_rng

    seeds = []

    @contextlib.contextmanager
    def fork_rng(devices=None, **kwargs):
        cpu_state = torch.get_rng_state()  # the CPU part of the fork, done for real
        try:
            yield
        finally:
            torch.set_rng_state(cpu_state)

    monkeypatch.setattr(torch.random, "fork_rng", fork_rng)
    monkeypatch.setattr(torch.cuda, "device", lambda index: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "manual_seed", seeds.append)
    torch.manual_seed(7)  # a caller's stream other than seed 0's
    with forked_rng(0, torch.device("cuda", 0)):
        drawn = torch.rand(2)
    assert seeds == [0]
    assert torch.equal(drawn, torch.rand(2, generator=torch.Generator().manual_seed(0)))


def test_make_optimizer_defaults_to_the_research_recipes_starting_values():
    """Without arguments the decayed group starts at the recipe's weight decay of 0.04 and both
    groups at a learning rate of 1e-3, the values the docstring gives; the other group at 0."""
    model, _, _, _ = _setup()
    decayed, plain = make_optimizer(model).param_groups
    assert (decayed["lr"], decayed["weight_decay"]) == (1e-3, 0.04)
    assert (plain["lr"], plain["weight_decay"]) == (1e-3, 0.0)


def test_noting_sigterm_marks_the_signal_as_true_and_keeps_the_process_running():
    """A SIGTERM inside the block sets ``received["sigterm"]`` to True, as documented (not only
    the key: a caller may read the value), instead of ending the process; the previous
    handler is back after the block."""
    import os

    from brainjepa_sk.train.runtime import noting_sigterm

    received, before = {}, signal.getsignal(signal.SIGTERM)
    with noting_sigterm(received):
        os.kill(os.getpid(), signal.SIGTERM)
    assert received == {"sigterm": True}
    assert signal.getsignal(signal.SIGTERM) is before
