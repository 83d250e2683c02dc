"""Loading the research code's checkpoint reproduces its outputs exactly."""

import re

import numpy as np
import pytest
import torch

from brainjepa_sk.checkpoint import load_research_checkpoint
from brainjepa_sk.gradients import load_gradients
from brainjepa_sk.nn import BrainJEPA, jepa_loss
from brainjepa_sk.nn.pos_embed import sincos_time_embedding

TOL = 1e-5


def _max_err(tensor, expected):
    return float(np.abs(tensor.detach().numpy() - expected).max())


def test_exact_call_from_issue_reproduces_every_output(research_model, reference):
    model = research_model
    assert isinstance(model, BrainJEPA)
    x = torch.from_numpy(reference["x_nilearn"])
    context_idx = torch.from_numpy(reference["masks_enc"])
    target_idx = torch.from_numpy(reference["masks_pred"])
    with torch.no_grad():
        tokens = model.target_encoder(x)
        ctx = model.encoder(x, context_idx)
        pred = model.predictor(ctx, context_idx, target_idx)
        targets = model.targets(x, target_idx)
        assert _max_err(tokens, reference["target_encoder_tokens"]) <= TOL
        assert _max_err(model.encoder(x), reference["encoder_tokens"]) <= TOL
        assert _max_err(ctx, reference["context_tokens"]) <= TOL
        assert _max_err(pred, reference["predictions"]) <= TOL
        assert _max_err(targets, reference["targets"]) <= TOL
        # The reference holds the mean squared error; "l2" sums over the features.
        l2 = jepa_loss(pred, targets, "l2").item()
        assert abs(l2 / pred.shape[-1] - reference["loss_mse"]) <= TOL
        assert abs(jepa_loss(pred, targets, "smooth_l1").item() - reference["loss_smooth_l1"]) <= TOL
        # The module's own forward computes the same loss.
        model.loss = "smooth_l1"
        try:
            out = model(x, context_idx, target_idx)
        finally:
            model.loss = "l2"
        assert abs(out["loss"].item() - reference["loss_smooth_l1"]) <= TOL


def test_official_orientation_is_the_transpose(reference):
    # The research code feeds (batch, 1, n_regions, n_frames); we take nilearn's orientation.
    assert np.array_equal(reference["x_official"][:, 0].transpose(0, 2, 1), reference["x_nilearn"])


def test_sizes_are_inferred_from_the_state_dict(research_model, official_dir):
    import json

    config = json.loads((official_dir / "config.json").read_text())
    got = research_model.config
    assert got["patch_size"] == config["patch_size"]
    assert got["embed_dim"] == config["embed_dim"]
    assert got["depth"] == config["depth"]
    assert got["num_heads"] == config["num_heads"]
    assert got["predictor_embed_dim"] == config["predictor_embed_dim"]
    assert got["predictor_depth"] == config["predictor_depth"]
    assert got["mlp_ratio"] == config["mlp_ratio"]
    assert got["n_patches"] == config["n_frames"] // config["patch_size"]
    assert research_model.n_regions == config["n_rois"]
    assert not research_model.training


def test_gradients_as_array_equal_gradients_as_path(official_dir, reference, research_model):
    array = load_gradients(official_dir / "gradient.csv")
    model = load_research_checkpoint(
        official_dir / "checkpoint.pth.tar", gradients=array, num_heads=4
    )
    x = torch.from_numpy(reference["x_nilearn"])
    with torch.no_grad():
        assert torch.equal(model.target_encoder(x), research_model.target_encoder(x))


def test_default_heads_are_64_wide_with_a_warning_off_the_vit_sizes(official_dir, reference):
    # num_heads=None means head width 64 for a width that is no ViT size: one head for this
    # 64-wide test model, which then computes something else than the 4-head research model
    # (random weights make attention nearly uniform, so the difference is small, but far above
    # the tolerance). Hence the warning.
    with pytest.warns(UserWarning, match=r"embed_dim=64 is not the width of a ViT size; "
                                         r"assuming heads 64 wide \(1\).*pass num_heads"):
        model = load_research_checkpoint(
            official_dir / "checkpoint.pth.tar", gradients=official_dir / "gradient.csv"
        )
    assert model.config["num_heads"] == 1
    x = torch.from_numpy(reference["x_nilearn"])
    with torch.no_grad():
        assert _max_err(model.target_encoder(x), reference["target_encoder_tokens"]) > 10 * TOL


def test_other_frame_counts_rebuild_the_time_table(research_model, reference):
    # Twice the frames: the first 40 frames' tokens do not equal the short run (attention mixes
    # them), but the model runs, and the time code of patch p is the same as before.
    x = torch.from_numpy(reference["x_nilearn"])
    longer = torch.cat([x, x], dim=1)
    with torch.no_grad():
        tokens = research_model.target_encoder(longer)
    assert tokens.shape == (3, 24 * 20, 64)
    table10 = research_model.encoder.pos_embed(10).reshape(24, 10, 64)
    table20 = research_model.encoder.pos_embed(20).reshape(24, 20, 64)
    assert torch.equal(table10, table20[:, :10])


@pytest.mark.parametrize("prefix", ["", "module.module."])
def test_state_dict_without_module_prefix_loads(official_dir, reference, tmp_path, prefix):
    """Without DDP's "module." prefix, or with it twice (a DataParallel around DDP): the
    doubled one was refused for a key it lacked ('patch_embed.proj.weight')."""
    checkpoint = torch.load(official_dir / "checkpoint.pth.tar", weights_only=True)
    for section in ("encoder", "predictor", "target_encoder"):
        checkpoint[section] = {prefix + k.removeprefix("module."): v
                               for k, v in checkpoint[section].items()}
    path = tmp_path / "plain.pth.tar"
    torch.save(checkpoint, path)
    model = load_research_checkpoint(path, official_dir / "gradient.csv", num_heads=4)
    with torch.no_grad():
        tokens = model.target_encoder(torch.from_numpy(reference["x_nilearn"]))
    assert _max_err(tokens, reference["target_encoder_tokens"]) <= TOL


def _corrupt(official_dir, tmp_path, edit):
    checkpoint = torch.load(official_dir / "checkpoint.pth.tar", weights_only=True)
    edit(checkpoint)
    path = tmp_path / "bad.pth.tar"
    torch.save(checkpoint, path)
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.pop("target_encoder"), "missing section"),
        (lambda c: c["encoder"].pop("module.blocks.1.mlp.fc2.weight"), "missing"),
        (lambda c: c["target_encoder"].pop("module.pos_embed_proj.emb_h"), "emb_h"),
        (lambda c: c["predictor"]["module.predictor_2dpe_proj.emb_h"].copy_(
            c["predictor"]["module.predictor_2dpe_proj.emb_h"].flip(0)),
         "'predictor'/predictor_2dpe_proj.emb_h does not match the sine-cosine time code"),
        (
            lambda c: c["predictor"].__setitem__(
                "module.predictor_proj.weight", torch.zeros(64, 31)
            ),
            "predictor_proj.weight|proj.weight",
        ),
        (
            lambda c: c["encoder"].__setitem__("module.blocks.0.attn.qkv.weight", torch.zeros(5, 64)),
            "qkv.weight",
        ),
        (lambda c: c["encoder"].__setitem__("module.extra.weight", torch.zeros(1)), "unexpected"),
        (lambda c: c["encoder"].__setitem__("module.blocks.0.attn.qkv.weight", 3),
         "'encoder': blocks.0.attn.qkv.weight is of type int, not a tensor"),
        (lambda c: c["target_encoder"]["module.blocks.0.mlp.fc1.weight"].view(-1).__setitem__(
            5, float("nan")), "'target_encoder': blocks.0.mlp.fc1.weight holds NaN or infinite"),
        # an empty section is named as such, not by the first key looked up in it
        (lambda c: c.__setitem__("predictor", {}),
         "section 'predictor' is not a non-empty state dict"),
        # a time table a little off (not only one of another size) is refused
        (lambda c: c["target_encoder"]["module.pos_embed_proj.emb_h"].add_(0.01),
         "'target_encoder'/pos_embed_proj.emb_h does not match the sine-cosine time code"),
        # off by 1e-3 (ten times the tolerance) is refused as well
        (lambda c: c["predictor"]["module.predictor_2dpe_proj.emb_h"].add_(0.001),
         "'predictor'/predictor_2dpe_proj.emb_h does not match the sine-cosine time code"),
        # NaN in the predictor, and in a half-precision tensor, are found too
        (lambda c: c["predictor"]["module.predictor_norm.weight"].__setitem__(0, float("nan")),
         "'predictor': predictor_norm.weight holds NaN or infinite"),
        (lambda c: c["target_encoder"].__setitem__(
            "module.norm.weight", torch.full((64,), float("inf"), dtype=torch.bfloat16)),
         "'target_encoder': norm.weight holds NaN or infinite"),
        # a patch embedding over more than one row of the (regions x frames) image is named
        # as such, not as a shape the inferred model does not take
        (lambda c: c["target_encoder"].__setitem__(
            "module.patch_embed.proj.weight", torch.zeros(64, 1, 2, 2)),
         r"patch_embed.proj.weight should be \(embed_dim, 1, 1, patch_size\), got \(64, 1, 2, 2\)"),
    ],
)
def test_wrong_files_name_the_problem(official_dir, tmp_path, edit, message):
    path = _corrupt(official_dir, tmp_path, edit)
    with pytest.raises(ValueError, match=message) as error:
        load_research_checkpoint(path, official_dir / "gradient.csv", num_heads=4)
    assert str(path) in str(error.value)  # the file is named too


def test_gradients_with_wrong_rows_are_named(official_dir, tmp_path):
    gradients = load_gradients(official_dir / "gradient.csv")
    with pytest.raises(ValueError, match="23 rows"):
        load_research_checkpoint(official_dir / "checkpoint.pth.tar", gradients[:23], num_heads=4)
    # 12 rows divide the 240 stored positions, but the time table then does not match.
    with pytest.raises(ValueError, match="12 regions x 20 patches.*it was trained on 24 regions "
                                         "x 10 patches, but the gradients have 12 rows"):
        load_research_checkpoint(official_dir / "checkpoint.pth.tar", gradients[:12], num_heads=4)
    with pytest.raises(ValueError, match="trained on 24 regions x 10 patches, but the gradients "
                                         "have 30 rows"):
        load_research_checkpoint(official_dir / "checkpoint.pth.tar",
                                 np.vstack([gradients, gradients[:6]]), num_heads=4)
    # a file of the wrong shape is named, with the checkpoint it does not belong to
    path = tmp_path / "other_atlas.csv"
    np.savetxt(path, gradients[:12], delimiter=",")
    with pytest.raises(ValueError, match=rf"but the gradients \({re.escape(str(path))}\) have 12 "
                                         "rows: they do not belong to this checkpoint"):
        load_research_checkpoint(official_dir / "checkpoint.pth.tar", path, num_heads=4)
    np.savetxt(path, gradients[:, :2], delimiter=",")
    with pytest.raises(ValueError, match=rf"the gradients \({re.escape(str(path))}\) have 2 "
                                         "components"):
        load_research_checkpoint(official_dir / "checkpoint.pth.tar", path, num_heads=4)


def test_gradients_with_wrong_columns_are_named(official_dir):
    gradients = load_gradients(official_dir / "gradient.csv")
    with pytest.raises(ValueError, match="29 components"):
        load_research_checkpoint(
            official_dir / "checkpoint.pth.tar", gradients[:, :29], num_heads=4
        )
    # more columns than the checkpoint's gradient map takes: named the same way
    with pytest.raises(ValueError, match="31 components"):
        load_research_checkpoint(official_dir / "checkpoint.pth.tar",
                                 np.hstack([gradients, gradients[:, :1]]), num_heads=4)


def test_transposed_gradients_are_told_to_be_transposed(official_dir):
    # stored (n_components, n_regions): 24 "components" for a map of 30, and 30 "regions"
    gradients = load_gradients(official_dir / "gradient.csv")
    with pytest.raises(ValueError, match=r"24 components \(columns\) but the checkpoint's "
                                         r"gradient map expects 30: the matrix of shape "
                                         r"\(30, 24\) looks transposed; pass gradients\.T"):
        load_research_checkpoint(official_dir / "checkpoint.pth.tar", gradients.T, num_heads=4)
    with pytest.raises(ValueError, match="29 components") as error:
        load_research_checkpoint(official_dir / "checkpoint.pth.tar", gradients[:, :29],
                                 num_heads=4)
    assert "transposed" not in str(error.value)


def test_heads_that_do_not_divide_the_width_are_refused(official_dir):
    with pytest.raises(ValueError, match="num_heads=3"):
        load_research_checkpoint(
            official_dir / "checkpoint.pth.tar", official_dir / "gradient.csv", num_heads=3
        )


def test_a_head_count_is_taken_as_a_numpy_int_and_refused_as_a_float(official_dir, reference):
    # int() had cut 4.5 to 4 heads, and taken "4"
    path, gradients = official_dir / "checkpoint.pth.tar", official_dir / "gradient.csv"
    for bad in (4.5, 4.0, "4"):
        with pytest.raises(ValueError, match=rf"checkpoint\.pth\.tar: num_heads must be an int "
                                             rf">= 1, got {bad!r}"):
            load_research_checkpoint(path, gradients, num_heads=bad)
    model = load_research_checkpoint(path, gradients, num_heads=np.int64(4))
    assert type(model.config["num_heads"]) is int and model.config["num_heads"] == 4
    with torch.no_grad():
        tokens = model.target_encoder(torch.from_numpy(reference["x_nilearn"]))
    assert _max_err(tokens, reference["target_encoder_tokens"]) <= TOL


def test_not_a_checkpoint(tmp_path, official_dir):
    path = tmp_path / "junk.pth.tar"
    path.write_text("not a checkpoint")
    with pytest.raises(ValueError,
                       match="junk.pth.tar is not a research checkpoint: it is a text file"):
        load_research_checkpoint(path, official_dir / "gradient.csv")
    with pytest.raises(FileNotFoundError):
        load_research_checkpoint(tmp_path / "absent.pth.tar", official_dir / "gradient.csv")
    # a torch file that holds something other than a dictionary of sections
    for content in (torch.zeros(3), ["encoder", "predictor", "target_encoder"]):
        torch.save(content, path)
        with pytest.raises(ValueError, match="junk.pth.tar does not hold a dictionary of state "
                                             "dicts"):
            load_research_checkpoint(path, official_dir / "gradient.csv", num_heads=4)


def test_a_width_in_the_table_loads_with_its_head_count(official_dir, reference, monkeypatch):
    """The loader takes the table's count, not width // 64: with the fixture's width entered
    as 4 heads, num_heads=None reproduces the 4-head research outputs."""
    import warnings

    from brainjepa_sk import checkpoint

    monkeypatch.setitem(checkpoint._RESEARCH_HEADS, 64, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_research_checkpoint(official_dir / "checkpoint.pth.tar",
                                         gradients=official_dir / "gradient.csv")
    assert model.config["num_heads"] == 4
    with torch.no_grad():
        tokens = model.target_encoder(torch.from_numpy(reference["x_nilearn"]))
    assert _max_err(tokens, reference["target_encoder_tokens"]) <= TOL


def test_default_heads_of_the_vit_sizes_are_theirs_not_width_over_64():
    """ViT-huge and giant are 1280 and 1408 wide with 16 heads (80 and 88 wide), where width
    // 64 would give 20 and 22 (found by a design-faithfulness review); no warning for them."""
    import warnings

    from brainjepa_sk.checkpoint import _research_heads

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [_research_heads(w) for w in (192, 384, 768, 1024, 1280, 1408)] == [
            3, 6, 12, 16, 16, 16]
    with pytest.raises(ValueError, match="embed_dim=100 is not a multiple of 64"):
        _research_heads(100)
    # heads 64 wide need a width that 64 divides: 96 would be one head 96 wide
    with pytest.raises(ValueError, match="embed_dim=96 is not a multiple of 64"):
        _research_heads(96)
    with pytest.warns(UserWarning, match=r"embed_dim=128 .*assuming heads 64 wide \(2\)"):
        assert _research_heads(128) == 2


def test_a_checkpoint_without_qkv_biases_loads_as_a_model_without_them(official_dir, reference,
                                                                          tmp_path):
    # the same weights with zero qkv biases stored, and with none stored at all
    def without_biases(keep_zeros):
        def edit(checkpoint):
            for section in ("encoder", "predictor", "target_encoder"):
                for key in [k for k in checkpoint[section] if k.endswith("attn.qkv.bias")]:
                    bias = checkpoint[section].pop(key)
                    if keep_zeros:
                        checkpoint[section][key] = torch.zeros_like(bias)
        return edit

    def load(keep_zeros):
        folder = tmp_path / str(keep_zeros)
        folder.mkdir()
        path = _corrupt(official_dir, folder, without_biases(keep_zeros))
        return load_research_checkpoint(path, official_dir / "gradient.csv", num_heads=4)

    zeros, none = load(True), load(False)
    assert zeros.config["qkv_bias"] and not none.config["qkv_bias"]
    assert none.encoder.blocks[0].attn.qkv.bias is None
    x = torch.from_numpy(reference["x_nilearn"])
    context_idx = torch.from_numpy(reference["masks_enc"])
    target_idx = torch.from_numpy(reference["masks_pred"])
    with torch.no_grad():
        for model in (zeros, none):
            model.loss = "smooth_l1"
        torch.testing.assert_close(none(x, context_idx, target_idx)["loss"],
                                   zeros(x, context_idx, target_idx)["loss"])
        torch.testing.assert_close(none.target_encoder(x), zeros.target_encoder(x))


def test_a_one_patch_checkpoint_given_wrong_gradients_names_the_regions_it_was_trained_on(
        official_dir, tmp_path):
    """A time table of one patch per region (24 regions x 1 patch) read with 12 gradient rows:
    the hint counts a single patch as a candidate too."""
    from brainjepa_sk.nn.pos_embed import sincos_time_embedding

    def one_patch(checkpoint):
        for section, key in [("target_encoder", "module.pos_embed_proj.emb_h"),
                             ("predictor", "module.predictor_2dpe_proj.emb_h")]:
            half = checkpoint[section][key].shape[1]
            checkpoint[section][key] = sincos_time_embedding(1, half).repeat(24, 1)

    path = _corrupt(official_dir, tmp_path, one_patch)
    gradients = load_gradients(official_dir / "gradient.csv")
    with pytest.raises(ValueError, match="12 regions x 2 patches.*it was trained on 24 regions "
                                         "x 1 patches, but the gradients have 12 rows"):
        load_research_checkpoint(path, gradients[:12], num_heads=4)


def test_a_one_region_checkpoint_given_wrong_gradients_names_the_region_it_was_trained_on(
        official_dir, tmp_path):
    """A time table of one region x 240 patches read with the 24 gradient rows: one region
    counts as a candidate too (the hint names it rather than the gradients' row count)."""
    from brainjepa_sk.nn.pos_embed import sincos_time_embedding

    def one_region(checkpoint):
        for section, key in [("target_encoder", "module.pos_embed_proj.emb_h"),
                             ("predictor", "module.predictor_2dpe_proj.emb_h")]:
            checkpoint[section][key] = sincos_time_embedding(240, checkpoint[section][key].shape[1])

    path = _corrupt(official_dir, tmp_path, one_region)
    with pytest.raises(ValueError, match="24 regions x 10 patches.*it was trained on 1 regions "
                                         r"x 240 patches, but the gradients \(.*gradient\.csv\) "
                                         "have 24 rows"):
        load_research_checkpoint(path, official_dir / "gradient.csv", num_heads=4)


def test_the_loss_argument_is_the_returned_modules_objective(official_dir, reference,
                                                             research_model):
    """``loss`` (default "l2") sets the objective of the returned module: with "smooth_l1",
    its own forward computes the research code's loss."""
    assert research_model.config["loss"] == "l2"
    model = load_research_checkpoint(official_dir / "checkpoint.pth.tar",
                                     official_dir / "gradient.csv", num_heads=4,
                                     loss="smooth_l1")
    assert model.config["loss"] == "smooth_l1"
    x = torch.from_numpy(reference["x_nilearn"])
    with torch.no_grad():
        out = model(x, torch.from_numpy(reference["masks_enc"]),
                    torch.from_numpy(reference["masks_pred"]))
    assert abs(out["loss"].item() - reference["loss_smooth_l1"]) <= TOL


def test_map_location_is_passed_to_torch_load(official_dir, reference):
    locations = []

    def where(storage, location):  # torch.load's callable form
        locations.append(location)
        return storage

    model = load_research_checkpoint(official_dir / "checkpoint.pth.tar",
                                     official_dir / "gradient.csv", num_heads=4,
                                     map_location=where)
    assert locations and set(locations) == {"cpu"}
    with torch.no_grad():
        tokens = model.target_encoder(torch.from_numpy(reference["x_nilearn"]))
    assert _max_err(tokens, reference["target_encoder_tokens"]) <= TOL


def test_depths_of_ten_blocks_or_more_and_fractional_mlp_ratios_are_read(official_dir, reference,
                                                                          tmp_path):
    """The base model has 12 blocks: block numbers of two digits count. The hidden width of
    the MLPs need not be a whole multiple of the width (here 2.5 x 64 = 160, 2.5 x 32 = 80)."""
    def deeper_and_narrower(checkpoint):
        for section, prefix, depth in [("encoder", "module.blocks", 12),
                                       ("target_encoder", "module.blocks", 12),
                                       ("predictor", "module.predictor_blocks", 10)]:
            state = checkpoint[section]
            for block in range(2, depth):  # copies of block 1, each a little changed
                for key in [k for k in state if k.startswith(f"{prefix}.1.")]:
                    new_key = key.replace(f"{prefix}.1.", f"{prefix}.{block}.")
                    state[new_key] = state[key] + 0.001 * block
            for key in [k for k in state if ".mlp.fc1." in k]:
                state[key] = state[key][: state[key].shape[0] * 5 // 8].clone()
            for key in [k for k in state if k.endswith(".mlp.fc2.weight")]:
                state[key] = state[key][:, : state[key].shape[1] * 5 // 8].clone()

    path = _corrupt(official_dir, tmp_path, deeper_and_narrower)
    model = load_research_checkpoint(path, official_dir / "gradient.csv", num_heads=4)
    assert model.config["depth"] == 12 and model.config["predictor_depth"] == 10
    assert model.config["mlp_ratio"] == 2.5
    stored = torch.load(path, weights_only=True)
    torch.testing.assert_close(model.target_encoder.blocks[11].mlp.fc2.weight,
                               stored["target_encoder"]["module.blocks.11.mlp.fc2.weight"],
                               rtol=0, atol=0)
    torch.testing.assert_close(model.predictor.blocks[9].mlp.fc1.weight,
                               stored["predictor"]["module.predictor_blocks.9.mlp.fc1.weight"],
                               rtol=0, atol=0)
    with torch.no_grad():
        tokens = model.target_encoder(torch.from_numpy(reference["x_nilearn"]))
    assert tokens.shape == (3, 24 * 10, 64) and torch.isfinite(tokens).all()


def _in_research_layout(model):
    """``model``'s state dicts as the research code writes them (``module.`` prefixes, its
    names, 4-D patch weights and stored time tables), for sizes the fixture does not have."""
    def section(module, renames, table):
        state = {key: value.clone() for key, value in module.state_dict().items()
                 if not key.endswith("pos_embed.gradients")}
        n_regions = module.pos_embed.gradients.shape[0]
        half = state["pos_embed.gradient_proj.weight"].shape[0]
        for ours, theirs in renames:
            state = {re.sub(ours, theirs, key): value for key, value in state.items()}
        state[table] = sincos_time_embedding(model.config["n_patches"], half).repeat(n_regions, 1)
        if "patch_embed.proj.weight" in state:
            weight = state["patch_embed.proj.weight"]
            state["patch_embed.proj.weight"] = weight.reshape(weight.shape[0], 1, 1, -1)
        return {f"module.{key}": value for key, value in state.items()}

    encoder_renames = [(r"^pos_embed\.gradient_proj\.",
                        "pos_embed_proj.predictor_pos_embed_proj.")]
    predictor_renames = [(r"^pos_embed\.gradient_proj\.",
                          "predictor_2dpe_proj.predictor_pos_embed_proj."),
                         (r"^blocks\.", "predictor_blocks."), (r"^norm\.", "predictor_norm."),
                         (r"^proj\.", "predictor_proj.")]
    return {"encoder": section(model.encoder, encoder_renames, "pos_embed_proj.emb_h"),
            "target_encoder": section(model.target_encoder, encoder_renames,
                                      "pos_embed_proj.emb_h"),
            "predictor": section(model.predictor, predictor_renames,
                                 "predictor_2dpe_proj.emb_h")}


@pytest.mark.parametrize(("embed_dim", "mlp_ratio"), [(28, 2.2), (64, 2.5)])
def test_an_mlp_width_that_is_no_exact_ratio_of_the_width_is_read(tmp_path, embed_dim,
                                                                   mlp_ratio):
    """61 hidden units on 28-wide tokens: 28 * (61 / 28) is 60.99..., which the blocks' int()
    cut to 60, and the checkpoint did not fit the model inferred from it."""
    torch.manual_seed(0)
    gradients = torch.randn(6, 3)
    model = BrainJEPA(gradients, patch_size=2, embed_dim=embed_dim, depth=2, num_heads=4,
                      predictor_embed_dim=8, predictor_depth=1, mlp_ratio=mlp_ratio,
                      n_patches=3).eval()
    torch.save(_in_research_layout(model), tmp_path / "research.pth.tar")
    loaded = load_research_checkpoint(tmp_path / "research.pth.tar", gradients.numpy(),
                                      num_heads=4)
    assert loaded.encoder.blocks[0].mlp.fc1.out_features == int(embed_dim * mlp_ratio)
    x = torch.randn(2, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded.target_encoder(x), model.target_encoder(x),
                                   rtol=0, atol=0)


@pytest.mark.parametrize("kept", [["target_encoder"], ["target_encoder", "encoder"]])
def test_a_file_stripped_to_the_target_encoder_loads_as_weights(official_dir, reference,
                                                                tmp_path, kept):
    """The estimators embed with the target encoder alone: a research file stripped to it
    (without the predictor, the context encoder or both) loads as weights, with the window
    its time table was trained on, and embeds as the whole checkpoint does. It was refused
    for the sections it lacked. load_research_checkpoint, which builds the whole BrainJEPA,
    still refuses it, saying that its target encoder alone is taken as weights."""
    from brainjepa_sk.checkpoint import resolve_weights

    whole = official_dir / "checkpoint.pth.tar"
    checkpoint = torch.load(whole, weights_only=True)
    path = tmp_path / "target_encoder.pth.tar"
    torch.save({section: checkpoint[section] for section in kept}, path)
    gradients = official_dir / "gradient.csv"
    resolved = resolve_weights(path, gradients=gradients, num_heads=4)
    expected = resolve_weights(whole, gradients=gradients, num_heads=4)
    assert resolved.n_frames == expected.n_frames == 40
    x = torch.from_numpy(reference["x_nilearn"])
    with torch.no_grad():
        tokens = resolved.encoder(x)
    assert _max_err(tokens, reference["target_encoder_tokens"]) <= TOL
    assert not any(p.requires_grad for p in resolved.encoder.parameters())
    missing = [s for s in ("encoder", "predictor") if s not in kept]
    with pytest.raises(ValueError, match=re.escape(
            f"{path} is not a whole research Brain-JEPA checkpoint: missing section(s) "
            f"{missing} (found {sorted(kept)}), which a BrainJEPA needs; its target encoder "
            "alone is taken as weights by the estimators")):
        load_research_checkpoint(path, gradients, num_heads=4)


def test_a_file_without_the_target_encoder_is_refused_as_weights_naming_it(official_dir,
                                                                          tmp_path):
    from brainjepa_sk.checkpoint import resolve_weights

    checkpoint = torch.load(official_dir / "checkpoint.pth.tar", weights_only=True)
    path = tmp_path / "context.pth.tar"
    torch.save({"encoder": checkpoint["encoder"]}, path)
    with pytest.raises(ValueError, match=re.escape(
            f"{path} is a research checkpoint without its 'target_encoder' section, which the "
            "estimators embed with (found ['encoder'])")):
        resolve_weights(path, gradients=official_dir / "gradient.csv", num_heads=4)


def _fine_tuned_state(official_dir, head=("head", "fc_norm")):
    """The state dict of a model the research code fine-tuned from the test checkpoint: its
    target encoder's keys with 'encoder.' for 'module.', then the head's."""
    checkpoint = torch.load(official_dir / "checkpoint.pth.tar", weights_only=True)
    state = {"encoder." + key.removeprefix("module."): value
             for key, value in checkpoint["target_encoder"].items()}
    shapes = {"head": (2, 64), "fc_norm": (64,)}
    for name in head:
        state[f"{name}.weight"] = torch.ones(shapes[name])
        state[f"{name}.bias"] = torch.zeros(shapes[name][:1])
    return state


@pytest.mark.parametrize("layout", ["state_dict", "model", "saved_with_args", "ddp"])
@pytest.mark.parametrize("head", [("head", "fc_norm"), ("head",)])
def test_a_research_fine_tuned_model_loads_its_encoder_as_weights_without_its_head(
        official_dir, reference, tmp_path, layout, head):
    """The research fine-tuning saves its model (encoder, LayerNorm with global pooling,
    linear head) under 'model', beside its arguments as an argparse.Namespace: it was refused
    as holding Python objects, and its state dict alone was called a brainjepa_sk fine-tuner's
    parameters. Its encoder loads, with a warning naming the head left out; load_checkpoint,
    which refused it as holding Python objects too, says to pass it as weights."""
    import argparse

    from brainjepa_sk.checkpoint import load_checkpoint, resolve_weights

    state = _fine_tuned_state(official_dir, head)
    payload = {
        "state_dict": state,
        "model": {"model": state, "epoch": 49},
        "saved_with_args": {"model": state, "optimizer": {"state": {}, "param_groups": []},
                            "epoch": 49, "scaler": {"scale": 65536.0},
                            "args": argparse.Namespace(blr=1e-3, crop_size=[24, 40])},
        "ddp": {"model": {"module." + key: value for key, value in state.items()}},
    }[layout]
    path = tmp_path / "checkpoint-49.pth"
    torch.save(payload, path)
    head_keys = sorted(key for key in state if not key.startswith("encoder."))
    with pytest.warns(UserWarning, match=re.escape(
            f"{path} holds a model that the research code fine-tuned: its encoder is loaded, "
            f"its head ({head_keys}) is not")):
        resolved = resolve_weights(path, gradients=official_dir / "gradient.csv", num_heads=4)
    assert resolved.n_frames == 40
    with torch.no_grad():
        tokens = resolved.encoder(torch.from_numpy(reference["x_nilearn"]))
    assert _max_err(tokens, reference["target_encoder_tokens"]) <= TOL
    with pytest.raises(ValueError, match=re.escape(
            f"{path} holds a model that the research code fine-tuned (an encoder and a head), "
            "not a pretraining checkpoint")):
        load_research_checkpoint(path, official_dir / "gradient.csv", num_heads=4)
    # named for what it is (not as a file of Python objects), with where it loads
    with pytest.raises(ValueError, match=re.escape(
            f"{path} is a model the research code fine-tuned, not a brainjepa_sk checkpoint: "
            "pass it to the estimators as weights=<its path>, with gradients=")):
        load_checkpoint(path)
    with pytest.raises(ValueError, match=re.escape(
            f"{path} is a model the research code fine-tuned: pass the gradient matrix")):
        resolve_weights(path)


def test_a_research_fine_tuned_model_with_keys_of_unknown_use_is_refused_naming_them(
        official_dir, tmp_path):
    """Keys neither of the encoder nor of the head: which part is the encoder is unclear."""
    from brainjepa_sk.checkpoint import resolve_weights

    state = _fine_tuned_state(official_dir)
    state["adapter.weight"] = torch.zeros(3)
    path = tmp_path / "checkpoint-49.pth"
    torch.save({"model": state}, path)
    with pytest.raises(ValueError, match=re.escape(
            f"{path}: the research fine-tuned model holds, besides its encoder and its head "
            "(['fc_norm.bias', 'fc_norm.weight', 'head.bias', 'head.weight']), "
            "['adapter.weight'], which are neither")):
        resolve_weights(path, gradients=official_dir / "gradient.csv", num_heads=4)


def test_reading_a_fine_tuned_model_keeps_the_safe_globals_the_user_added(official_dir,
                                                                          tmp_path):
    """The Namespace allowed while a research file is read was taken off torch's list of safe
    globals after it, also when the user had put it there: their own safe loads of files
    holding one then failed."""
    import argparse

    from brainjepa_sk.checkpoint import resolve_weights

    path = tmp_path / "checkpoint-49.pth"
    torch.save({"model": _fine_tuned_state(official_dir),
                "args": argparse.Namespace(blr=1e-3)}, path)
    before = torch.serialization.get_safe_globals()
    torch.serialization.add_safe_globals([argparse.Namespace])
    try:
        with pytest.warns(UserWarning, match="its head"):
            resolve_weights(path, gradients=official_dir / "gradient.csv", num_heads=4)
        assert argparse.Namespace in torch.serialization.get_safe_globals()
        assert torch.load(path, weights_only=True)["args"].blr == 1e-3
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)
    # and allowed only while the package reads a research file
    with pytest.warns(UserWarning, match="its head"):
        resolve_weights(path, gradients=official_dir / "gradient.csv", num_heads=4)
    assert argparse.Namespace not in torch.serialization.get_safe_globals()


def test_a_research_fine_tuned_model_without_a_head_loads_without_a_warning(official_dir,
                                                                           tmp_path):
    """A model fine-tuned with num_classes=0 (its head an Identity, no global pooling) saves
    its encoder alone: the warning named an empty list as the head left out."""
    import warnings

    from brainjepa_sk.checkpoint import resolve_weights

    path = tmp_path / "checkpoint-49.pth"
    torch.save({"model": _fine_tuned_state(official_dir, head=())}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolved = resolve_weights(path, gradients=official_dir / "gradient.csv", num_heads=4)
    assert resolved.n_frames == 40
