"""The pure-torch model: positional embedding, token layout, blocks, presets, EMA, loss."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from brainjepa_sk.nn import (
    MODEL_PRESETS,
    Attention,
    BrainJEPA,
    GradientPositionalEmbedding,
    PatchEmbed,
    TokenPooling,
    jepa_loss,
    sincos_time_embedding,
)
from brainjepa_sk.nn.blocks import Block, DropPath, Mlp, init_weights
from brainjepa_sk.nn.heads import EncoderWithHead, PooledHead


def tiny_model(n_regions=12, n_components=5, seed=0, **kwargs):
    torch.manual_seed(seed)
    config = dict(patch_size=4, embed_dim=32, depth=2, num_heads=2, predictor_embed_dim=16,
                  predictor_depth=1)
    config.update(kwargs)
    return BrainJEPA(torch.randn(n_regions, n_components), **config)


def test_time_code_frequencies_and_layout():
    table = sincos_time_embedding(7, 16)
    assert table.shape == (7, 16)
    for p in range(7):
        for k in range(8):
            omega = 1.0 / 10000 ** (k / 8)
            assert table[p, k].item() == pytest.approx(math.sin(p * omega), abs=1e-6)
            assert table[p, 8 + k].item() == pytest.approx(math.cos(p * omega), abs=1e-6)


def test_time_code_of_long_scans_is_exact_to_float32_rounding():
    # angles as large as the patch index lose their low bits in float32 arithmetic
    table = sincos_time_embedding(2000, 16)
    p = torch.arange(2000, dtype=torch.float64)[:, None]
    omega = 1.0 / 10000 ** (torch.arange(8, dtype=torch.float64) / 8)
    expected = torch.cat([torch.sin(p * omega), torch.cos(p * omega)], 1)
    assert table.dtype == torch.float32
    assert (table.double() - expected).abs().max().item() < 1e-7


def test_time_code_comes_in_the_dtype_asked_for_and_refuses_an_odd_width():
    # float64 keeps the float64 computation's bits: it is no float32 table cast up
    table = sincos_time_embedding(2000, 16, dtype=torch.float64)
    assert table.dtype == torch.float64
    assert (table - table.float().double()).abs().max().item() > 1e-9
    with pytest.raises(ValueError, match="even width, got 7"):
        sincos_time_embedding(5, 7)


@pytest.mark.parametrize("n_patches", [1, 4, 10, 37])
def test_positional_embedding_any_number_of_patches(n_patches):
    torch.manual_seed(0)
    gradients = torch.randn(9, 6)
    pos = GradientPositionalEmbedding(gradients, 24)
    table = pos(n_patches)
    assert table.shape == (9 * n_patches, 24)
    grid = table.reshape(9, n_patches, 24)
    # time half: identical for every region, equal to the sine-cosine code
    assert torch.equal(grid[:, :, :12], sincos_time_embedding(n_patches, 12).expand(9, -1, -1))
    # gradient half: constant over time, min-max scaled to exactly [-1, 1] over the whole half
    space = grid[:, :, 12:]
    assert torch.equal(space, space[:, :1].expand(-1, n_patches, -1))
    assert space.min().item() == pytest.approx(-1.0, abs=1e-6)
    assert space.max().item() == pytest.approx(1.0, abs=1e-6)
    linear = pos.gradient_proj(gradients)
    expected = 2 * (linear - linear.min()) / (linear.max() - linear.min()) - 1
    torch.testing.assert_close(space[:, 0], expected)


def test_positional_embedding_learns_through_the_gradient_map():
    pos = GradientPositionalEmbedding(torch.randn(5, 3), 8)
    pos(4).sum().backward()
    assert pos.gradient_proj.weight.grad is not None
    assert not pos.gradients.requires_grad


def _with_gradients(model, gradients):
    """A copy of ``model`` with its weights and other gradients (every positional embedding)."""
    state = {name: gradients if name.endswith("pos_embed.gradients") else value
             for name, value in model.state_dict().items()}
    copy = BrainJEPA(gradients, patch_size=4, embed_dim=32, depth=2, num_heads=2,
                     predictor_embed_dim=16, predictor_depth=1)
    copy.load_state_dict(state)
    return copy.eval()


def test_regions_are_placed_by_their_gradients_only():
    """The same gradients and series in another region order give the same tokens in that
    order; other gradients give other tokens; gradients scaled by a positive factor do not
    (the min-max scaling), as gradients.rst says."""
    model = tiny_model(n_regions=6, n_components=3).eval()
    gradients = model.encoder.pos_embed.gradients
    x = torch.randn(2, 12, 6)
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    with torch.no_grad():
        tokens = model.target_encoder(x).reshape(2, 6, 3, -1)
        reordered = _with_gradients(model, gradients[order]).target_encoder(x[:, :, order])
        torch.testing.assert_close(reordered.reshape(2, 6, 3, -1), tokens[:, order])
        scaled = _with_gradients(model, gradients * 7.5).target_encoder(x)
        torch.testing.assert_close(scaled.reshape(2, 6, 3, -1), tokens)
        other = _with_gradients(model, torch.randn(6, 3)).target_encoder(x)
        assert (other.reshape(2, 6, 3, -1) - tokens).abs().amax() > 0.1


def test_positional_embedding_rejects_bad_shapes():
    with pytest.raises(ValueError, match="multiple of 4"):
        GradientPositionalEmbedding(torch.randn(5, 3), 10)
    with pytest.raises(ValueError, match="2-D"):
        GradientPositionalEmbedding(torch.randn(5), 8)
    # a 3-D table (gradients of several subjects stacked) is no table of regions either
    with pytest.raises(ValueError, match=r"2-D \(n_regions, n_components\), got shape \(5, 3, 2\)"):
        GradientPositionalEmbedding(torch.randn(5, 3, 2), 8)


def test_tokens_are_region_major():
    model = tiny_model()
    x = torch.zeros(1, 20, 12)  # 5 patches of 4 frames
    x[0, 8:12, 3] = 1.0  # region 3, time patch 2
    embedded = model.encoder.patch_embed(x)
    changed = (embedded - model.encoder.patch_embed(torch.zeros_like(x))).abs().sum(-1)[0]
    assert changed.nonzero().flatten().tolist() == [3 * 5 + 2]


@pytest.mark.parametrize("n_regions, n_frames", [(8, 16), (12, 40), (30, 8)])
def test_any_number_of_regions_and_frames(n_regions, n_frames):
    model = tiny_model(n_regions=n_regions)
    x = torch.randn(2, n_frames, n_regions)
    n_tokens = n_regions * n_frames // 4
    with torch.no_grad():
        assert model.target_encoder(x).shape == (2, n_tokens, 32)
        ctx_idx = torch.arange(0, n_tokens, 2).expand(2, -1)
        tgt_idx = torch.arange(1, n_tokens, 2).expand(2, -1)
        out = model(x, ctx_idx, tgt_idx)
    assert out["predictions"].shape == (2, tgt_idx.shape[1], 32)
    assert torch.isfinite(out["loss"])


def test_context_encoding_sees_only_context_tokens():
    model = tiny_model().eval()
    x = torch.randn(2, 20, 12)
    ctx = torch.tensor([[0, 5, 17, 40], [2, 3, 4, 59]])
    with torch.no_grad():
        base = model.encoder(x, ctx)
        # changing the input outside the context tokens changes nothing
        x2 = x.clone()
        x2[:, 4:8, :] += 10.0  # time patch 1 of every region; none of the tokens above use p=1
        assert set((ctx % 5).flatten().tolist()).isdisjoint({1})
        torch.testing.assert_close(model.encoder(x2, ctx), base)
        # changing a context token does
        x2[0, 0:4, 0] += 10.0
        assert not torch.allclose(model.encoder(x2, ctx)[0], base[0])


def test_the_forward_predicts_from_the_context_tokens_only():
    # the context encoder attends among the context tokens: input elsewhere (here at the
    # targets) changes the targets but not the predictions
    model = tiny_model().eval()
    x = torch.randn(2, 20, 12)
    ctx = torch.tensor([[0, 5, 17, 40], [2, 3, 4, 59]])
    tgt = torch.tensor([[1, 6, 11], [16, 21, 26]])  # time patch 1
    x2 = x.clone()
    x2[:, 4:8, :] += 10.0
    with torch.no_grad():
        base, moved = model(x, ctx, tgt), model(x2, ctx, tgt)
    # compared exactly: a freshly initialised predictor responds only faintly to its context
    assert torch.equal(moved["predictions"], base["predictions"])
    assert not torch.allclose(moved["targets"], base["targets"])


def test_bad_input_shapes_are_named():
    model = tiny_model()
    with pytest.raises(ValueError, match="transposed"):
        model.target_encoder(torch.randn(2, 12, 20))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        model.target_encoder(torch.randn(2, 18, 12))
    with pytest.raises(ValueError, match="3-D|batch, n_frames, n_regions"):
        model.target_encoder(torch.randn(20, 12))
    with pytest.raises(ValueError, match="got a 4-D tensor"):  # regions still on axis 2
        model.target_encoder(torch.randn(2, 20, 12, 1))
    with pytest.raises(ValueError, match="got an 8-D tensor"):  # had read "a 8-D"
        model.target_encoder(torch.randn(1, 1, 1, 1, 1, 1, 20, 12))
    with pytest.raises(ValueError, match="n_frames=0 is not a positive multiple"):
        model.target_encoder(torch.randn(2, 0, 12))
    with pytest.raises(ValueError, match="has 12 regions but the input has 8"):
        model.target_encoder(torch.randn(2, 20, 8))  # fewer regions than the model's


@pytest.mark.parametrize("words, expected", [
    ("1-D", "a 1-D"), ("3-D", "a 3-D"), ("8-D", "an 8-D"), ("11-D", "an 11-D"),
    ("18-D", "an 18-D"), ("80-D", "an 80-D"), ("100-D", "a 100-D"), ("800", "an 800"),
    ("11000", "an 11000"), ("dict", "a dict"), ("OrderedDict", "an OrderedDict"),
    ("ndarray", "an ndarray"), ("SVC", "an SVC"), ("Tensor", "a Tensor"),
    ("UserDict", "a UserDict"), ("UnicodeDecodeError", "a UnicodeDecodeError"),
    ("uint8", "a uint8"), ("ufunc", "a ufunc"), ("UUID", "a UUID"), ("int", "an int"),
    ("UnboundLocalError", "an UnboundLocalError"), ("unused", "an unused"),
    ("UninitializedParameter", "an UninitializedParameter"), ("update", "an update"),
    ("Euler", "a Euler"), ("OneHotEncoder", "a OneHotEncoder"), ("onerous", "an onerous"),
    ("object", "an object"), ("u", "a u"), ("X", "an X"),
])
def test_the_article_of_a_message_follows_how_its_word_is_read(words, expected):
    """Numbers by their names ("eight", "eleven"): messages had read "a 8-D", "a 11-D"; a
    "u" read "you" takes "a" (messages had read "an UserDict")."""
    from brainjepa_sk.nn._checks import with_article

    assert with_article(words) == expected


def test_attention_equals_explicit_softmax_attention():
    torch.manual_seed(0)
    attn = Attention(16, 4)
    x = torch.randn(3, 7, 16)
    q, k, v = attn.qkv(x).reshape(3, 7, 3, 4, 4).permute(2, 0, 3, 1, 4)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(3, 7, 16))
    torch.testing.assert_close(attn(x), expected)


def test_the_mlp_uses_the_exact_erf_gelu():
    # the research checkpoints were trained with the erf GELU; its tanh approximation is off by
    # up to ~1e-3, which the parity tolerance on a freshly initialised model cannot see
    from brainjepa_sk.nn.blocks import Mlp

    torch.manual_seed(0)
    mlp = Mlp(4, 16)
    x = 3 * torch.randn(50, 4)
    hidden = mlp.fc1(x)
    expected = mlp.fc2(0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2))))
    torch.testing.assert_close(mlp(x), expected, rtol=0, atol=1e-6)


def test_presets_have_the_published_sizes():
    assert MODEL_PRESETS["tiny"] == {"embed_dim": 192, "depth": 12, "num_heads": 3}
    assert MODEL_PRESETS["small"] == {"embed_dim": 384, "depth": 12, "num_heads": 6}
    assert MODEL_PRESETS["base"] == {"embed_dim": 768, "depth": 12, "num_heads": 12}
    assert MODEL_PRESETS["large"] == {"embed_dim": 1024, "depth": 24, "num_heads": 16}
    model = BrainJEPA.from_preset("tiny", torch.randn(8, 30), predictor_depth=1)
    assert model.embed_dim == 192 and len(model.encoder.blocks) == 12
    assert model.encoder.blocks[0].attn.num_heads == 3
    assert model.predictor.blocks[0].attn.num_heads == 3
    with pytest.raises(ValueError, match="preset"):
        BrainJEPA.from_preset("huge", torch.randn(8, 30))
    # the overrides win over the preset's own sizes
    model = BrainJEPA.from_preset("tiny", torch.randn(8, 30), depth=2, num_heads=6,
                                  predictor_depth=1)
    assert model.embed_dim == 192 and len(model.encoder.blocks) == 2
    assert model.encoder.blocks[0].attn.num_heads == 6


def test_base_encoder_parameter_count():
    # ViT-base: 12 blocks of 12*768^2 + 13*768 weights... computed from the layer shapes.
    model = BrainJEPA.from_preset("base", torch.randn(450, 30), predictor_depth=1)
    d = 768
    block = (3 * d * d + 3 * d) + (d * d + d) + 2 * (4 * d * d) + 4 * d + d + 4 * d
    expected = 12 * block + (16 * d + d) + (30 * d // 2 + d // 2) + 2 * d
    assert sum(p.numel() for p in model.encoder.parameters()) == expected


def test_initialisation():
    model = BrainJEPA.from_preset("small", torch.randn(8, 30), predictor_depth=1)
    weight = model.encoder.blocks[0].mlp.fc1.weight
    assert weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert torch.count_nonzero(model.encoder.blocks[0].mlp.fc1.bias) == 0
    assert torch.equal(model.encoder.norm.weight, torch.ones(384))
    assert model.predictor.mask_token.std().item() == pytest.approx(0.02, rel=0.2)


def test_init_weights_resets_a_trained_block():
    """init_weights sets what it documents whatever the weights were (a LayerNorm is built
    with weight 1 and bias 0 anyway, so a model just built cannot show it): applied to a
    trained block, LayerNorms become the identity again and Linear biases 0."""
    block = Block(8, 2)
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.fill_(3.0)
    block.apply(init_weights)
    for norm in (block.norm1, block.norm2):
        assert torch.equal(norm.weight, torch.ones(8)) and torch.equal(norm.bias, torch.zeros(8))
    for linear in (block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2):
        assert torch.count_nonzero(linear.bias) == 0
        assert linear.weight.abs().max() < 0.2  # drawn again (std 0.02), not left at 3


def test_patch_embedding_initialisation_schemes(tmp_path):
    from brainjepa_sk.checkpoint import load_checkpoint, save_checkpoint

    gradients = torch.randn(8, 30)
    research = BrainJEPA.from_preset("small", gradients, predictor_depth=1)
    assert research.encoder.patch_embed.proj.weight.std().item() == pytest.approx(0.02, rel=0.1)
    for width in (64, 384):
        model = BrainJEPA(gradients, embed_dim=width, depth=1, num_heads=4, predictor_depth=1,
                          predictor_embed_dim=32, patch_embed_init="xavier")
        weight = model.encoder.patch_embed.proj.weight
        assert weight.std().item() == pytest.approx((2 / (16 + width)) ** 0.5, rel=0.1)
        assert torch.count_nonzero(model.encoder.patch_embed.proj.bias) == 0
        # the other layers keep the research initialisation; the EMA copy starts equal
        assert model.encoder.blocks[0].mlp.fc1.weight.std().item() == pytest.approx(0.02, rel=0.1)
        assert torch.equal(model.target_encoder.patch_embed.proj.weight, weight)
    assert model.config["patch_embed_init"] == "xavier"
    save_checkpoint(tmp_path / "m.pt", model)
    assert load_checkpoint(tmp_path / "m.pt").model.config["patch_embed_init"] == "xavier"
    with pytest.raises(ValueError, match="patch_embed_init must be one of"):
        BrainJEPA(gradients, embed_dim=64, depth=1, num_heads=4, patch_embed_init="kaiming")


def test_target_encoder_starts_as_a_frozen_copy():
    model = tiny_model(drop_path_rate=0.2)
    for online, target in zip(model.encoder.parameters(), model.target_encoder.parameters()):
        assert torch.equal(online, target)
        assert not target.requires_grad
    assert all(m.p == 0.0 for m in model.target_encoder.modules() if hasattr(m, "p"))
    assert model.encoder.blocks[-1].drop_path.p == pytest.approx(0.2)


def test_the_config_rebuilds_the_stochastic_depth():
    model = tiny_model(drop_path_rate=0.2)
    rebuilt = BrainJEPA(model.gradients, **model.config)
    assert rebuilt.encoder.blocks[-1].drop_path.p == pytest.approx(0.2)


def test_the_config_rebuilds_the_mlp_ratio():
    model = tiny_model(mlp_ratio=2.0)
    assert model.config["mlp_ratio"] == 2.0
    rebuilt = BrainJEPA(model.gradients, **model.config)
    for name, tensor in rebuilt.state_dict().items():
        assert tensor.shape == model.state_dict()[name].shape, name


def test_the_config_rebuilds_the_qkv_bias_and_the_predictors_patch_count():
    model = tiny_model(qkv_bias=False, n_patches=np.int64(5))
    for attention in (model.encoder.blocks[0].attn, model.predictor.blocks[0].attn):
        assert attention.qkv.bias is None
    # a numpy count is kept as an int (a checkpoint's weights-only reader refuses numpy scalars)
    assert model.config["qkv_bias"] is False and type(model.config["n_patches"]) is int
    assert model.predictor.n_patches == 5
    assert model.preprocessing is None and model.region_names is None  # built here: unknown
    rebuilt = BrainJEPA(model.gradients, **model.config)
    assert rebuilt.state_dict().keys() == model.state_dict().keys()
    context, target = torch.tensor([[0, 1, 5]]), torch.tensor([[2, 7]])
    with torch.no_grad():  # called on its own, the predictor decodes with the model's count
        predictions = model.predictor(torch.randn(1, 3, 32), context, target)
    assert predictions.shape == (1, 2, 32)


def test_ema_update_formula():
    model = tiny_model()
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in model.target_encoder.parameters()]
    model.ema_update(0.9)
    for old, new, online in zip(
        before, model.target_encoder.parameters(), model.encoder.parameters()
    ):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * online)
    frozen = [p.clone() for p in model.target_encoder.parameters()]
    model.ema_update(1.0)
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.target_encoder.parameters()))
    model.ema_update(0.0)  # momentum 0 copies the encoder
    for target, online in zip(model.target_encoder.parameters(), model.encoder.parameters()):
        torch.testing.assert_close(target, online)
    for momentum in (1.5, -0.1):
        with pytest.raises(ValueError, match="momentum"):
            model.ema_update(momentum)


def test_losses():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    # The paper's objective: squared L2 distance over the features, mean over target tokens.
    per_token = [torch.dot(p - t, p - t) for p, t in zip(pred.reshape(-1, 8), target.reshape(-1, 8))]
    assert jepa_loss(pred, target).item() == pytest.approx(torch.stack(per_token).mean().item(),
                                                           rel=1e-6)
    assert jepa_loss(pred, target, "smooth_l1").item() == pytest.approx(
        F.smooth_l1_loss(pred, target).item()
    )
    with pytest.raises(ValueError, match="loss"):
        jepa_loss(pred, target, "l1")
    with pytest.raises(ValueError, match="loss"):
        tiny_model(loss="cosine")
    # the model's forward takes its own objective
    model = tiny_model(loss="smooth_l1")
    out = model(torch.randn(2, 20, 12), torch.arange(30).expand(2, -1),
                torch.arange(30, 60).expand(2, -1))
    torch.testing.assert_close(out["loss"], F.smooth_l1_loss(out["predictions"], out["targets"]))


@pytest.mark.parametrize("loss", ["l2", "smooth_l1"])
def test_losses_of_half_precision_tensors_are_computed_in_float32(loss):
    torch.manual_seed(0)
    pred, target = torch.randn(2, 5, 64).bfloat16(), torch.randn(2, 5, 64).bfloat16()
    value = jepa_loss(pred, target, loss)
    assert value.dtype == torch.float32
    assert torch.equal(value, jepa_loss(pred.float(), target.float(), loss))


@pytest.mark.parametrize("loss", ["l2", "smooth_l1"])
def test_the_loss_of_float64_tensors_stays_float64(loss):
    # it was rounded to float32, so a model cast with .double() trained on a float32 loss
    pred, target = torch.randn(2, 5, 8, dtype=torch.float64), torch.zeros(2, 5, 8,
                                                                          dtype=torch.float64)
    pred[0, 0, 0] = 1 + 1e-12  # a difference float32 rounds away
    value = jepa_loss(pred, target, loss)
    assert value.dtype == torch.float64
    exact = (pred.square().sum(-1).mean() if loss == "l2"
             else F.smooth_l1_loss(pred, target))
    assert value.item() == exact.item()
    model = tiny_model().double()
    out = model(torch.randn(2, 20, 12, dtype=torch.float64), torch.arange(30).expand(2, -1),
                torch.arange(30, 60).expand(2, -1))
    assert out["loss"].dtype == torch.float64


def test_targets_are_layer_normed_and_detached():
    model = tiny_model()
    with torch.no_grad():  # a trained final norm: its output is no longer normed per token
        model.target_encoder.norm.weight.uniform_(0.5, 2.0)
        model.target_encoder.norm.bias.normal_()
    x = torch.randn(2, 20, 12)
    idx = torch.tensor([[0, 1, 2], [3, 4, 5]])
    targets = model.targets(x, idx)
    assert not targets.requires_grad
    torch.testing.assert_close(targets.mean(-1), torch.zeros(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(targets.var(-1, unbiased=False), torch.ones(2, 3), atol=1e-3, rtol=0)


def test_no_gradient_flows_through_the_targets_even_from_trainable_weights():
    # the targets are a stop-gradient, not merely the output of frozen weights
    model = tiny_model()
    model.target_encoder.requires_grad_(True)  # e.g. unfrozen by a generic training helper
    x = torch.randn(2, 20, 12, requires_grad=True)
    ctx, tgt = torch.tensor([[0, 5, 17, 40], [2, 3, 4, 59]]), torch.tensor([[1, 6], [16, 21]])
    out = model(x, ctx, tgt)
    assert not out["targets"].requires_grad
    out["loss"].backward()
    assert all(p.grad is None for p in model.target_encoder.parameters())
    assert model.encoder.patch_embed.proj.weight.grad is not None


def test_bf16_autocast_forward_on_cpu():
    model = tiny_model()
    x = torch.randn(2, 20, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        tokens = model.target_encoder(x)
    with torch.no_grad():
        reference = model.target_encoder(x)
    assert tokens.dtype == torch.float32  # the final LayerNorm runs in float32 under autocast
    assert (tokens - reference).abs().max().item() < 0.1


@pytest.mark.parametrize("mode", ["mean", "roi", "roi_std", "connectivity", "lagged"])
def test_token_pooling_matches_its_definition_and_passes_gradients(mode):
    n_regions, n_patches, dim = 3, 4, 5
    tokens = torch.randn(2, n_regions * n_patches, dim, requires_grad=True)
    pooled = TokenPooling(mode, n_regions=n_regions)(tokens)
    # region-major tokens: region r holds tokens r * n_patches ... (r + 1) * n_patches - 1
    per_region = [tokens[:, r * n_patches:(r + 1) * n_patches] for r in range(n_regions)]
    expected = {
        "mean": tokens.mean(1),
        "roi": torch.cat([t.mean(1) for t in per_region], 1),
        "roi_std": torch.cat([t.std(1, correction=0) for t in per_region], 1),
        "lagged": torch.stack([_lagged(torch.stack(per_region)[:, b], n_patches)
                               for b in range(2)]),
        "connectivity": torch.stack([
            torch.corrcoef(torch.stack([t[b].flatten() for t in per_region]))[
                tuple(torch.triu_indices(n_regions, n_regions, 1))]
            for b in range(2)]),
    }[mode]
    torch.testing.assert_close(pooled, expected)
    assert pooled.shape == (2, TokenPooling(mode, n_regions=n_regions).n_features(dim))
    pooled.sum().backward()
    assert tokens.grad is not None and tokens.grad.abs().sum() > 0


def test_connectivity_pools_the_region_pairs_in_the_order_of_their_feature_names():
    # feature k is the correlation of the k-th pair (i, j), i < j, taken row by row: the
    # order of the estimators' "{a}_{b}_connectivity" names. Three regions cannot tell it from
    # the lower triangle's order (both are 01, 02, 12): four can
    n_regions, n_patches, dim = 4, 3, 5
    tokens = torch.randn(2, n_regions * n_patches, dim, generator=torch.Generator().manual_seed(0))
    pooled = TokenPooling("connectivity", n_regions=n_regions)(tokens)
    pairs = [(i, j) for i in range(n_regions) for j in range(i + 1, n_regions)]
    expected = torch.stack([
        torch.stack([torch.corrcoef(tokens[b].reshape(n_regions, -1))[i, j] for i, j in pairs])
        for b in range(2)])
    torch.testing.assert_close(pooled, expected)


def test_token_pooling_checks_its_settings():
    with pytest.raises(ValueError, match="pooling must be one of"):
        TokenPooling("max")
    with pytest.raises(ValueError, match="needs n_regions"):
        TokenPooling("roi")
    one_patch = torch.randn(2, 3, 4)  # 3 regions x 1 time patch
    for mode in ("roi_std", "lagged"):
        with pytest.raises(ValueError, match="at least 2 time patches per region, got 1"):
            TokenPooling(mode, n_regions=3)(one_patch)
    assert TokenPooling("roi", n_regions=3)(one_patch).shape == (2, 12)
    assert repr(TokenPooling("lagged", n_regions=3)) == "TokenPooling(mode='lagged', n_regions=3)"


def test_time_tables_are_cached_per_patch_count_and_not_copied():
    import copy
    import pickle

    model = tiny_model()
    pos = model.encoder.pos_embed
    first = pos.time_table(5, "cpu")
    assert pos.time_table(5, "cpu") is first
    torch.testing.assert_close(first, sincos_time_embedding(5, pos.embed_dim // 2))
    assert pos.time_table(7, "cpu").shape == (7, pos.embed_dim // 2)
    assert copy.deepcopy(pos)._time_tables == {}
    assert pickle.loads(pickle.dumps(pos))._time_tables == {}
    assert pos.time_table(5, "cpu") is first  # the original keeps its own tables
    # the table in the forward pass is the cached one
    table = pos(5)
    torch.testing.assert_close(table.reshape(pos.n_regions, 5, -1)[0, :, : pos.embed_dim // 2], first)


def _lagged(grid, n_patches):
    """Lag-one cross-correlation, written out: grid is (n_regions, n_patches, dim)."""
    n_regions = grid.shape[0]
    u = [(g - g.mean()) / g.std(correction=0) for g in grid]
    out = torch.empty(n_regions, n_regions)
    for r in range(n_regions):
        for s in range(n_regions):
            out[r, s] = sum((u[r][p + 1] * u[s][p]).sum() for p in range(n_patches - 1)) / (
                (n_patches - 1) * grid.shape[2])
    return out.flatten()


def test_lagged_pooling_tells_the_direction_of_time():
    torch.manual_seed(0)
    grid = torch.randn(1, 3, 6, 4).cumsum(2)  # slow signals: lag-one correlations are large
    grid[0, 1, 1:] = grid[0, 0, :-1].clone()  # region 1 follows region 0 one patch later
    tokens = grid.reshape(1, 18, 4)
    forward = TokenPooling("lagged", n_regions=3)(tokens).reshape(3, 3)
    backward = TokenPooling("lagged", n_regions=3)(grid.flip(2).reshape(1, 18, 4)).reshape(3, 3)
    assert forward[1, 0] > forward[0, 1]  # 1 after 0: the later-earlier pair is the stronger
    assert backward[0, 1] > backward[1, 0]  # time reversed: the order flips


def test_drop_path_drops_whole_samples_and_rescales_the_kept_ones_in_training_only():
    x = torch.ones(20000, 2, 3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        out = DropPath(0.5).train()(x)
    per_sample = out.flatten(1)
    assert ((per_sample == 0).all(1) | (per_sample == 2).all(1)).all()  # 0 or 1 / (1 - p)
    assert abs(out.mean().item() - 1.0) < 0.03  # unbiased
    assert DropPath(0.5).eval()(x) is x


@pytest.mark.parametrize(("build", "message"), [
    (lambda: Block(8, 2, mlp_ratio="4"), "mlp_ratio must be a finite number > 0"),
    (lambda: Block(8, 2, qkv_bias="no"), "qkv_bias must be True or False"),
    (lambda: Block(8.0, 2), "dim must be an int >= 1"),
    (lambda: Attention(8, 0), "num_heads must be an int >= 1"),
    (lambda: Attention(8, 2.5), "num_heads must be an int >= 1"),
    (lambda: Mlp(8, 0), "hidden_dim must be an int >= 1"),
    # named as Block's, not as the DropPath it builds ("DropPath's p must be ...")
    (lambda: Block(8, 2, drop_path=1.0), r"^drop_path must be in \[0, 1\), got 1\.0$"),
])
def test_the_building_blocks_refuse_settings_the_encoder_refuses(build, message):
    # int(8 * "4") made an MLP of 44444444 hidden units; num_heads=0 failed with "integer
    # modulo by zero"
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("p", [1.0, -0.1, "0.1", True])
def test_drop_path_refuses_a_probability_outside_0_1(p):
    # p=1 kept no sample and divided by 0: NaN outputs, in training only
    with pytest.raises(ValueError, match=r"DropPath's p must be in \[0, 1\)"):
        DropPath(p)


def test_stochastic_depth_is_off_in_eval_mode():
    from brainjepa_sk.nn import BrainEncoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        encoder = BrainEncoder(torch.randn(6, 3), patch_size=4, embed_dim=16, depth=2,
                               num_heads=2, drop_path_rate=0.5).eval()
    x = torch.randn(3, 8, 6)
    first, second = encoder(x), encoder(x)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(encoder.set_drop_path_rate(0.0)(x), first, rtol=0, atol=0)


def test_stochastic_depth_rises_from_zero_in_the_encoder_and_the_predictor_not_the_target():
    model = tiny_model(depth=4, predictor_depth=3, drop_path_rate=0.3)
    assert [b.drop_path.p for b in model.encoder.blocks] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert [b.drop_path.p for b in model.predictor.blocks] == pytest.approx([0.0, 0.15, 0.3])
    assert [b.drop_path.p for b in model.target_encoder.blocks] == [0.0] * 4


def test_set_drop_path_rate_sets_every_block_as_at_construction_and_refuses_1():
    """Fine-tuning sets stochastic depth on a pretrained encoder: 0 for the first block to the
    rate for the last, as a model built with that rate; a rate of 1 would drop every sample."""
    encoder = tiny_model(depth=4).encoder
    assert [b.drop_path.p for b in encoder.set_drop_path_rate(0.3).blocks] == pytest.approx(
        [0.0, 0.1, 0.2, 0.3])
    assert [b.drop_path.p for b in encoder.set_drop_path_rate(0.0).blocks] == [0.0] * 4
    for rate in (1.0, -0.1):
        with pytest.raises(ValueError, match="drop_path_rate must be in"):
            encoder.set_drop_path_rate(rate)
    assert [b.drop_path.p for b in encoder.blocks] == [0.0] * 4


def test_set_drop_path_rate_takes_the_rates_the_constructor_takes():
    """A Fraction (a rate the fine-tuners' drop_path_rate accepts) built an encoder, but
    set_drop_path_rate passed it on to torch.linspace, which failed with a TypeError."""
    from fractions import Fraction

    built = tiny_model(depth=4, drop_path_rate=Fraction(3, 10)).encoder
    encoder = tiny_model(depth=4).encoder.set_drop_path_rate(Fraction(3, 10))
    assert [b.drop_path.p for b in encoder.blocks] == [b.drop_path.p for b in built.blocks]
    assert encoder.blocks[-1].drop_path.p == 0.3


@pytest.mark.parametrize("rate", ["0.3", "a", True, None])
def test_set_drop_path_rate_refuses_what_the_constructor_refuses_naming_it(rate):
    """float() took "0.3" and True as rates and failed on "a" with a message naming nothing."""
    encoder = tiny_model(depth=2).encoder
    with pytest.raises(ValueError, match="drop_path_rate must be in"):
        encoder.set_drop_path_rate(rate)
    assert [b.drop_path.p for b in encoder.blocks] == [0.0] * 2


@pytest.mark.parametrize(("sizes", "name"), [((4, 0), "n_outputs"), ((4, 2.5), "n_outputs"),
                                             ((4, True), "n_outputs"), ((4.0, 2), "n_features")])
def test_a_head_refuses_sizes_that_are_not_positive_ints_naming_them(sizes, name):
    # torch built a head of 0 outputs, and failed on 2.5 with "empty(): argument 'size'"
    with pytest.raises(ValueError, match=f"{name} must be an int >= 1"):
        PooledHead(*sizes)
    assert PooledHead(np.int64(4), np.int64(2)).linear.weight.shape == (2, 4)


def test_a_batchnorm_head_given_one_window_in_training_uses_its_running_statistics():
    head = PooledHead(4, 2, kind="batchnorm").train()
    head.norm.running_mean.fill_(2.0)
    head.norm.running_var.fill_(4.0)
    x = torch.randn(4)
    expected = head.linear((x - 2.0) / math.sqrt(4.0 + head.norm.eps))
    torch.testing.assert_close(head(x[None])[0], expected)
    assert (head.norm.running_mean == 2.0).all() and (head.norm.running_var == 4.0).all()


def test_the_predictor_queries_each_target_at_its_own_position():
    model = tiny_model().eval()
    n_patches, n_context = 5, 20
    context_idx = torch.arange(n_context)[None]
    context = torch.randn(1, n_context, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model.predictor(context, context_idx, torch.tensor([[30, 41, 30]]), n_patches)
        reordered = model.predictor(context, context_idx, torch.tensor([[41, 30, 30]]),
                                    n_patches)
    # the same position twice: the same prediction; another position: another one
    torch.testing.assert_close(out[0, 0], out[0, 2])
    assert (out[0, 0] - out[0, 1]).abs().max() > 1e-3
    # the queries' order does not matter: each follows its position
    torch.testing.assert_close(reordered[0], out[0, [1, 0, 2]])


def test_drop_path_keeps_a_sample_with_probability_one_minus_p():
    # at p=0.5 keeping with probability p or 1 - p cannot be told apart; at 0.25 it can
    x = torch.ones(20000, 3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        out = DropPath(0.25).train()(x)
    kept = (out != 0).all(1)
    assert kept.float().mean().item() == pytest.approx(0.75, abs=0.02)
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / 0.75))


def test_drop_path_shows_the_drop_probability_asked_for_in_the_models_repr():
    # a printed model is where a user checks the stochastic depth fine-tuning set
    from brainjepa_sk.nn import BrainEncoder

    assert repr(DropPath(0.25)) == "DropPath(p=0.25)"
    encoder = BrainEncoder(torch.randn(6, 3), patch_size=4, embed_dim=16, depth=3, num_heads=2,
                           drop_path_rate=0.4)
    # the last block drops with the rate asked for, not its float32 rounding 0.4000000059604645
    assert [block.drop_path.p for block in encoder.blocks] == [0.0, 0.2, 0.4]
    assert "DropPath(p=0.0)" in repr(encoder.blocks[0])
    assert "DropPath(p=0.4)" in repr(encoder.blocks[-1])
    assert "DropPath(p=0.3)" in repr(encoder.set_drop_path_rate(0.3).blocks[-1])


def test_a_block_drops_its_attention_and_mlp_branches_independently():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        block = Block(8, 2, drop_path=0.5).train()
        x = torch.randn(2000, 3, 8)
        with torch.no_grad():
            out = block(x)
    # a sample passes unchanged only when both branches are dropped: one time in four
    unchanged = (out == x).flatten(1).all(1).float().mean().item()
    assert unchanged == pytest.approx(0.25, abs=0.04)


def test_time_tables_are_cached_per_device():
    pos = tiny_model().encoder.pos_embed
    assert pos.time_table(5, "meta").device.type == "meta"
    table = pos.time_table(5, "cpu")
    assert table.device.type == "cpu"
    torch.testing.assert_close(table, sincos_time_embedding(5, pos.embed_dim // 2))


def test_the_predictor_decodes_indices_with_the_patch_count_it_is_given():
    # built with a default of 10 patches, the predictor told 5 decodes index r * 5 + p
    model = tiny_model(n_patches=10).eval()
    context = torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(0))
    context_idx, target_idx = torch.arange(0, 40, 5)[None], torch.tensor([[12, 33, 57]])
    with torch.no_grad():
        told = model.predictor(context, context_idx, target_idx, n_patches=5)
        model.predictor.n_patches = 5
        default = model.predictor(context, context_idx, target_idx)
        model.predictor.n_patches = 10
        other = model.predictor(context, context_idx, target_idx)
    torch.testing.assert_close(told, default)
    assert (told - other).abs().max() > 1e-3


def test_the_heads_start_from_their_recipes_initial_weights():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tuned, probe = PooledHead(400, 50, "layernorm"), PooledHead(400, 50, "batchnorm")
    assert tuned.linear.weight.std().item() == pytest.approx(2e-5, rel=0.05)
    assert probe.linear.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.count_nonzero(tuned.linear.bias) == torch.count_nonzero(probe.linear.bias) == 0


def test_the_probes_head_learns_only_its_linear_map():
    # the linear probe standardises with a BatchNorm without scale or shift (a linear model
    # of standardised features); the fine-tuning head's LayerNorm learns both
    probe, tuned = PooledHead(4, 2, "batchnorm"), PooledHead(4, 2, "layernorm")
    assert sorted(name for name, _ in probe.named_parameters()) == ["linear.bias",
                                                                    "linear.weight"]
    assert sorted(name for name, _ in tuned.named_parameters()) == [
        "linear.bias", "linear.weight", "norm.bias", "norm.weight"]


def test_the_probes_batchnorm_keeps_a_moving_average_of_the_training_batches():
    """The running statistics the probe predicts with move 0.1 of the way to each batch's
    (torch's default momentum): a moving average, as the user guide says, not a cumulative
    one that would weigh the first batches of the fit as much as the last."""
    head = PooledHead(4, 2, kind="batchnorm").train()
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(6, 4, generator=generator) + 3.0
    second = torch.randn(6, 4, generator=generator) - 1.0
    with torch.no_grad():
        head(first)
        head(second)
    expected = 0.9 * (0.1 * first.mean(0)) + 0.1 * second.mean(0)
    torch.testing.assert_close(head.norm.running_mean, expected)


@pytest.mark.parametrize("scheme", ["trunc_normal", "xavier"])
def test_init_patch_embedding_zeroes_the_bias_of_any_linear_layer(scheme):
    from brainjepa_sk.nn import init_patch_embedding

    linear = torch.nn.Linear(8, 32)  # PyTorch's default bias is uniform, not 0
    init_patch_embedding(linear, scheme)
    assert torch.count_nonzero(linear.bias) == 0
    # and sets the weights of the scheme, not PyTorch's default (std 0.2 at 8 inputs)
    std = 0.02 if scheme == "trunc_normal" else (2 / (8 + 32)) ** 0.5
    assert linear.weight.std().item() == pytest.approx(std, rel=0.25)


def test_every_layernorm_of_the_model_uses_epsilon_1e_6():
    # the epsilon shows on tokens of small variance: 1e-5 would shrink these to ~40 %
    model = tiny_model()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * (2 * 2 + 1) + (1 * 2 + 1)  # both encoders, the predictor
    x = 1e-3 * torch.randn(3, 32)
    for norm in norms:
        x_norm = x[:, : norm.normalized_shape[0]]
        with torch.no_grad():
            expected = F.layer_norm(x_norm, norm.normalized_shape, norm.weight, norm.bias, 1e-6)
            torch.testing.assert_close(norm(x_norm), expected)


def test_xavier_patch_embedding_weights_are_normal_not_uniform():
    # the same std as Xavier-uniform, but unbounded: some weights lie beyond sqrt(3) std
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tiny_model(embed_dim=64, patch_size=16, patch_embed_init="xavier")
    weight = model.encoder.patch_embed.proj.weight
    std = (2 / (16 + 64)) ** 0.5
    assert weight.abs().max().item() > 2.5 * std


def test_float64_input_is_encoded_like_float32_input():
    model = tiny_model().eval()
    x = torch.randn(2, 20, 12)
    with torch.no_grad():
        tokens = model.target_encoder(x.double())
        reference = model.target_encoder(x)
    assert tokens.dtype == torch.float32
    torch.testing.assert_close(tokens, reference)


def test_a_trainable_encoder_with_head_builds_no_graph_under_no_grad():
    model = EncoderWithHead(tiny_model().encoder, 2)
    # the encoder's output, seen from inside: a graph there keeps every block's activations
    graphs = []
    model.encoder.register_forward_hook(lambda module, args, out: graphs.append(out.requires_grad))
    x = torch.randn(2, 20, 12)
    with torch.no_grad():
        out = model(x)
    assert graphs == [False] and not out.requires_grad
    assert model(x).requires_grad and graphs == [False, True]  # with gradients on, it trains


def test_the_predictor_places_each_context_token_at_its_own_position():
    # the context tokens come with their indices: shuffling both together changes nothing,
    # shuffling the indices alone moves the tokens (weights made large, as after training, so
    # that the predictor responds clearly to its context)
    from brainjepa_sk.nn import BrainPredictor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        predictor = BrainPredictor(torch.randn(12, 5), embed_dim=32, predictor_embed_dim=16,
                                   depth=1, num_heads=2).eval()
        with torch.no_grad():
            for parameter in predictor.parameters():
                parameter.normal_(0.0, 0.3)
    context = torch.randn(1, 6, 32, generator=torch.Generator().manual_seed(0))
    context_idx, target_idx = torch.tensor([[0, 7, 13, 22, 38, 51]]), torch.tensor([[3, 25, 44]])
    perm = torch.tensor([4, 0, 5, 2, 1, 3])
    with torch.no_grad():
        out = predictor(context, context_idx, target_idx, 5)
        shuffled = predictor(context[:, perm], context_idx[:, perm], target_idx, 5)
        moved = predictor(context, context_idx[:, perm], target_idx, 5)
    torch.testing.assert_close(shuffled, out)
    assert (moved - out).abs().max() > 1e-3


def test_the_predictors_mask_token_is_learned():
    model = tiny_model()
    context = torch.randn(2, 4, 32)
    out = model.predictor(context, torch.tensor([[0, 5, 17, 40]] * 2), torch.tensor([[1, 6]] * 2),
                          5)
    out.square().sum().backward()
    assert model.predictor.mask_token.grad is not None
    assert model.predictor.mask_token.grad.abs().sum() > 0


def _positions_as_a_leaf(pos_embed, n_regions, n_patches, width):
    """Have ``pos_embed`` return one table that requires grad, to see where it is read."""
    table = torch.randn(n_regions * n_patches, width, requires_grad=True)
    pos_embed.forward = lambda n: table
    return table


def _rows_reached(table):
    return set(torch.nonzero(table.grad.abs().sum(-1)).flatten().tolist())


def test_the_predictors_positions_reach_its_context_tokens_and_its_mask_tokens():
    """The predictor adds its positional code to each context token and to each mask token
    (the target's position, the research predictor's query): the loss reaches exactly the
    table's rows of the context and target indices, so the gradient map learns from both."""
    model = tiny_model()
    table = _positions_as_a_leaf(model.predictor.pos_embed, 12, 5, 16)
    context_idx, target_idx = torch.tensor([[0, 5, 17, 40]] * 2), torch.tensor([[1, 6, 33]] * 2)
    out = model.predictor(torch.randn(2, 4, 32), context_idx, target_idx, 5)
    out.square().sum().backward()
    assert _rows_reached(table) == {0, 5, 17, 40, 1, 6, 33}


def test_the_encoders_positions_reach_the_tokens_it_keeps():
    model = tiny_model()
    table = _positions_as_a_leaf(model.encoder.pos_embed, 12, 5, 32)
    model.encoder(torch.randn(2, 20, 12), torch.tensor([[2, 9, 31]] * 2)).sum().backward()
    assert _rows_reached(table) == {2, 9, 31}


def test_the_jepa_loss_trains_every_parameter_of_the_encoder_and_the_predictor():
    """The gradient maps of both positional embeddings included; the target encoder gets no
    gradient (it moves by EMA)."""
    model = tiny_model()
    model(torch.randn(2, 20, 12), torch.tensor([[0, 5, 17, 40]] * 2),
          torch.tensor([[1, 6, 33]] * 2))["loss"].backward()
    for name, param in [*model.encoder.named_parameters(prefix="encoder"),
                        *model.predictor.named_parameters(prefix="predictor")]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(param.grad is None for param in model.target_encoder.parameters())


def test_the_predictor_is_initialised_like_the_encoder():
    from brainjepa_sk.nn import BrainPredictor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        predictor = BrainPredictor(torch.randn(8, 3), embed_dim=256, predictor_embed_dim=128,
                                   depth=1, num_heads=4)
    for linear in (predictor.predictor_embed, predictor.blocks[0].mlp.fc1, predictor.proj):
        assert linear.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert torch.count_nonzero(linear.bias) == 0


@pytest.mark.parametrize("kind", ["layernorm", "batchnorm"])
def test_the_heads_normalise_with_the_models_layernorm_epsilon(kind):
    # features with a spread of 1e-3 (variance 1e-6): an epsilon of 1e-5 would flatten them
    head = PooledHead(8, 2, kind=kind).train()
    x = 1e-3 * torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    dims = (1,) if kind == "layernorm" else (0,)
    mean, var = x.mean(dims, keepdim=True), x.var(dims, correction=0, keepdim=True)
    expected = head.linear((x - mean) / torch.sqrt(var + 1e-6))
    torch.testing.assert_close(head(x), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["connectivity", "lagged"])
def test_correlation_poolings_do_not_depend_on_the_tokens_scale(mode):
    tokens = torch.randn(2, 12, 5, generator=torch.Generator().manual_seed(0))
    pooling = TokenPooling(mode, n_regions=3)
    torch.testing.assert_close(pooling(1e-4 * tokens), pooling(tokens))


@pytest.mark.parametrize("mode", ["connectivity", "lagged"])
def test_a_region_of_small_tokens_correlates_as_it_does_at_full_scale(mode):
    # flatness is judged against each region's own magnitude, not the largest region's
    tokens = torch.randn(2, 12, 5, generator=torch.Generator().manual_seed(0))
    small = tokens.clone()
    small[:, 4:8] *= 1e-8
    pooling = TokenPooling(mode, n_regions=3)
    torch.testing.assert_close(pooling(small), pooling(tokens))


@pytest.mark.parametrize("value", [0.0, 0.5, 0.7])
@pytest.mark.parametrize("mode", ["connectivity", "lagged"])
def test_a_constant_region_correlates_zero_with_every_region(mode, value):
    # no spread, no signal: 0 / 0 where the mean is exact (0, 0.5); where it is not (0.7),
    # the rounding left by the centring, scaled to unit spread, gave lagged values up to 1e9
    tokens = torch.randn(2, 12, 5, generator=torch.Generator().manual_seed(0))
    tokens[:, 4:8] = value  # region 1 of 3, four time patches each
    tokens.requires_grad_(True)
    pooled = TokenPooling(mode, n_regions=3)(tokens)
    others = TokenPooling(mode, n_regions=2)(torch.cat([tokens[:, :4], tokens[:, 8:]], 1))
    if mode == "connectivity":  # pairs (0, 1), (0, 2), (1, 2)
        assert (pooled[:, [0, 2]] == 0).all()
        torch.testing.assert_close(pooled[:, [1]], others)
    else:
        matrix = pooled.reshape(2, 3, 3)
        assert (matrix[:, 1] == 0).all() and (matrix[:, :, 1] == 0).all()
        torch.testing.assert_close(matrix[:, [0, 2]][:, :, [0, 2]].flatten(1), others)
    pooled.sum().backward()
    assert torch.isfinite(tokens.grad).all()


@pytest.mark.parametrize("mode", ["connectivity", "lagged"])
def test_a_constant_region_of_a_base_size_window_correlates_zero(mode):
    # 10 patches of 768 features: the mean of this constant is off by over 4 float32 epsilons
    tokens = torch.randn(1, 30, 768, generator=torch.Generator().manual_seed(0))
    tokens[:, 10:20] = -3.591562509536743
    pooled = TokenPooling(mode, n_regions=3)(tokens)
    region = [0, 2] if mode == "connectivity" else [1, 3, 4, 5, 7]
    assert (pooled[:, region] == 0).all()


@pytest.mark.parametrize("mode", ["connectivity", "lagged"])
def test_a_region_with_a_token_feature_at_its_exact_mean_is_not_taken_for_a_constant(mode):
    # flatness is the largest deviation from the mean within rounding, not the smallest: a
    # region of the values -9 ... 9 and a second 0 (so 0, its exact mean, twice) varies
    n_regions, n_patches, dim = 3, 4, 5
    tokens = torch.randn(2, n_regions * n_patches, dim, generator=torch.Generator().manual_seed(0))
    tokens[:, 4:8] = torch.cat([torch.arange(-9.0, 10.0), torch.zeros(1)]).reshape(4, 5)
    pooled = TokenPooling(mode, n_regions=n_regions)(tokens)
    grids = tokens.reshape(2, n_regions, n_patches, dim)
    if mode == "connectivity":
        expected = torch.stack([torch.corrcoef(g.flatten(1))[
            tuple(torch.triu_indices(n_regions, n_regions, 1))] for g in grids])
    else:
        expected = torch.stack([_lagged(g, n_patches) for g in grids])
    torch.testing.assert_close(pooled, expected)


@pytest.mark.parametrize("mode", ["connectivity", "lagged"])
def test_float64_tokens_are_judged_flat_against_float64_rounding(mode):
    # a float64 encoder's tokens keep spreads far below float32's rounding: a region varying
    # by 1e-9 about 1 correlates as at unit scale, it is no constant
    tokens = torch.randn(2, 12, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    small = tokens.clone()
    small[:, 4:8] = 1.0 + 1e-9 * tokens[:, 4:8]
    pooling = TokenPooling(mode, n_regions=3)
    assert pooling(small).dtype == torch.float64
    torch.testing.assert_close(pooling(small), pooling(tokens), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["roi", "roi_std", "connectivity", "lagged"])
def test_every_pooling_over_regions_needs_the_number_of_regions(mode):
    with pytest.raises(ValueError, match=f"pooling='{mode}' needs n_regions"):
        TokenPooling(mode)
    assert TokenPooling("mean").n_regions is None


@pytest.mark.parametrize("mode", ["connectivity", "lagged"])
def test_the_head_pools_in_float32_under_bf16_autocast(mode):
    # the correlations are computed in float32, as the embedders compute them, not rounded by
    # a bf16 matmul
    model = EncoderWithHead(tiny_model().encoder, 2, pooling=mode).eval()
    tokens = []
    model.encoder.register_forward_hook(lambda module, args, out: tokens.append(out))
    x = torch.randn(2, 20, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        features = model.forward_features(x)
    assert features.dtype == torch.float32
    expected = TokenPooling(mode, n_regions=12)(tokens[0].float())
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-6)


def test_a_traced_positional_embedding_builds_its_time_table_without_caching_it(monkeypatch):
    # while torch.compile traces, the table is built in the graph and the cache left alone
    pos = tiny_model().encoder.pos_embed
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    table = pos.time_table(5, "cpu")
    torch.testing.assert_close(table, sincos_time_embedding(5, pos.embed_dim // 2))
    assert pos.time_table(5, "cpu", torch.float64).dtype == torch.float64
    assert pos._time_tables == {}


def test_the_gradient_map_learns_through_its_min_max_scaling_too():
    # the gradient reaches the map through the scaled values and through their min and max
    torch.manual_seed(0)
    gradients, weights = torch.randn(9, 6), torch.randn(9, 4, 12)
    pos = GradientPositionalEmbedding(gradients, 24)
    (pos(4).reshape(9, 4, 24)[:, :, 12:] * weights).sum().backward()
    import copy

    linear = copy.deepcopy(pos.gradient_proj)
    linear.zero_grad()
    space = linear(gradients)
    scaled = 2 * (space - space.min()) / (space.max() - space.min()) - 1
    (scaled[:, None] * weights).sum().backward()
    torch.testing.assert_close(pos.gradient_proj.weight.grad, linear.weight.grad)
    torch.testing.assert_close(pos.gradient_proj.bias.grad, linear.bias.grad)


def test_the_positional_embedding_keeps_its_own_copy_of_the_gradients():
    import numpy as np

    for gradients in (np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32),
                      torch.randn(6, 3)):
        pos = GradientPositionalEmbedding(gradients, 8)
        before = pos(2).detach().clone()
        gradients[:] = 0  # the caller reuses its array
        torch.testing.assert_close(pos(2).detach(), before)


def test_the_position_code_takes_a_dataframe_of_gradients_by_its_rows():
    # torch.as_tensor read a DataFrame by its columns and failed: "expected sequence of
    # length 4 at dim 0 (got 2)"
    pd = pytest.importorskip("pandas")
    table = np.random.default_rng(0).standard_normal((4, 2))
    frame = pd.DataFrame(table, index=[f"region{r}" for r in range(4)])
    pos = GradientPositionalEmbedding(frame, 8)
    assert torch.equal(pos.gradients, torch.tensor(table, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"gradients must be a numeric table"):
        GradientPositionalEmbedding([["a", "b"]], 8)  # torch raised a TypeError


def test_the_position_code_takes_a_float32_table_read_backwards():
    """A float32 table with a negative stride (its rows or columns reversed) was refused as
    "gradients must be a numeric table ...: At least one stride ... is negative"."""
    table = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    for view in (table[::-1], table[:, ::-1]):
        pos = GradientPositionalEmbedding(view, 8)
        assert torch.equal(pos.gradients, torch.tensor(view.copy()))


@pytest.mark.parametrize("embed_dim", [8.0, "8", 0])
def test_the_patch_embedding_refuses_a_width_that_is_not_a_positive_int(embed_dim):
    # torch failed on 8.0 with "empty(): argument 'size'"; 0 built tokens of no feature
    with pytest.raises(ValueError, match="embed_dim must be an int >= 1"):
        PatchEmbed(4, embed_dim)


@pytest.mark.parametrize("embed_dim", [8.0, "8", 0])
def test_the_position_code_refuses_a_width_that_is_not_a_positive_int(embed_dim):
    # torch failed on 8.0 with "empty(): argument 'size'"; 0 built an empty code
    with pytest.raises(ValueError, match="embed_dim must be an int >= 1"):
        GradientPositionalEmbedding(torch.randn(3, 2), embed_dim)


def test_float64_and_integer_gradients_are_kept_as_a_float32_buffer():
    # as the weights: a float64 table would be saved as float64 and an integer one stay integer
    # through .double(); the state dict is that of the float32 table
    import numpy as np

    table = np.random.default_rng(0).standard_normal((6, 3))
    for gradients in (table, np.arange(18).reshape(6, 3)):
        pos = GradientPositionalEmbedding(gradients, 8)
        assert pos.gradients.dtype == torch.float32
        assert torch.equal(pos.gradients, torch.as_tensor(gradients).float())
        assert pos.double().gradients.dtype == torch.float64


def test_a_move_drops_the_time_tables_cached_on_every_device():
    pos = tiny_model().encoder.pos_embed
    pos.time_table(5, "meta")
    pos.time_table(5, "cpu")
    pos.double()  # the same path as .cpu() after a GPU run
    assert pos._time_tables == {}


def test_a_frozen_encoder_is_in_eval_mode_from_the_start():
    # no stochastic depth in a frozen encoder, even before the first train() / eval() call
    encoder = tiny_model(drop_path_rate=0.5).encoder.train()
    model = EncoderWithHead(encoder, 2, freeze_encoder=True)
    assert model.training and not model.encoder.training
    x = torch.randn(2, 20, 12)
    torch.testing.assert_close(model.forward_features(x), model.forward_features(x))


def test_a_one_feature_pooling_under_a_layernorm_head_names_the_head_that_takes_it():
    """The advice was freeze_encoder=True, which here leaves the LayerNorm head (the estimators
    pair it with the BatchNorm head): the module's own setting is head="batchnorm"."""
    encoder = tiny_model(n_regions=2).encoder
    with pytest.raises(ValueError, match='gives 1 feature.*head="batchnorm"'):
        EncoderWithHead(encoder, 2, pooling="connectivity", freeze_encoder=True)
    probe = EncoderWithHead(encoder, 2, pooling="connectivity", head="batchnorm",
                            freeze_encoder=True)
    assert probe.forward_features(torch.randn(3, 20, 2)).shape == (3, 1)


@pytest.mark.parametrize("final_norm", [True, False])
def test_an_encoder_with_head_pools_the_tokens_and_builds_the_head_it_is_asked_for(final_norm):
    # the settings reach the modules: the head kind, and the final norm the pooling reads
    encoder = tiny_model().encoder.eval()
    model = EncoderWithHead(encoder, 2, head="batchnorm", final_norm=final_norm).eval()
    assert model.head.kind == "batchnorm" and isinstance(model.head.norm, torch.nn.BatchNorm1d)
    x = torch.randn(3, 20, 12)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x),
                                   encoder(x, final_norm=final_norm).mean(1))


def test_a_batchnorm_head_in_training_standardises_a_batch_of_two_with_its_own_statistics():
    # only a batch of one window falls back on the running statistics: two windows have a
    # spread, which the probe standardises with (and adds to its moving averages)
    head = PooledHead(4, 2, kind="batchnorm").train()
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    mean, var = x.mean(0), x.var(0, correction=0)
    expected = head.linear((x - mean) / torch.sqrt(var + head.norm.eps))
    torch.testing.assert_close(head(x), expected)
    torch.testing.assert_close(head.norm.running_mean, 0.1 * mean)


@pytest.mark.parametrize("mode", ["mean", "roi", "roi_std", "connectivity", "lagged"])
def test_an_encoder_with_head_pools_with_the_mode_it_is_given(mode):
    encoder = tiny_model().encoder.eval()
    model = EncoderWithHead(encoder, 2, pooling=mode, head="batchnorm").eval()
    pooling = TokenPooling(mode, n_regions=12)
    assert model.head.linear.in_features == pooling.n_features(32)
    x = torch.randn(3, 20, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), pooling(encoder(x)))


def test_a_frozen_encoder_stays_frozen_and_in_eval_mode_through_train():
    model = EncoderWithHead(tiny_model(drop_path_rate=0.5).encoder, 2, head="batchnorm",
                            freeze_encoder=True)
    assert model.eval().train() is model
    assert model.head.training and not model.encoder.training
    assert not any(p.requires_grad for p in model.encoder.parameters())


@pytest.mark.parametrize("freeze_encoder", [False, True])
def test_eval_puts_the_head_and_a_trainable_encoder_in_eval_mode(freeze_encoder):
    # predictions come in eval mode: the probe's running statistics, no stochastic depth
    model = EncoderWithHead(tiny_model(drop_path_rate=0.5).encoder, 2, head="batchnorm",
                            freeze_encoder=freeze_encoder).train()
    assert model.encoder.training is not freeze_encoder
    assert model.eval() is model
    assert not any(module.training for module in model.modules())
    assert model.train(False) is model and not model.head.training


def test_a_frozen_encoder_builds_no_graph_even_for_an_input_that_asks_for_gradients():
    # "no gradient reaches a frozen encoder": an input with requires_grad (an attribution
    # map, say) must not make it keep every block's activations
    model = EncoderWithHead(tiny_model().encoder, 2, head="batchnorm", freeze_encoder=True)
    graphs = []
    model.encoder.register_forward_hook(lambda module, args, out: graphs.append(out.requires_grad))
    out = model(torch.randn(2, 20, 12, requires_grad=True))
    assert graphs == [False] and out.requires_grad  # the head still trains


def test_the_linear_probe_updates_its_running_statistics_with_the_default_momentum():
    # BatchNorm1d's momentum 0.1, as the research code's linear probe
    head = PooledHead(4, 2, kind="batchnorm").train()
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    head(x)
    torch.testing.assert_close(head.norm.running_mean, 0.1 * x.mean(0))
    torch.testing.assert_close(head.norm.running_var, 0.9 + 0.1 * x.var(0))


def test_the_predictor_takes_the_models_mlp_ratio():
    model = tiny_model(mlp_ratio=2.0)
    assert model.encoder.blocks[0].mlp.fc1.out_features == 2 * 32
    assert model.predictor.blocks[0].mlp.fc1.out_features == 2 * 16


def test_a_predictor_without_a_patch_count_asks_for_one():
    from brainjepa_sk.nn import BrainPredictor

    predictor = BrainPredictor(torch.randn(6, 3), embed_dim=16, predictor_embed_dim=8, depth=1,
                               num_heads=2)
    with pytest.raises(ValueError, match="n_patches is needed"):
        predictor(torch.randn(1, 2, 16), torch.tensor([[0, 1]]), torch.tensor([[2]]))


def test_a_predictor_keeps_its_patch_count_as_an_int():
    # a numpy count decodes indices like the int 3
    from brainjepa_sk.nn import BrainPredictor

    context, context_idx = torch.randn(1, 2, 16), torch.tensor([[0, 4]])
    target_idx = torch.tensor([[2]])
    outputs = []
    for n_patches in (3, np.int64(3)):
        torch.manual_seed(0)
        predictor = BrainPredictor(torch.randn(6, 3), embed_dim=16, predictor_embed_dim=8,
                                   depth=1, num_heads=2, n_patches=n_patches)
        assert type(predictor.n_patches) is int
        with torch.no_grad():
            outputs.append(predictor(context, context_idx, target_idx))
            outputs.append(predictor(context, context_idx, target_idx, n_patches=n_patches))
    for output in outputs[1:]:
        torch.testing.assert_close(output, outputs[0], rtol=0, atol=0)


@pytest.mark.parametrize("n_patches", [2.5, 3.0, True, 0, "3", float("nan")])
def test_a_patch_count_that_is_not_an_int_is_refused(n_patches):
    # int() decoded indices with 2 patches for 2.5 (and 3 for "3"), one for True; a whole
    # float is refused as the mask sampler and PatchEmbed refuse one
    from brainjepa_sk.nn import BrainPredictor

    message = rf"n_patches must be an int >= 1, got {n_patches!r}"
    with pytest.raises(ValueError, match=message):
        BrainPredictor(torch.randn(6, 3), embed_dim=16, predictor_embed_dim=8, depth=1,
                       num_heads=2, n_patches=n_patches)
    predictor = BrainPredictor(torch.randn(6, 3), embed_dim=16, predictor_embed_dim=8, depth=1,
                               num_heads=2)
    with pytest.raises(ValueError, match=message):  # and so does forward
        predictor(torch.randn(1, 2, 16), torch.tensor([[0, 1]]), torch.tensor([[2]]),
                  n_patches=n_patches)


def test_a_batchnorm_head_given_one_window_standardises_with_epsilon_1e_6():
    head = PooledHead(4, 2, kind="batchnorm").train()
    head.norm.running_var.fill_(1e-6)  # a feature of tiny spread: the epsilon shows
    x = 1e-3 * torch.randn(4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(head(x[None])[0], head.linear(x / math.sqrt(2e-6)))


def test_an_all_zero_gradient_table_gives_finite_positions():
    # zero gradients and the map's zero initial bias leave no spread to min-max scale by
    model = BrainJEPA(torch.zeros(12, 5), patch_size=4, embed_dim=32, depth=1, num_heads=2,
                      predictor_embed_dim=16, predictor_depth=1)
    table = model.encoder.pos_embed(5)
    assert torch.isfinite(table).all()
    assert torch.isfinite(model.target_encoder(torch.randn(2, 20, 12))).all()


def test_gradients_of_a_tiny_spread_still_span_minus_one_to_one():
    """The min-max scaling divides by any spread above zero (the guard is for an all-zero
    table only): gradients in tiny units, mapped linearly, give the positions of the same
    gradients at unit scale, a gradient half from exactly -1 to 1."""
    gradients = torch.randn(9, 6, generator=torch.Generator().manual_seed(0))
    unit, tiny = (GradientPositionalEmbedding(scale * gradients, 24) for scale in (1.0, 1e-9))
    with torch.no_grad():  # the same map, without a bias (a bias would not scale)
        unit.gradient_proj.bias.zero_()
    tiny.gradient_proj.load_state_dict(unit.gradient_proj.state_dict())
    with torch.no_grad():
        expected, table = unit(3), tiny(3)
    assert table[:, 12:].min().item() == -1.0
    assert table[:, 12:].max().item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(table, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["connectivity", "lagged"])
def test_correlation_poolings_pass_the_gradients_of_their_definition(mode):
    # the standardisation is differentiated too, not only the product of the standardised
    # signals (a fine-tuned encoder learns through it)
    n_regions, n_patches, dim = 3, 4, 5
    tokens = torch.randn(1, n_regions * n_patches, dim, generator=torch.Generator().manual_seed(0))
    weights = torch.randn(TokenPooling(mode, n_regions=n_regions).n_features(dim),
                          generator=torch.Generator().manual_seed(1))
    got = tokens.clone().requires_grad_(True)
    (TokenPooling(mode, n_regions=n_regions)(got)[0] * weights).sum().backward()
    ref = tokens[0].clone().requires_grad_(True)
    grid = ref.reshape(n_regions, n_patches, dim)
    if mode == "connectivity":
        expected = torch.corrcoef(grid.flatten(1))[tuple(torch.triu_indices(n_regions, n_regions, 1))]
    else:
        expected = _lagged(grid, n_patches)
    (expected * weights).sum().backward()
    torch.testing.assert_close(got.grad[0], ref.grad)


def test_drop_path_of_zero_is_the_identity_in_training_and_draws_nothing():
    """``p=0`` (the first block's rate) returns ``x`` itself in training mode too, without a
    draw from the global generator: blocks without stochastic depth do not shift the draws of
    those with it (a run's draws are those of the blocks that drop)."""
    x = torch.randn(4, 3, 2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        assert DropPath(0.0).train()(x) is x
        after = torch.rand(3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        assert torch.equal(torch.rand(3), after)


@pytest.mark.parametrize("cast", ["double", "bfloat16", "default_float64"])
def test_a_model_in_another_dtype_runs_in_that_dtype(cast):
    """``.double()``, ``.to(torch.bfloat16)`` or a model built under a float64 default dtype:
    the float32 position code follows the weights (it used to fail with 'mat1 and mat2 must
    have the same dtype')."""
    reference = tiny_model().eval()
    if cast == "default_float64":
        previous = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            model = tiny_model().eval()
        finally:
            torch.set_default_dtype(previous)
        model.load_state_dict(reference.state_dict())  # float64 draws differ from float32 ones
        dtype = torch.float64
    else:
        dtype = torch.float64 if cast == "double" else torch.bfloat16
        model = tiny_model().to(dtype).eval()
    x = torch.randn(2, 20, 12)
    context, target = torch.arange(0, 30).expand(2, -1), torch.arange(30, 60).expand(2, -1)
    with torch.no_grad():
        tokens = model.encoder(x)
        out = model(x, context, target)
        expected = reference.encoder(x)
    assert tokens.dtype == out["predictions"].dtype == dtype
    assert torch.isfinite(out["loss"])
    tolerance = 1e-5 if dtype == torch.float64 else 0.1
    torch.testing.assert_close(tokens.float(), expected, atol=tolerance, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("head", ["layernorm", "batchnorm"])
def test_an_encoder_with_head_cast_to_another_dtype_trains(dtype, head):
    model = EncoderWithHead(tiny_model().encoder, 3, pooling="roi", head=head).to(dtype)
    out = model(torch.randn(4, 8, 12))
    assert out.dtype == dtype
    out.float().sum().backward()
    assert model.head.linear.weight.grad is not None
    assert model.forward_features(torch.randn(2, 8, 12)).dtype == (
        torch.float64 if dtype == torch.float64 else torch.float32)


def test_token_indices_of_another_batch_size_are_refused():
    """torch.gather takes an index with fewer rows than the tokens: a batch of three with the
    masks of one sample encoded (and trained on) the first sample only, silently."""
    model = tiny_model()
    x = torch.randn(3, 8, 12)
    context, target = torch.arange(6)[None], torch.arange(6, 12)[None]
    with pytest.raises(ValueError, match=r"batch of the tokens \(3\).*\(1, 6\)"):
        model.encoder(x, context)
    with pytest.raises(ValueError, match="token indices must be of shape"):
        model(x, context.expand(3, -1), target)
    with pytest.raises(ValueError, match=r"got shape \(6,\)"):
        model.encoder(x, torch.arange(6))
    with pytest.raises(ValueError, match=r"got shape \(3, 6, 1\)"):
        model.encoder(x, context.expand(3, -1)[..., None])  # the right batch, one axis too many


def test_an_empty_batch_encodes_to_no_tokens():
    # the patch reshape used to infer its last axis, which an empty batch leaves ambiguous
    assert tiny_model().encoder(torch.randn(0, 8, 12)).shape == (0, 24, 32)


def test_the_loss_refuses_no_targets_and_mismatched_shapes():
    model = tiny_model()
    x = torch.randn(2, 8, 12)
    with pytest.raises(ValueError, match="no target token"):
        model(x, torch.arange(6).expand(2, -1), torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="differ"):
        jepa_loss(torch.randn(2, 5, 4), torch.randn(2, 1, 4))
    with pytest.raises(ValueError, match="differ"):  # one feature would broadcast over four
        jepa_loss(torch.randn(2, 5, 4), torch.randn(2, 5, 1))


@pytest.mark.parametrize("mode", ["roi", "roi_std", "connectivity", "lagged"])
def test_token_pooling_of_an_empty_batch_and_of_a_count_that_is_not_a_grid(mode):
    # both failed in a reshape with torch's message (an empty batch made its -1 ambiguous)
    pooling = TokenPooling(mode, n_regions=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's std warned of no degrees of freedom
        assert pooling(torch.randn(0, 12, 8)).shape == (0, pooling.n_features(8))
    with pytest.raises(ValueError, match="needs a multiple of 4 tokens, got 13"):
        pooling(torch.randn(2, 13, 8))
    # 3.0 failed in the reshape with torch's message, True pooled one region
    for bad in (0, 3.0, True, "3"):
        with pytest.raises(ValueError, match=rf"n_regions must be an int >= 1, got {bad!r}"):
            TokenPooling(mode, n_regions=bad)
    numpy_count = TokenPooling(mode, n_regions=np.int64(4))
    assert type(numpy_count.n_regions) is int
    assert numpy_count(torch.randn(1, 12, 8)).shape == (1, numpy_count.n_features(8))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_or_empty_gradients_and_a_zero_patch_size_are_refused(bad):
    """One NaN coordinate made every region's position NaN (the min-max scaling spans all
    regions), silently; no region failed in torch's min(); patch_size=0 divided by zero."""
    gradients = torch.randn(6, 3)
    gradients[2, 1] = bad
    with pytest.raises(ValueError, match="gradients must be finite"):
        GradientPositionalEmbedding(gradients, 8)
    with pytest.raises(ValueError, match="a row per region, got none"):
        GradientPositionalEmbedding(torch.zeros(0, 3), 8)
    with pytest.raises(ValueError, match="patch_size must be a positive number of frames"):
        tiny_model(patch_size=0)


@pytest.mark.parametrize("patch_size", [4.5, True, "4"])
def test_a_patch_size_that_is_not_a_count_is_refused(patch_size):
    from brainjepa_sk.nn import BrainEncoder

    # int() built 4-frame patches for 4.5 (and for "4"), and one-frame patches for True
    message = rf"patch_size must be a positive number of frames \(an int\), got {patch_size!r}"
    with pytest.raises(ValueError, match=message):
        tiny_model(patch_size=patch_size)
    with pytest.raises(ValueError, match=message):
        BrainEncoder(torch.randn(12, 5), patch_size=patch_size, embed_dim=32, depth=1,
                     num_heads=2)
    assert tiny_model(patch_size=np.int64(4)).encoder.patch_embed.patch_size == 4


@pytest.mark.parametrize("name, value, message", [
    # int() had raised Python's "invalid literal for int()", naming no parameter
    ("patch_size", "abc", r"patch_size must be a positive number of frames \(an int\), got 'abc'"),
    ("n_patches", "abc", r"n_patches must be an int >= 1, got 'abc'"),
    ("n_patches", float("nan"), r"n_patches must be an int >= 1, got nan"),
    # int() had cut or taken these, or torch failed on them with its own message
    ("embed_dim", 32.0, r"embed_dim must be an int >= 1, got 32\.0"),
    ("embed_dim", "abc", r"embed_dim must be an int >= 1, got 'abc'"),
    ("embed_dim", 0, r"embed_dim must be an int >= 1, got 0"),
    ("depth", 2.5, r"depth must be an int >= 0, got 2\.5"),
    ("depth", -1, r"depth must be an int >= 0, got -1"),
    ("num_heads", 2.0, r"num_heads must be an int >= 1, got 2\.0"),
    ("num_heads", True, r"num_heads must be an int >= 1, got True"),
    ("num_heads", -2, r"num_heads must be an int >= 1, got -2"),
    ("predictor_embed_dim", 16.0, r"predictor_embed_dim must be an int >= 1, got 16\.0"),
    ("predictor_depth", "1", r"predictor_depth must be an int >= 0, got '1'"),
    ("mlp_ratio", "4", r"mlp_ratio must be a finite number > 0, got '4'"),
    ("mlp_ratio", 0, r"mlp_ratio must be a finite number > 0, got 0"),
    # int(16 * inf) had raised OverflowError, naming no setting
    ("mlp_ratio", math.inf, r"mlp_ratio must be a finite number > 0, got inf"),
    # int(16 * 0.05) = 0: the predictor's blocks had an MLP of no hidden unit
    ("mlp_ratio", 0.05, r"mlp_ratio=0\.05 leaves the MLP of the blocks of width 16 no hidden"),
    ("drop_path_rate", "0.1", r"drop_path_rate must be in \[0, 1\), got '0\.1'"),
    ("drop_path_rate", 1.0, r"drop_path_rate must be in \[0, 1\), got 1\.0"),
    ("qkv_bias", "no", r"qkv_bias must be True or False, got 'no'"),
])
def test_the_models_settings_are_checked_as_given_naming_them(name, value, message):
    """BrainJEPA converted its settings (int(), float(), bool()) before any check saw them:
    "abc" failed with Python's message, 2.5 layers were 2, "4" as mlp_ratio built a hidden
    layer of width int(32 * "4"), and "no" gave qkv biases."""
    with pytest.raises(ValueError, match=message):
        tiny_model(**{name: value})


@pytest.mark.parametrize("module", ["encoder", "predictor"])
@pytest.mark.parametrize("name, value, message", [
    ("embed_dim", 32.0, r"embed_dim must be an int >= 1, got 32\.0"),
    ("depth", 1.5, r"depth must be an int >= 0, got 1\.5"),
    ("depth", "1", r"depth must be an int >= 0, got '1'"),
    ("num_heads", True, r"num_heads must be an int >= 1, got True"),
    ("mlp_ratio", "2", r"mlp_ratio must be a finite number > 0, got '2'"),
    ("mlp_ratio", 0.03, r"mlp_ratio=0\.03 leaves the MLP of the blocks of width \d+ no hidden"),
    ("drop_path_rate", 1.5, r"drop_path_rate must be in \[0, 1\), got 1\.5"),
    ("qkv_bias", "no", r"qkv_bias must be True or False, got 'no'"),
])
def test_an_encoder_or_predictor_built_alone_checks_its_settings_as_the_model_does(module, name,
                                                                                  value, message):
    """Built directly (pure torch use), they had int()ed, float()ed and bool()ed their
    settings: 1.5 blocks were 1, "2" as mlp_ratio built a hidden layer of width
    int(32 * "2"), and "no" gave qkv biases."""
    from brainjepa_sk.nn import BrainEncoder, BrainPredictor

    settings = dict(embed_dim=32, depth=1, num_heads=2, mlp_ratio=2.0, qkv_bias=True,
                    drop_path_rate=0.0)
    settings[name] = value
    with pytest.raises(ValueError, match=message):
        if module == "encoder":
            BrainEncoder(torch.randn(6, 3), patch_size=4, **settings)
        else:
            BrainPredictor(torch.randn(6, 3), predictor_embed_dim=16, **settings)


def test_the_predictors_own_width_is_checked_as_given():
    from brainjepa_sk.nn import BrainPredictor

    with pytest.raises(ValueError, match=r"predictor_embed_dim must be an int >= 1, got 16\.0"):
        BrainPredictor(torch.randn(6, 3), embed_dim=32, predictor_embed_dim=16.0, depth=1,
                       num_heads=2)


def test_numpy_settings_give_the_model_of_python_ones_with_a_config_of_python_values():
    # a config read from elsewhere may hold numpy scalars: taken, and stored as Python values
    # (a checkpoint's weights-only reader refuses numpy scalars)
    settings = dict(patch_size=4, embed_dim=32, depth=2, num_heads=2, predictor_embed_dim=16,
                    predictor_depth=1, n_patches=5, mlp_ratio=2.0, drop_path_rate=0.25,
                    qkv_bias=False)
    numpy_settings = {key: (np.bool_(value) if isinstance(value, bool) else
                            np.float32(value) if isinstance(value, float) else np.int64(value))
                      for key, value in settings.items()}
    model, numpy_model = tiny_model(**settings), tiny_model(**numpy_settings)
    assert numpy_model.config == model.config
    for key in settings:
        assert type(numpy_model.config[key]) is type(settings[key]), key
    torch.testing.assert_close(numpy_model.state_dict(), model.state_dict(), rtol=0, atol=0)


def test_time_tables_are_cached_per_dtype_and_a_float64_module_keeps_float64_times():
    pos = GradientPositionalEmbedding(torch.randn(5, 3), 16)
    single = pos.time_table(6, "cpu")
    double = pos.time_table(6, "cpu", torch.float64)
    assert (single.dtype, double.dtype) == (torch.float32, torch.float64)
    assert torch.equal(double, sincos_time_embedding(6, 8, dtype=torch.float64))
    table = pos.double()(2000).reshape(5, 2000, 16)
    assert table.dtype == torch.float64  # not float32 time codes cast up
    assert torch.equal(table[0, :, :8], sincos_time_embedding(2000, 8, dtype=torch.float64))


def test_a_bfloat16_positional_embedding_scales_its_positions_in_float32():
    # the documented float32 table: a bf16 min-max scaling would quantise the positions
    pos = GradientPositionalEmbedding(torch.randn(9, 6), 24).to(torch.bfloat16)
    table = pos(3)
    assert table.dtype == torch.float32
    weight, bias = pos.gradient_proj.weight.float(), pos.gradient_proj.bias.float()
    space = pos.gradients.float() @ weight.T + bias
    expected = 2 * (space - space.min()) / (space.max() - space.min()) - 1
    torch.testing.assert_close(table.reshape(9, 3, 24)[:, 0, 12:], expected)


def test_positions_under_bf16_autocast_are_the_float32_positions():
    # the documented float32 table under autocast too: torch's autocast would run the gradient
    # map in bf16, and the min-max scaling would spread its rounding over the whole half
    torch.manual_seed(0)
    pos = GradientPositionalEmbedding(torch.randn(9, 6), 24)
    with torch.no_grad():
        reference = pos(3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            table = pos(3)
    assert table.dtype == torch.float32
    torch.testing.assert_close(table, reference, rtol=0, atol=1e-6)


def test_the_targets_come_from_the_ema_encoder_not_the_online_one():
    # the two start equal (a copy): only weights that have moved apart tell which one
    # encodes the targets
    model = tiny_model()
    with torch.no_grad():
        for p in model.encoder.parameters():
            p.add_(torch.randn_like(p))
    x = torch.randn(2, 20, 12)
    ctx, tgt = torch.tensor([[0, 5, 17, 40]] * 2), torch.tensor([[1, 6, 33]] * 2)
    with torch.no_grad():
        expected = F.layer_norm(model.target_encoder(x), (32,))[:, [1, 6, 33]]
        out = model(x, ctx, tgt)
    torch.testing.assert_close(model.targets(x, tgt), expected)
    torch.testing.assert_close(out["targets"], expected)


def test_final_norm_false_returns_the_last_blocks_residual_stream_before_the_layernorm():
    # the embedders' and heads' final_norm=False reads the tokens before the final LayerNorm:
    # the blocks run by hand give them, and that LayerNorm turns them into the default output
    encoder = tiny_model().encoder.eval()
    with torch.no_grad():
        encoder.norm.weight.fill_(3.0)  # tokens the LayerNorm leaves alone would still differ
        x = torch.randn(2, 20, 12)
        tokens = encoder.patch_embed(x) + encoder.pos_embed(5)
        for block in encoder.blocks:
            tokens = block(tokens)
        stream = encoder(x, final_norm=False)
        torch.testing.assert_close(stream, tokens)
        torch.testing.assert_close(encoder(x), encoder.norm(stream))


def test_the_targets_are_the_layer_normed_output_of_the_ema_encoders_own_final_norm():
    # a trained final LayerNorm (its affine weights moved by the EMA) is part of the target
    # encoder: the targets normalise its output, not the residual stream before it
    model = tiny_model()
    with torch.no_grad():
        norm = model.target_encoder.norm
        norm.weight.copy_(torch.linspace(0.2, 3.0, 32))
        norm.bias.copy_(torch.linspace(-1.0, 1.0, 32))
        x = torch.randn(2, 20, 12)
        tgt = torch.tensor([[1, 6, 33]] * 2)
        expected = F.layer_norm(norm(model.target_encoder(x, final_norm=False)), (32,))
    torch.testing.assert_close(model.targets(x, tgt), expected[:, [1, 6, 33]])
