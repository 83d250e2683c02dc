"""Reading the research code's checkpoints, and saving / loading our own.

Research checkpoints (``jepa-ep300.pth.tar`` and files in the same layout) hold ``encoder``,
``predictor`` and ``target_encoder`` state dicts with a ``module.`` prefix and no gradient
matrix. :func:`load_research_checkpoint` infers the sizes from the tensors' shapes, renames the
keys to this package's modules and checks the stored time-position tables against its own.

Our own format (:func:`save_checkpoint` / :func:`load_checkpoint`) is a plain dictionary of
configuration, gradients, weights and preprocessing that ``torch.load(..., weights_only=True)``
can read.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import inspect
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from ._warnings import warn_user
from .gradients import gradient_region_names, load_gradients, named_gradients
from .nn._checks import type_with_article
from .nn.encoder import BrainEncoder
from .nn.model import BrainJEPA
from .nn.pos_embed import GradientPositionalEmbedding, sincos_time_embedding
from .preprocessing import _FITTED_NAMES, _PARAM_NAMES
from .train.runtime import (
    atomic_save,
    expand_home,
    first_non_finite,
    foreign_file_kind,
    load_file,
    tensor_checksum,
)

__all__ = [
    "UKBIOBANK_T_R",
    "LoadedCheckpoint",
    "ResolvedWeights",
    "load_checkpoint",
    "load_research_checkpoint",
    "resolve_weights",
    "save_checkpoint",
    "export_training_state",
]

#: TR (seconds) of the research UK Biobank model: TR 0.735 s, every third frame.
UKBIOBANK_T_R = 3 * 0.735

FORMAT_NAME = "brainjepa_sk"
#: 2: adds a SHA-256 ``checksum`` of the gradients and weights, verified on loading.
#: 3: the checksum covers the whole file (configuration, preprocessing and metadata too).
#: 4: files of an encoder alone (``"contents": "encoder"``, a fine-tuned encoder): only these
#: are written as 4, so that older versions refuse them as newer rather than fail to build a
#: whole model from them; files of a whole model are still written as 3.
FORMAT_VERSION = 4
#: The version files of a whole ``BrainJEPA`` are written as (read by versions since 3).
_MODEL_FORMAT_VERSION = 3

_REQUIRED_SECTIONS = ("encoder", "predictor", "target_encoder")

# research key (after stripping "module.") -> our key, for the parts whose names differ
_ENCODER_RENAMES = [
    (r"^pos_embed_proj\.predictor_pos_embed_proj\.", "pos_embed.gradient_proj."),
]
_PREDICTOR_RENAMES = [
    (r"^predictor_2dpe_proj\.predictor_pos_embed_proj\.", "pos_embed.gradient_proj."),
    (r"^predictor_blocks\.", "blocks."),
    (r"^predictor_norm\.", "norm."),
    (r"^predictor_proj\.", "proj."),
]
_ENCODER_TABLE = "pos_embed_proj.emb_h"
_PREDICTOR_TABLE = "predictor_2dpe_proj.emb_h"


def _built_for_loading(gradients, config, module_class=BrainJEPA):
    """A ``BrainJEPA`` (or ``module_class``: a ``BrainEncoder``) whose weights are about to be
    loaded, all of them (the loaders refuse a state with missing keys).

    It is built on the meta device and then given uninitialised CPU memory: no random
    initialisation, which the loaded weights would replace (seconds for the base model) and
    which would draw from torch's global generator. Only the gradients, a buffer the research
    checkpoints do not hold, are filled in.
    """
    gradients = torch.as_tensor(gradients, dtype=torch.float32)
    with torch.device("meta"):
        # float32 whatever torch's default dtype (the model computes in float32)
        model = module_class(gradients, **config).float()
    model.to_empty(device="cpu")
    for module in model.modules():
        if isinstance(module, GradientPositionalEmbedding):
            module.gradients.copy_(gradients)
    return model


#: Model settings a saved configuration must hold: the others may be absent and take
#: ``BrainJEPA``'s defaults (a pretraining run's state records its sizes but not mlp_ratio
#: or qkv_bias), as a wrong one shows in the weights' shapes or keys, or acts on training
#: only. The head count changes a loaded model's outputs and no weight's shape.
_CONFIG_REQUIRED = ("num_heads",)


def _check_config(config, path, module_class=BrainJEPA):
    """Refuse a saved model configuration that ``BrainJEPA`` (or ``module_class``) does not
    take, or that lacks ``num_heads``, naming ``path``: a missing one would take the default
    and load without an error (the weights have the same shapes for any head count), giving
    other embeddings."""
    if not isinstance(config, dict):
        raise ValueError(f"{path} is an inconsistent checkpoint: its model configuration is "
                         f"{type_with_article(config)}, not a dict")
    known = set(inspect.signature(module_class).parameters) - {"gradients"}
    unknown = sorted(str(key) for key in set(config) - known)
    if unknown:
        raise ValueError(
            f"{path} holds model settings that this version of brainjepa_sk ({__version__}) "
            f"does not know: {unknown} (it takes {sorted(known)}); the file was written by "
            "another version: load it with that version")
    # (a key renamed by another version is named as such above, not as missing)
    missing = [key for key in _CONFIG_REQUIRED if key not in config]
    if missing:
        raise ValueError(
            f"{path}: its model configuration lacks {missing}, which every file brainjepa_sk "
            "writes records (the file was written or edited by other code). The default is "
            "not assumed: it may not be what the model was trained with, and the weights have "
            "the same shapes for any head count. Add it to the file's configuration with the "
            "value the model was trained with")


def _strip_prefix(state, section):
    if not isinstance(state, dict) or not state:
        raise ValueError(f"checkpoint section {section!r} is not a non-empty state dict")
    return {_without_module_prefix(k): v for k, v in state.items()}


def _without_module_prefix(key):
    """``key`` without DDP's ``module.`` prefix, also repeated (a ``DataParallel`` around a
    DDP model saved its keys with two)."""
    while key.startswith("module."):
        key = key[len("module."):]
    return key


def _rename(state, renames):
    out = {}
    for key, value in state.items():
        for pattern, replacement in renames:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def _need(state, key, section):
    if key not in state:
        raise ValueError(f"checkpoint section {section!r} has no key {key!r}")
    return state[key]


def _count_blocks(state, prefix):
    indices = {int(m.group(1)) for k in state if (m := re.match(rf"^{prefix}\.(\d+)\.", k))}
    return max(indices) + 1 if indices else 0


def _check_time_table(table, n_regions, section, key, named="the gradients"):
    """Check a stored time-position table against the rebuilt one; return its patch count
    (``named``: how the messages name the gradients)."""
    n_rows, half = table.shape
    if n_rows % n_regions:
        raise ValueError(
            f"{named} have {n_regions} rows, but {section!r}/{key} holds {n_rows} token "
            f"positions, which is not a multiple of {n_regions}: the gradients do not belong to "
            "this checkpoint (wrong number of regions)"
        )
    def error(regions):
        patches = n_rows // regions
        rebuilt = sincos_time_embedding(patches, half).repeat(regions, 1)
        return (table.float() - rebuilt).abs().max().item()

    n_patches = n_rows // n_regions
    err = error(n_regions)
    if err > 1e-4:
        # which region count the table was built for, if any: the likely mistake
        trained = [r for r in range(1, n_rows + 1) if n_rows % r == 0 and error(r) <= 1e-4]
        hint = (f"it was trained on {trained[0]} regions x {n_rows // trained[0]} patches, but "
                f"{named} have {n_regions} rows: they do not belong to this checkpoint"
                if trained else "check the gradients' row count")
        raise ValueError(
            f"{section!r}/{key} does not match the sine-cosine time code for {n_regions} regions x "
            f"{n_patches} patches (max abs difference {err:.3g}); {hint}"
        )
    return n_patches


def load_research_checkpoint(path, gradients, num_heads=None, map_location="cpu", loss="l2"):
    """Load a checkpoint written by the Brain-JEPA research code.

    Parameters
    ----------
    path : str or path-like
        The ``.pth.tar`` file (for example ``jepa-ep300.pth.tar``).
    gradients : str, path-like or array-like of shape (n_regions, n_components)
        The region gradient matrix the checkpoint was trained with (``gradient_mapping_450.csv``
        for the published weights), as a file path or an array.
    num_heads : int, optional
        Attention heads. Head counts cannot be read from weight shapes; ``None`` takes the
        count of the ViT size of that width (tiny 192: 3, small 384: 6, base 768: 12,
        large 1024: 16, huge 1280: 16, giant 1408: 16), and for other widths assumes heads 64
        wide (``embed_dim // 64``), with a warning.
    map_location : str or torch.device, default="cpu"
        Passed to ``torch.load``.
    loss : {"l2", "smooth_l1"}, default="l2"
        Objective of the returned module (the research code trained with ``"smooth_l1"``).

    Returns
    -------
    BrainJEPA
        In eval mode, with encoder, predictor and target encoder loaded. Its ``predictor``
        decodes token indices with the checkpoint's patch count unless told otherwise.

    Raises
    ------
    TypeError
        When ``map_location`` is none of what ``torch.load`` takes, or ``path`` is
        not a str or path-like (None, a number, bytes).
    ValueError
        If a section or key is missing (a file of the target encoder alone, or a model the
        research code fine-tuned, is taken by :func:`resolve_weights`, not here), a shape does
        not fit, or the gradients do not match;
        when ``map_location`` names no device torch knows; when the file is a checkpoint of
        this package or a pretraining run's state (the message says what loads it).
    """
    named = named_gradients(gradients)
    gradients = load_gradients(gradients)
    checkpoint = load_file(path, map_location=map_location, what="research checkpoint",
                           safe_globals=_RESEARCH_GLOBALS)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} does not hold a dictionary of state dicts")
    kind = _payload_kind(checkpoint)
    if kind == "ours":
        raise ValueError(
            f"{path} is a brainjepa_sk checkpoint, not one of the research code's: load it "
            "with load_checkpoint (it carries its own gradients)"
        )
    if kind == "training_state":
        raise ValueError(_TRAINING_STATE_ADVICE.format(path=path))
    if kind == "research_fine_tuned":
        raise ValueError(
            f"{path} holds a model that the research code fine-tuned (an encoder and a head), "
            "not a pretraining checkpoint, of which this builds the whole model: its encoder "
            "is taken as weights by the estimators")
    missing = [s for s in _REQUIRED_SECTIONS if s not in checkpoint]
    if missing:
        # the estimators need the target encoder only (resolve_weights)
        alone = ("; its target encoder alone is taken as weights by the estimators"
                 if "target_encoder" in checkpoint else "")
        raise ValueError(
            f"{path} is not a whole research Brain-JEPA checkpoint: missing section(s) "
            f"{missing} (found {sorted(map(str, checkpoint))}), which a BrainJEPA "
            f"needs{alone}")
    try:
        return _research_model(checkpoint, gradients, num_heads, loss, named)
    except ValueError as error:  # name the file in every message about its contents
        raise ValueError(f"{path}: {error}") from None


#: Heads of the ViT sizes by width (tiny, small, base, large, huge, giant): the head count is
#: not in the weights, so a checkpoint of another width needs ``num_heads``.
_RESEARCH_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}


def _research_heads(embed_dim):
    """The head count of a research checkpoint of width ``embed_dim`` (``num_heads=None``)."""
    if embed_dim in _RESEARCH_HEADS:
        return _RESEARCH_HEADS[embed_dim]
    if embed_dim % 64:
        raise ValueError(
            f"embed_dim={embed_dim} is not a multiple of 64; pass num_heads explicitly"
        )
    warn_user(
        f"embed_dim={embed_dim} is not the width of a ViT size; assuming heads 64 wide "
        f"({embed_dim // 64}). The count is not stored in the checkpoint and a wrong one gives "
        "other outputs without an error: pass num_heads if the model was trained with others"
    )
    return embed_dim // 64


def _checked_sections(checkpoint, names):
    """The research ``checkpoint``'s sections ``names``, without DDP's prefix, checked to
    hold finite tensors only."""
    sections = {s: _strip_prefix(checkpoint[s], s) for s in names}
    for section, state in sections.items():
        for key, value in state.items():
            if not isinstance(value, torch.Tensor):
                raise ValueError(f"checkpoint section {section!r}: {key} is of type "
                                 f"{type(value).__name__}, not a tensor")
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise ValueError(
                    f"checkpoint section {section!r}: {key} holds NaN or infinite values "
                    "(saved from a diverged run, or damaged)")
    return sections


def _research_encoder_config(encoder, gradients, num_heads, named, section="target_encoder"):
    """The :class:`BrainEncoder` settings that a research encoder's state dict ``encoder``
    (the checkpoint's ``section``) describes, and its patch count (that of its time table)."""
    n_regions, n_components = gradients.shape
    patch_weight = _need(encoder, "patch_embed.proj.weight", section)
    if patch_weight.ndim != 4 or tuple(patch_weight.shape[1:3]) != (1, 1):
        raise ValueError(
            f"{section}/patch_embed.proj.weight should be (embed_dim, 1, 1, patch_size), "
            f"got {tuple(patch_weight.shape)}"
        )
    embed_dim, patch_size = patch_weight.shape[0], patch_weight.shape[3]
    grad_weight = _need(encoder, "pos_embed_proj.predictor_pos_embed_proj.weight", section)
    if grad_weight.shape[1] != n_components:
        # a matrix stored (n_components, n_regions) has the expected count as its rows
        transposed = (f": the matrix of shape {tuple(gradients.shape)} looks transposed; pass "
                      "gradients.T, (n_regions, n_components)"
                      if n_regions == grad_weight.shape[1] else "")
        raise ValueError(
            f"{named} have {n_components} components (columns) but the checkpoint's "
            f"gradient map expects {grad_weight.shape[1]}{transposed}"
        )
    n_patches = _check_time_table(
        _need(encoder, _ENCODER_TABLE, section), n_regions, section, _ENCODER_TABLE, named)
    fc1 = _need(encoder, "blocks.0.mlp.fc1.weight", section)
    if num_heads is None:
        num_heads = _research_heads(int(embed_dim))
    config = dict(
        patch_size=int(patch_size),
        embed_dim=int(embed_dim),
        depth=_count_blocks(encoder, "blocks"),
        num_heads=num_heads,  # the caller's, checked by the module (int() had cut 2.5 to 2)
        mlp_ratio=_mlp_ratio(int(fc1.shape[0]), int(embed_dim)),
        qkv_bias="blocks.0.attn.qkv.bias" in encoder,
    )
    return config, n_patches


def _converted_encoder(state, section):
    """A research encoder's state dict as a :class:`BrainEncoder`'s."""
    state = _rename(state, _ENCODER_RENAMES)
    state.pop(_ENCODER_TABLE, None)
    weight = _need(state, "patch_embed.proj.weight", section)
    state["patch_embed.proj.weight"] = weight.reshape(weight.shape[0], -1)
    return state


def _research_model(checkpoint, gradients, num_heads, loss, named="the gradients"):
    """The :class:`BrainJEPA` a research checkpoint's state dicts describe (``named``: how the
    messages name the gradients)."""
    sections = _checked_sections(checkpoint, _REQUIRED_SECTIONS)
    encoder = sections["target_encoder"]
    predictor = sections["predictor"]
    encoder_config, n_patches = _research_encoder_config(encoder, gradients, num_heads, named)
    _check_time_table(
        _need(predictor, _PREDICTOR_TABLE, "predictor"), len(gradients), "predictor",
        _PREDICTOR_TABLE, named)
    predictor_weight = _need(predictor, "predictor_embed.weight", "predictor")
    config = dict(
        **encoder_config,
        predictor_embed_dim=int(predictor_weight.shape[0]),
        predictor_depth=_count_blocks(predictor, "predictor_blocks"),
        loss=loss,
        n_patches=n_patches,
    )
    model = _built_for_loading(gradients, config)

    predictor_state = _rename(predictor, _PREDICTOR_RENAMES)
    predictor_state.pop(_PREDICTOR_TABLE, None)
    for name, module, state in [
        ("encoder", model.encoder, _converted_encoder(sections["encoder"], "encoder")),
        ("target_encoder", model.target_encoder, _converted_encoder(encoder, "target_encoder")),
        ("predictor", model.predictor, predictor_state),
    ]:
        _load_into(module, state, name)
    return model.eval()


#: Key prefixes of the head of the research code's fine-tuned model (a LayerNorm over the
#: pooled tokens, with global pooling, and a linear layer), saved beside its ``encoder.``
#: keys, which are those of a pretrained ``target_encoder``.
_RESEARCH_HEAD_PREFIXES = ("head.", "fc_norm.")
#: The classes of the objects, besides tensors and plain values, that the research code's
#: files hold: the fine-tuning saves its arguments (``"args"``) as a Namespace, which holds
#: attributes only (building it runs no code).
_RESEARCH_GLOBALS = (argparse.Namespace,)


def _research_fine_tuned(payload):
    """The parts of the research code's fine-tuned model in ``payload`` (its ``"model"`` entry,
    as the research fine-tuning saves it, or the file itself, a state dict): its encoder's
    state (keys without ``encoder.``), its head's keys and any others, sorted; None when it
    holds no research encoder under ``encoder.``."""
    state = payload.get("model", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        return None
    keys = {str(key): _without_module_prefix(str(key)) for key in state}
    if f"encoder.{_ENCODER_TABLE}" not in keys.values():
        return None
    encoder = {name.removeprefix("encoder."): state[key] for key, name in keys.items()
               if name.startswith("encoder.")}
    head = sorted(name for name in keys.values() if name.startswith(_RESEARCH_HEAD_PREFIXES))
    other = sorted(name for name in keys.values()
                   if not name.startswith(("encoder.", *_RESEARCH_HEAD_PREFIXES)))
    return encoder, head, other


def _research_target_encoder(path, gradients, num_heads):
    """The :class:`BrainEncoder` of the research checkpoint ``path``, and its patch count: its
    ``target_encoder`` section, whatever other sections it holds (a file stripped to the
    target encoder), or the encoder of a model the research code fine-tuned, whose head is
    left out with a warning. The estimators embed with it alone."""
    named = named_gradients(gradients)
    gradients = load_gradients(gradients)
    checkpoint = load_file(path, what="research checkpoint", safe_globals=_RESEARCH_GLOBALS)
    fine_tuned = None if "target_encoder" in checkpoint else _research_fine_tuned(checkpoint)
    section = "target_encoder" if fine_tuned is None else "encoder"
    try:
        if fine_tuned is not None and fine_tuned[2]:
            _, head, other = fine_tuned
            raise ValueError(
                f"the research fine-tuned model holds, besides its encoder and its head "
                f"({head}), {other[:8]}{'...' if len(other) > 8 else ''}, which are neither: "
                "its encoder is not loaded from keys of unknown use. Save the 'encoder.' "
                "keys alone, without that prefix, as a file's 'target_encoder'")
        state = checkpoint["target_encoder"] if fine_tuned is None else fine_tuned[0]
        encoder_state = _checked_sections({section: state}, [section])[section]
        config, n_patches = _research_encoder_config(encoder_state, gradients, num_heads, named,
                                                     section)
        encoder = _built_for_loading(gradients, config, BrainEncoder)
        _load_into(encoder, _converted_encoder(encoder_state, section), section)
    except ValueError as error:  # name the file in every message about its contents
        raise ValueError(f"{path}: {error}") from None
    if fine_tuned is not None and fine_tuned[1]:  # (no head: fine-tuned with num_classes=0)
        warn_user(
            f"{path} holds a model that the research code fine-tuned: its encoder is loaded, "
            f"its head ({fine_tuned[1]}) is not (the estimators train heads of their own)")
    # as a BrainJEPA's target encoder
    return encoder.eval().requires_grad_(False), n_patches


def _load_into(module, state, section):
    """Load ``state`` into ``module``; buffers we own (gradients) are kept, shapes checked."""
    own = module.state_dict()
    expected = {k for k in own if not k.endswith("pos_embed.gradients")}
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    if missing or unexpected:
        raise ValueError(
            f"checkpoint section {section!r} does not fit the inferred model: "
            f"missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
        )
    for key in expected:
        if tuple(state[key].shape) != tuple(own[key].shape):
            raise ValueError(
                f"checkpoint section {section!r}: {key} has shape {tuple(state[key].shape)}, "
                f"the inferred model needs {tuple(own[key].shape)}"
            )
    module.load_state_dict({**own, **{k: state[k] for k in expected}})


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` returns.

    Attributes
    ----------
    model : BrainJEPA or BrainEncoder
        The module, in eval mode: a ``BrainEncoder`` for a file of an encoder alone (see
        :func:`save_checkpoint`).
    preprocessing : dict
        The preprocessing saved with the model (arrays as NumPy arrays).
    metadata : dict
        Free-form information saved with the model (training history, versions, ...).
    """

    model: BrainJEPA | BrainEncoder
    preprocessing: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)


#: The plain Python values a checkpoint stores as they are (NumPy scalars become these).
_PLAIN_VALUES = (bool, int, float, str)
#: The plain value of an instance of a subclass of each (bool has none; str() of a
#: (str, Enum) member is its name, 'E.A').
_PLAIN_VALUE_OF = {int: int.__int__, float: float.__float__, str: str.__str__}


def storable_values(obj, where="metadata"):
    """``obj`` as values that ``torch.load(weights_only=True)`` loads back.

    NumPy arrays of numbers become tensors, NumPy scalars plain values, text arrays lists of
    strings, paths strings, subclasses of ``int``, ``float`` and ``str`` (members
    of an ``IntEnum`` or a ``(str, Enum)``) their plain values; dicts (whose keys must be
    strings, and are stored as plain strings), lists and tuples are converted item by item (a
    tuple comes back as a list).

    Parameters
    ----------
    obj : object
        Plain values, NumPy values, tensors, paths, or dicts and lists of them.
    where : str, default="metadata"
        What ``obj`` is, for the error message.

    Returns
    -------
    object
        The converted values.

    Raises
    ------
    TypeError
        Before anything is written, for a value that a checkpoint could not load back (an
        object, a date, a tensor NumPy cannot hold), or a dict key that is not a string (it
        would come back as another key: ``'1'`` for ``1``).
    """
    if isinstance(obj, torch.Tensor):
        # stored as the NumPy array load_checkpoint gives back: a tensor that requires grad (a
        # loss, a parameter), or one NumPy cannot hold (bfloat16, sparse), would be written and
        # then fail on loading
        try:
            obj = obj.detach().cpu().resolve_conj().resolve_neg().numpy()
        except (TypeError, RuntimeError, NotImplementedError):
            raise TypeError(
                f"{where} holds a {obj.dtype} tensor ({obj.layout}), which a checkpoint cannot "
                "store: convert it to a NumPy array") from None
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "USO":  # text or objects (e.g. region names): a list
            return storable_values(obj.tolist(), where)
        # C order, native byte order, and the shape kept (0-d included)
        array = np.array(obj, dtype=obj.dtype.newbyteorder("="), order="C")
        try:
            return torch.from_numpy(array)
        except TypeError:  # dates, durations, records, long doubles: no tensor dtype
            raise TypeError(
                f"{where} holds a NumPy array of {obj.dtype}, which a checkpoint cannot store: "
                "use numbers, strings, lists, dicts and NumPy arrays of numbers") from None
    if isinstance(obj, np.generic) and obj.dtype.kind not in "mM":
        # dates and durations (an int in some units: the unit would be lost) and long doubles
        # (no plain value) are refused below, as are the values refused from plain Python
        value = obj.item()
        if isinstance(value, _PLAIN_VALUES):
            return value
    if isinstance(obj, dict):
        for key in obj:
            if not isinstance(key, str):
                # str() would store it and give back another key, silently ('1' for 1)
                raise TypeError(
                    f"{where} has the key {key!r} ({type_with_article(key)}), which a "
                    f"checkpoint would give back as the string {str(key)!r}: it keeps string "
                    "keys only; use strings as keys")
        # a str subclass (a (str, Enum) member) as its string: str() gave its name, 'E.A'
        return {str.__str__(k): storable_values(v, where) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [storable_values(v, where) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or type(obj) in _PLAIN_VALUES:
        return obj
    for plain, value_of in _PLAIN_VALUE_OF.items():
        if isinstance(obj, plain):
            # a subclass (an Enum member of str or int) as its plain value: torch pickled the
            # subclass, and load_checkpoint refused the whole file (weights_only)
            return value_of(obj)
    raise TypeError(
        f"{where} holds {type_with_article(obj)}, which a checkpoint cannot store: use numbers, "
        "strings, lists, dicts and NumPy arrays")


def _from_safe(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().numpy()  # files written before tensors were detached
    if isinstance(obj, dict):
        return {k: _from_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_safe(v) for v in obj]
    return obj


def _checksum(payload):
    """The file's checksum: of everything in it (format 3), or of the gradients and
    weights only (format 2)."""
    if payload.get("format_version", 0) >= 3:
        return tensor_checksum({key: value for key, value in payload.items()
                                if key != "checksum"}, values=True)
    return tensor_checksum({"gradients": payload["gradients"],
                            "state_dict": payload["state_dict"]})


def save_checkpoint(path, model, preprocessing=None, metadata=None):
    """Save a model with its configuration, gradients and preprocessing.

    The file is written to a temporary name first and renamed, so an interrupted save never
    leaves a truncated checkpoint behind.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    model : BrainJEPA or BrainEncoder
        The module to save: a whole model, or an encoder alone (a fine-tuned encoder, such as
        a fine-tuning estimator's ``module_.encoder``), which :func:`load_checkpoint` gives
        back as a ``BrainEncoder``. A file of an encoder alone is of format version 4, which
        versions of brainjepa_sk reading up to 3 refuse (asking for an upgrade).
    preprocessing : dict, optional
        Preprocessing to apply identically at embedding time: a fitted
        :class:`~brainjepa_sk.preprocessing.Preprocessor`'s ``to_dict()``, or some of its keys
        (``"t_r"``, ``"normalization"``, ...); other keys are refused, but for those of the
        model's own ``preprocessing`` (loaded from a file of another version), kept as they
        are, whether that is given back or left out. Torch tensors are stored as their values and
        come back as NumPy arrays; bfloat16 and sparse tensors are refused. By default the model's
        own ``preprocessing`` (set by :func:`load_checkpoint`, the pretrainer and the
        fine-tuners), so that a loaded model saved again keeps it.
    metadata : dict, optional
        Anything else of the same kinds (training history, ...), under string keys. The model's
        ``region_names``, when it has them, are added as ``"region_names"`` unless given; an
        encoder's ``trained_n_patches`` (see :class:`~brainjepa_sk.nn.BrainEncoder`), as
        ``"trained_n_patches"``, and its ``frozen_by_fine_tuner``, when True, as
        ``"frozen_by_fine_tuner"``.

    Raises
    ------
    TypeError
        When ``path`` is not a str or path-like, ``model`` is not a
        :class:`~brainjepa_sk.nn.BrainJEPA` or :class:`~brainjepa_sk.nn.BrainEncoder`,
        ``preprocessing`` or
        ``metadata`` is not a dict, or they hold values a checkpoint cannot store or dict keys
        that are not strings (nothing is written then).
    ValueError
        When ``path`` holds the saved state of a pretraining run (``checkpoint_dir``'s
        ``run-*.pt``): the run could no longer be resumed; when the model's weights hold
        NaN or infinite values; or when ``preprocessing`` has a key that is no
        :meth:`~brainjepa_sk.preprocessing.Preprocessor.to_dict` key, nor one of the model's
        own ``preprocessing`` (the estimators would ignore it); or when an encoder's
        ``trained_n_patches`` (or the metadata's) is not a positive whole number, or its
        ``frozen_by_fine_tuner`` (or the metadata's) not a bool. Nothing is written then.
    OSError
        Naming ``path``, when it cannot be written.
    """
    expand_home(path, "path", "a file's path")  # None or a number, refused naming it
    if not isinstance(model, (BrainJEPA, BrainEncoder)):
        raise TypeError(
            f"model must be a BrainJEPA or BrainEncoder module, got {type(model).__name__}")
    encoder_only = isinstance(model, BrainEncoder)
    bad = first_non_finite(model.state_dict().items())
    if bad is not None:  # load_checkpoint refuses it
        raise ValueError(f"model's {bad} holds NaN or infinite values (a diverged model?): a "
                         "checkpoint of it could not be used; nothing was written")
    for name, value in [("preprocessing", preprocessing), ("metadata", metadata)]:
        if value is not None and not isinstance(value, dict):  # load_checkpoint refuses them
            raise TypeError(f"{name} must be a dict, got {type(value).__name__}")
    if _holds_training_state(path):
        raise ValueError(
            f"{expand_home(path)} holds the saved state of a pretraining run: saving a model "
            "there would replace it (the run could no longer be resumed); give another path")
    # a loaded model saved again keeps what the estimators need to feed it; a file of another
    # version may hold keys this one does not know, which the model's own preprocessing
    # keeps, given or not (refusing them would leave such a model unsavable)
    own = getattr(model, "preprocessing", None)
    if preprocessing is None:
        preprocessing = own
    else:
        _check_preprocessing_keys(preprocessing, own if isinstance(own, dict) else {})
    metadata = dict(metadata or {})  # a copy: what the model adds leaves the caller's alone
    region_names = getattr(model, "region_names", None)
    if region_names is not None and "region_names" not in metadata:
        metadata["region_names"] = list(region_names)
    if encoder_only:
        # refused now, as load_checkpoint would refuse the file
        trained_n_patches = _check_trained_n_patches(
            metadata.get(TRAINED_N_PATCHES, getattr(model, TRAINED_N_PATCHES, None)),
            "model", nothing_written=True)
        if trained_n_patches is not None:
            metadata[TRAINED_N_PATCHES] = trained_n_patches
        if _check_frozen_by_fine_tuner(
                metadata.get(FROZEN_BY_FINE_TUNER, getattr(model, FROZEN_BY_FINE_TUNER, False)),
                "model", nothing_written=True):
            metadata[FROZEN_BY_FINE_TUNER] = True
    gradients = model.pos_embed.gradients if encoder_only else model.gradients
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION if encoder_only else _MODEL_FORMAT_VERSION,
        **({"contents": ENCODER_CONTENTS} if encoder_only else {}),
        "config": _encoder_config(model) if encoder_only else dict(model.config),
        "gradients": gradients.detach().cpu().clone(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "preprocessing": storable_values(preprocessing or {}, "preprocessing"),
        "metadata": storable_values(metadata, "metadata"),
    }
    payload["checksum"] = _checksum(payload)
    atomic_save(payload, path)


#: The ``"contents"`` of a file of an encoder alone (a file without it holds a whole model).
ENCODER_CONTENTS = "encoder"
#: The metadata key of a file of an encoder alone that records the longest window, in time
#: patches, its positions were trained on (pretraining and fine-tuning): its preprocessing
#: holds the fine-tuning window only. Files written before it was recorded lack it.
TRAINED_N_PATCHES = "trained_n_patches"


def _check_trained_n_patches(value, path, nothing_written=False):
    """A recorded ``trained_n_patches``: a positive whole number, or None (not recorded).
    ``nothing_written``: the check of a save (``path`` names the model), else of a file."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        _refuse_recorded(TRAINED_N_PATCHES, value, "a positive whole number of time patches",
                         path, nothing_written)
    return int(value)


def _refuse_recorded(key, value, expected, path, nothing_written):
    """Raise the ``ValueError`` of a metadata ``key`` recorded as ``value``, not ``expected``
    (words): of the model saved to ``path`` where ``nothing_written``, else of its file."""
    what, after = ((f"{path}'s", "; nothing was written") if nothing_written
                   else (f"{path} is an inconsistent checkpoint: its metadata's", ""))
    raise ValueError(f"{what} {key} is {value!r}, not {expected}{after}")


#: The metadata key of a file of an encoder alone that records that its fine-tuner kept its
#: weights frozen (a linear probe): its preprocessing is the probe's, its weights those the
#: probe was given. Files of encoders fine-tuned, and those written before it was recorded,
#: lack it.
FROZEN_BY_FINE_TUNER = "frozen_by_fine_tuner"


def _check_frozen_by_fine_tuner(value, path, nothing_written=False):
    """A recorded ``frozen_by_fine_tuner``: a bool (False where not recorded), as
    :func:`_check_trained_n_patches` checks its value."""
    if value is None:
        return False
    if not isinstance(value, (bool, np.bool_)):
        _refuse_recorded(FROZEN_BY_FINE_TUNER, value, "True or False", path, nothing_written)
    return bool(value)


def _encoder_config(encoder):
    """The ``BrainEncoder`` settings that rebuild ``encoder`` (it keeps no record of them:
    read from its layers, as for research checkpoints)."""
    blocks = encoder.blocks
    first = blocks[0] if len(blocks) else None
    return dict(
        patch_size=encoder.patch_size,
        embed_dim=encoder.embed_dim,
        depth=len(blocks),
        num_heads=encoder.num_heads,
        mlp_ratio=(_mlp_ratio(first.mlp.fc1.out_features, encoder.embed_dim) if first
                   else 4.0),
        qkv_bias=first.attn.qkv.bias is not None if first else True,
        drop_path_rate=float(blocks[-1].drop_path.p) if first else 0.0,
    )


def _mlp_ratio(hidden, width):
    """The ``mlp_ratio`` whose blocks' MLP of ``width``-wide tokens has ``hidden`` units: they
    take ``int(width * mlp_ratio)``, and ``hidden / width`` can give one fewer (28 * (61 / 28)
    is 60.99...): then the next float up, which does not."""
    ratio = hidden / width
    return ratio if int(width * ratio) == hidden else math.nextafter(ratio, math.inf)


def _check_preprocessing_keys(preprocessing, carried=()):
    """Refuse ``preprocessing`` keys that are no :meth:`Preprocessor.to_dict` key: the
    estimators read those keys only, so another was stored and then ignored at loading.
    Keys in ``carried`` (the model's own preprocessing) are taken too."""
    known = (*_PARAM_NAMES, *_FITTED_NAMES)
    unknown = [key for key in preprocessing if key not in known and key not in carried]
    if unknown:
        raise ValueError(
            f"preprocessing has {unknown}, which no Preprocessor setting or statistic is: the "
            "estimators apply a saved preprocessing by its keys and would ignore these. Its "
            f"keys are {list(known)} (those of Preprocessor.to_dict()); save other "
            "information as metadata. Nothing was written")


_TRAINING_STATE_ADVICE = (
    "{path} is the saved state of a pretraining run (BrainJEPAPretrainer's checkpoint_dir), "
    "not a model: write its model with brainjepa_sk.checkpoint.export_training_state("
    "state_path, 'model.pt') and pass that file")


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or path-like
        The file.
    map_location : str or torch.device, default="cpu"
        Passed to ``torch.load``.

    Returns
    -------
    LoadedCheckpoint
        ``model`` (eval mode: a ``BrainJEPA``, or a ``BrainEncoder`` for a file of an encoder
        alone), ``preprocessing`` and ``metadata``.

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    TypeError
        When ``map_location`` is none of what ``torch.load`` takes, or ``path`` is
        not a str or path-like (None, a number, bytes).
    ValueError
        When ``map_location`` names no device torch knows. Naming the file, when it is a
        folder, empty, damaged (its checksum does not match), not a checkpoint of this
        package (a research checkpoint, a model the research code fine-tuned, which the
        estimators take as ``weights``, a pretraining run's state, a module's ``state_dict``
        such as a fine-tuner's ``save_params``), written by a newer
        version, incomplete, when its model settings are not those this version's
        :class:`~brainjepa_sk.nn.BrainJEPA` takes (a key renamed or added by another
        version), when its model configuration lacks ``num_heads``, when its weights hold
        NaN or infinite values, or when a file of an encoder alone records a
        ``"trained_n_patches"`` that is not a positive whole number, or a
        ``"frozen_by_fine_tuner"`` that is not a bool.
    """
    # the arguments the research fine-tuning saves (an argparse.Namespace) are read, safely,
    # so that its file is named for what it is rather than as one holding Python objects
    payload = load_file(path, map_location=map_location, what="brainjepa_sk checkpoint",
                        safe_globals=_RESEARCH_GLOBALS)
    if isinstance(payload, dict) and "loop" in payload and "key" in payload:
        raise ValueError(_TRAINING_STATE_ADVICE.format(path=path))
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        if _payload_kind(payload) == "research_fine_tuned":
            raise ValueError(
                f"{path} is a model the research code fine-tuned, not a brainjepa_sk "
                "checkpoint: pass it to the estimators as weights=<its path>, with "
                "gradients=<its gradient matrix>, which load its encoder (without its head)")
        # a module's state_dict (such as a fine-tuner's save_params) is named as such
        raise ValueError(
            f"{path} is not a brainjepa_sk checkpoint"
            + (_state_dict_hint(payload)
               or "; for the research code's files use load_research_checkpoint")
        )
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by a newer brainjepa_sk (format {payload['format_version']}, "
            f"this version {__version__} reads up to {FORMAT_VERSION}): upgrade brainjepa_sk "
            "to load it"
        )
    missing = [key for key in ("config", "gradients", "state_dict") if key not in payload]
    if missing:
        raise ValueError(f"{path} is an incomplete checkpoint: it has no {missing}")
    stored = payload.get("checksum")  # files of format version 1 have none
    if stored is not None and stored != _checksum(payload):
        what = "contents" if payload.get("format_version", 0) >= 3 else "weights"
        raise ValueError(
            f"{path} is damaged: its {what} do not match the checksum stored with them"
        )
    preprocessing = _from_safe(payload.get("preprocessing") or {})
    metadata = _from_safe(payload.get("metadata") or {})
    for name, value in [("preprocessing", preprocessing), ("metadata", metadata)]:
        if not isinstance(value, dict):
            raise ValueError(f"{path} is an inconsistent checkpoint: its {name} is "
                             f"{type_with_article(value)}, not a dict")
    contents = payload.get("contents", "model")
    if contents not in ("model", ENCODER_CONTENTS):
        raise ValueError(f"{path} is an inconsistent checkpoint: it holds {contents!r}, "
                         f"neither a whole model nor an encoder")
    module_class = BrainEncoder if contents == ENCODER_CONTENTS else BrainJEPA
    _check_config(payload["config"], path, module_class)
    if module_class is BrainEncoder:
        trained_n_patches = _check_trained_n_patches(metadata.get(TRAINED_N_PATCHES), path)
        frozen = _check_frozen_by_fine_tuner(metadata.get(FROZEN_BY_FINE_TUNER), path)
    try:
        model = _built_for_loading(payload["gradients"], payload["config"], module_class)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path} is an incomplete or inconsistent checkpoint: {error}") from error
    # (files of format version 1 have no checksum, and a diverged model saves as any other):
    # refused here, rather than as NaN embeddings or a NaN fine-tuning loss blamed on lr
    bad = first_non_finite(model.state_dict().items())
    if bad is not None:
        raise ValueError(
            f"{path}: its {bad} holds NaN or infinite values (saved from a diverged model, or "
            "damaged); use a checkpoint saved before the model diverged (of a run pretrained "
            "with checkpoint_dir, export_training_state writes the model of its saved state, "
            "which refuses it too if that diverged), or pretrain again with a lower lr")
    loaded = LoadedCheckpoint(
        model=model.eval(),
        preprocessing=preprocessing,
        metadata=metadata,
    )
    # the module carries them too, so that it can be passed as weights on its own
    model.preprocessing = copy.deepcopy(loaded.preprocessing) or None
    model.region_names = loaded.metadata.get("region_names")
    if module_class is BrainEncoder:
        model.trained_n_patches = trained_n_patches
        model.frozen_by_fine_tuner = frozen
    return loaded


def _holds_training_state(path):
    """Whether ``path`` is a pretraining run's saved state (a damaged or unreadable file, or
    none, is not: it may be replaced)."""
    if not expand_home(path).is_file():
        return False
    try:
        return _checkpoint_kind(path) == "training_state"
    except (ValueError, OSError):
        return False


def _checkpoint_kind(path):
    """``"ours"``, ``"training_state"`` (a pretraining run's state), ``"research"`` (the
    research code's sections), ``"research_fine_tuned"`` (a model the research code
    fine-tuned) or ``"other"``; the file is loaded safely, on the meta device."""
    payload = load_file(path, map_location="meta", what="checkpoint",
                        safe_globals=_RESEARCH_GLOBALS)  # damaged: named error
    return _payload_kind(payload)


def _payload_kind(payload):
    """:func:`_checkpoint_kind` of a file's loaded contents, ``payload``."""
    if not isinstance(payload, dict):
        return "other"
    if payload.get("format") == FORMAT_NAME:
        return "ours"
    if "loop" in payload and "key" in payload:
        return "training_state"
    if any(section in payload for section in _REQUIRED_SECTIONS):
        return "research"
    if _research_fine_tuned(payload) is not None:
        return "research_fine_tuned"
    return "other"


def _state_dict_hint(payload):
    """What a file that is no checkpoint holds, when it is a module's ``state_dict``: a
    fine-tuner's parameters (skorch's ``save_params``) or a bare model's, which carry none
    of the model's settings; else ``""``."""
    if not (isinstance(payload, dict) and payload
            and all(isinstance(key, str) and isinstance(value, torch.Tensor)
                    for key, value in payload.items())):
        return ""
    if any(key.startswith("encoder.") for key in payload) and any(
            key.startswith("head.") for key in payload):
        return (": it holds a fine-tuner's parameters (its save_params, or skorch's "
                "Checkpoint), which load_params reads into a fine-tuner; to use its encoder "
                "as weights, save it with the fitted fine-tuner's save(path)")
    return (": it holds a bare state_dict (tensors by name), without the model's settings; "
            "save a model with save_checkpoint, or a pretrainer with its save(path)")


@dataclass
class ResolvedWeights:
    """What :func:`resolve_weights` returns: a frozen-or-trainable encoder and its input format.

    Attributes
    ----------
    encoder : BrainEncoder
        The (target) encoder, on the CPU. Never the caller's own module: a module passed as
        weights is copied.
    preprocessing : dict or None
        The preprocessing saved with our checkpoints (``Preprocessor.to_dict()``), else None.
    model_t_r : float or None
        TR (seconds) the model expects, when known.
    n_frames : int or None
        Window length (frames) of the preprocessing the weights carry, when known: the
        pretraining windows, or a fine-tuned encoder's fine-tuning windows
        (``n_frames="auto"`` takes it).
    region_names : list of str or None
        Names of the regions the model was pretrained on, in order, when our checkpoint
        recorded them (pretraining on DataFrames or files with a header).
    source : str or None
        The file the weights came from (our checkpoints), for error messages.
    carried : tuple of str
        The arguments of :func:`resolve_weights` among ``"gradients"`` and ``"num_heads"``
        that the weights carry their own of, so that the values given are ignored (both for
        our checkpoints and modules, ``"gradients"`` for ``"ukbiobank"``).
    fine_tuned : bool
        Whether the weights are a fine-tuning estimator's encoder (its ``module_.encoder``,
        or a file its ``save`` wrote): their preprocessing (``n_frames``, ``model_t_r``) is
        then the fine-tuner's, not the pretraining's.
    frozen_by_fine_tuner : bool
        Whether, fine-tuned, the fine-tuner kept the weights frozen (a linear probe,
        ``freeze_encoder=True``): only their preprocessing is the probe's.
    trained_frames : int or None
        The longest window (frames) whose time positions the encoder was trained on, in
        pretraining and fine-tuning, when known. Left None, that of pretrained weights is
        ``n_frames``; that of fine-tuned ones stays unknown (encoders fine-tuned before it
        was recorded, or from weights that did not record it, such as a bare encoder: their
        pretraining windows may have been longer than ``n_frames``; a linear probe's
        ``n_frames`` is the probe's, whose windows its frozen positions did not train on).
    """

    encoder: BrainEncoder
    preprocessing: dict | None = None
    model_t_r: float | None = None
    n_frames: int | None = None
    region_names: list | None = None
    source: str | None = None
    carried: tuple = ()
    fine_tuned: bool = False
    trained_frames: int | None = None
    frozen_by_fine_tuner: bool = False

    def __post_init__(self):
        if self.trained_frames is None and not self.fine_tuned:
            # pretrained weights carry the window they were trained on
            self.trained_frames = self.n_frames


def _trained_frames(config):
    return None if config["n_patches"] is None else config["n_patches"] * config["patch_size"]


def _carried_frames(encoder):
    """The window length (frames) in the preprocessing that ``encoder`` carries (that of a
    fine-tuning estimator's ``module_.encoder``), else None."""
    saved = getattr(encoder, "preprocessing", None)
    return saved.get("n_frames") if isinstance(saved, dict) else None


def _encoder_trained_frames(encoder):
    """The longest window (frames) whose time positions ``encoder`` was trained on, as a
    fine-tuner recorded it (``trained_n_patches``), else None."""
    n_patches = getattr(encoder, "trained_n_patches", None)
    return None if n_patches is None else int(n_patches) * encoder.patch_size


def _resolved(module, encoder, n_frames):
    """``encoder`` with the preprocessing and region names that ``module`` carries (a
    pretrainer's ``model_``, a loaded checkpoint's model or a fine-tuner's
    ``module_.encoder``; older pickles, research models and bare encoders carry none)."""
    saved = copy.deepcopy(getattr(module, "preprocessing", None)) or None
    # an encoder alone carries a preprocessing only as a fine-tuner's encoder
    fine_tuned = isinstance(module, BrainEncoder) and saved is not None
    return ResolvedWeights(encoder, preprocessing=saved,
                           model_t_r=saved.get("target_t_r") if saved else None,
                           n_frames=n_frames, region_names=getattr(module, "region_names", None),
                           fine_tuned=fine_tuned,
                           frozen_by_fine_tuner=fine_tuned and bool(
                               getattr(module, "frozen_by_fine_tuner", False)),
                           trained_frames=(_encoder_trained_frames(module)
                                           if isinstance(module, BrainEncoder) else None))


def resolve_weights(weights="ukbiobank", *, gradients=None, num_heads=None, data_dir=None):
    """Turn any accepted ``weights`` into an encoder plus what its input must look like.

    The one place that reads weights for the estimators (the embedder and the fine-tuning
    estimators).

    Parameters
    ----------
    weights : "ukbiobank", str, path-like or torch.nn.Module, default="ukbiobank"
        ``"ukbiobank"``: the research checkpoint pretrained on UK Biobank with its gradient
        file, fetched once into ``data_dir`` (TR 2.205 s). A path: a checkpoint saved by this
        package (it carries its gradients and preprocessing; a whole model, or an encoder
        saved alone, e.g. by a fine-tuner's ``save``) or a research checkpoint (then
        ``gradients`` is required; its ``target_encoder`` section is the one read, so a file
        stripped to that section loads too, as does the encoder of a model the research code
        fine-tuned, whose head is left out with a warning). A module: a ``BrainJEPA`` (its
        target encoder, with the preprocessing and region names it carries: see its
        ``preprocessing`` attribute) or a
        ``BrainEncoder`` (with those it carries: a fine-tuning estimator's
        ``module_.encoder`` carries the fine-tuner's, window length included), copied in
        float32 (a bf16 or float64 module too).
    gradients : str, path-like or array-like, optional
        Gradient matrix of a research checkpoint given by path. A DataFrame indexed by region
        names gives the returned ``region_names``.
    num_heads : int, optional
        Attention heads of a research checkpoint (default: those of the ViT size of its
        width, see :func:`load_research_checkpoint`).
    data_dir : str or path-like, optional
        Cache folder for ``"ukbiobank"`` (the folder above its ``brainjepa_ukbiobank/``
        subfolder).

    Returns
    -------
    ResolvedWeights
        The encoder (on the CPU, in float32, a copy when a module was given), with the
        preprocessing, TR, window length and region names the weights carry, whether they
        were fine-tuned, and the longest window their positions were trained on.

    Raises
    ------
    TypeError
        When ``weights`` is none of the accepted kinds (e.g. a module other than a
        ``BrainJEPA`` or ``BrainEncoder``).
    FileNotFoundError
        When the path names no file.
    ValueError
        When the path is a folder, a file that is neither kind of checkpoint (or a pretraining
        run's state), or a research checkpoint given without ``gradients``, when the file
        cannot be loaded, a research checkpoint without its ``target_encoder`` section, or
        when a module's weights hold NaN or infinite values; with
        ``"ukbiobank"``, when the cached checkpoint does not read or is no research
        checkpoint (the hash recorded for it is then removed, where the cache may be
        written).
    OSError
        With ``"ukbiobank"``, when the files cannot be fetched or do not match their hashes.
    """
    def warn_ignored(what, names=("gradients", "num_heads")):
        given = [name for name, value in (("gradients", gradients), ("num_heads", num_heads))
                 if value is not None and name in names]
        if given:
            warn_user(f"{' and '.join(given)} {'is' if len(given) == 1 else 'are'} ignored: "
                      f"{what} carries its own (they apply to research checkpoints given "
                      "by path)")

    if isinstance(weights, torch.nn.Module):
        warn_ignored("a module")
        if isinstance(weights, BrainJEPA):
            encoder, frames = weights.target_encoder, _trained_frames(weights.config)
        elif isinstance(weights, BrainEncoder):
            # a fine-tuned encoder says its window in the preprocessing it carries
            encoder, frames = weights, _carried_frames(weights)
        else:
            raise TypeError(
                f"weights must be a BrainJEPA or BrainEncoder module, got {type(weights).__name__}"
            )
        # files are checked when they are loaded; a module (a diverged model's) here, rather
        # than as NaN embeddings or a NaN fine-tuning loss later
        bad = first_non_finite(encoder.named_parameters())
        if bad is not None:
            raise ValueError(f"weights: the module's {bad} holds NaN or infinite values (a "
                             "diverged model?); pass a module with finite weights")
        # a private copy: the caller's module is never frozen, moved or changed; in float32
        # whatever the module's dtype, as the estimators' ``precision`` sets the compute
        resolved = _resolved(weights, copy.deepcopy(encoder).cpu().float(), frames)
        resolved.carried = ("gradients", "num_heads")
        return resolved
    carried = ()
    model_t_r = None
    if isinstance(weights, str) and weights == "ukbiobank":
        from .datasets import fetch_ukbiobank_weights

        warn_ignored('weights="ukbiobank"', names=("gradients",))
        paths = fetch_ukbiobank_weights(data_dir=data_dir)
        weights, gradients, model_t_r = paths["checkpoint"], paths["gradients"], UKBIOBANK_T_R
        carried = ("gradients",)
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            "weights must be 'ukbiobank', a checkpoint path or a torch module, "
            f"got {type(weights).__name__}"
        )
    weights = expand_home(weights)
    if weights.is_dir():
        raise ValueError(f"weights={os.fspath(weights)!r} is a folder: pass the checkpoint file")
    if not weights.is_file():
        # a bare word is more likely a misspelt model name than a checkpoint's path
        named = weights.parent == Path() and not weights.suffix
        hint = (" (the one model given by name is 'ukbiobank'; anything else is the path of "
                "a checkpoint file)") if named else ""
        raise FileNotFoundError(f"weights file not found: {weights}{hint}")
    try:
        # (a damaged file is named)
        payload = load_file(weights, map_location="meta", what="checkpoint",
                            safe_globals=_RESEARCH_GLOBALS)
    except ValueError as error:
        if not carried:
            raise
        # the cache records the hash of the first copy of the UK Biobank checkpoint it finds
        # (none is published): a copy that does not read is no good copy, and its record
        # would refuse the complete file put in its place as a changed checkpoint
        _forget_cached_hash(weights)
        if foreign_file_kind(weights) is not None:  # a file of another format: not cut short
            raise ValueError(
                f"{error}. {weights} is not the UK Biobank checkpoint the cache keeps there: "
                "delete it to download the checkpoint again, or put the research checkpoint "
                "there") from error
        raise ValueError(
            f"{error}. The cached UK Biobank checkpoint is damaged (a download or copy cut "
            f"short?): delete {weights} to download it again, or put a complete copy there"
        ) from error
    kind = _payload_kind(payload)
    if carried and kind != "research":
        # another kind of file in its place is no copy of it either (as above)
        _forget_cached_hash(weights)
        what = {"ours": "a brainjepa_sk checkpoint (pass it as weights=<its path>)",
                "training_state": "a pretraining run's state",
                "research_fine_tuned": "a model the research code fine-tuned (pass it as "
                                       "weights=<its path>, with gradients=)"}.get(
                    kind, "no research checkpoint")
        raise ValueError(
            f"{weights} is {what}, not the UK Biobank checkpoint the cache keeps there (a "
            f"research checkpoint, with the sections {list(_REQUIRED_SECTIONS)}): delete it "
            "to download the checkpoint again, or put the research checkpoint there")
    if kind == "training_state":
        raise ValueError(_TRAINING_STATE_ADVICE.format(path=weights))
    if kind == "other":
        raise ValueError(
            f"{weights} is neither a brainjepa_sk checkpoint nor a research checkpoint (which "
            f"has the sections {list(_REQUIRED_SECTIONS)}){_state_dict_hint(payload)}; pass a "
            "file saved by BrainJEPAPretrainer.save or save_checkpoint, or a research "
            "checkpoint")
    if kind == "ours":
        warn_ignored("a brainjepa_sk checkpoint")
        model = load_checkpoint(weights).model
        if isinstance(model, BrainEncoder):  # a fine-tuned encoder, saved alone
            resolved = _resolved(model, model, _carried_frames(model))
        else:
            resolved = _resolved(model, model.target_encoder, _trained_frames(model.config))
        resolved.source = os.fspath(weights)
        resolved.carried = ("gradients", "num_heads")
        return resolved
    if gradients is None:
        what = ("a model the research code fine-tuned" if kind == "research_fine_tuned"
                else "a research checkpoint")
        raise ValueError(
            f"{weights} is {what}: pass the gradient matrix it was trained "
            "with as gradients= (a CSV/NPY path or an array)"
        )
    if all(section in payload for section in _REQUIRED_SECTIONS):
        model = load_research_checkpoint(weights, gradients, num_heads=num_heads)
        encoder, n_frames = model.target_encoder, _trained_frames(model.config)
    elif "target_encoder" in payload or kind == "research_fine_tuned":
        # the estimators embed with the target encoder alone: a file stripped to it loads,
        # as does the encoder of a fine-tuned model
        encoder, n_patches = _research_target_encoder(weights, gradients, num_heads)
        n_frames = n_patches * encoder.patch_size
    else:
        raise ValueError(
            f"{weights} is a research checkpoint without its 'target_encoder' section, which "
            f"the estimators embed with (found {sorted(map(str, payload))})")
    # a gradient DataFrame indexed by region names names the regions of its rows: X's columns
    # are checked against them, as against the names our checkpoints record
    return ResolvedWeights(encoder, model_t_r=model_t_r, n_frames=n_frames,
                           region_names=gradient_region_names(gradients), carried=carried)


def _forget_cached_hash(path):
    """Remove the hash recorded for the cached UK Biobank checkpoint ``path`` (a file that
    is no copy of it: the record would refuse the right file put in its place)."""
    from .datasets._weights import _record_path

    # in a cache the user may not write to, the error that names the file is the one to see
    with contextlib.suppress(OSError):
        _record_path(path).unlink(missing_ok=True)


def export_training_state(state_path, path):
    """Save the model of a pretraining state file as a checkpoint of this package.

    ``BrainJEPAPretrainer(checkpoint_dir=...)`` keeps each run's state in
    ``checkpoint_dir/run-*.pt`` after every epoch. This writes the model of such a state (for
    example that of a run that was stopped and will not be resumed) with its gradients,
    preprocessing and history, for ``BrainJEPAEmbedder(weights=path)`` or
    :func:`load_checkpoint`.

    Parameters
    ----------
    state_path : str or path-like
        The state file.
    path : str or path-like
        Where to write the checkpoint.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    TypeError
        When ``state_path`` or ``path`` is not a str or path-like (None, a number, bytes).
    ValueError
        Naming the state file, when it is damaged or does not record the model's configuration
        (states written by a bare ``PretrainLoop`` without ``Checkpoint(extra=...)``) or
        records settings this version's model does not take, or when ``path`` is the state
        file itself or holds another pretraining run's state (that run would be lost).
    """
    from .train.callbacks import read_training_state

    path = expand_home(path, "path", "a file's path")
    state_path = expand_home(state_path, "state_path", "a file's path")
    if path.exists() and state_path.exists() and os.path.samefile(path, state_path):
        raise ValueError(
            f"path {str(path)!r} is the state file itself: writing the model there would "
            "replace the training state (the run could no longer be resumed); give another path")
    state = read_training_state(state_path)
    extra = state.get("extra") or {}
    if "config" not in extra:
        raise ValueError(
            f"{state_path} does not record the model's configuration (it was not written by "
            "BrainJEPAPretrainer), so the model cannot be rebuilt from it"
        )
    _check_config(extra["config"], state_path)
    weights = state["loop"]["model"]
    model = _built_for_loading(weights["encoder.pos_embed.gradients"], extra["config"])
    model.load_state_dict(weights)
    # the run's own preprocessing, carried as a loaded model's is: a key of another version
    # is kept, not refused as a misspelt one given to save_checkpoint
    preprocessing = _from_safe(extra.get("preprocessing") or {})
    model.preprocessing = preprocessing or None
    save_checkpoint(
        path,
        model.eval(),
        preprocessing=preprocessing,
        metadata={"history": state["loop"]["history"], "exported_from": str(state_path),
                  "epochs_completed": int(state["loop"]["epoch"]),
                  **({"region_names": extra["region_names"]}
                     if extra.get("region_names") is not None else {})},
    )
    return Path(path)
