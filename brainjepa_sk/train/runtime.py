"""Devices, precision, random-number state and safe saving for training and inference."""

from __future__ import annotations

import contextlib
import copy
import errno
import functools
import glob
import hashlib
import os
import pickle
import signal
import socket
import struct
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from .._warnings import catch_warnings
from ..nn._checks import type_with_article

__all__ = [
    "PRECISIONS",
    "all_finite",
    "first_non_finite",
    "atomic_save",
    "check_writable_folder",
    "cpu_copy",
    "deferring_ctrl_c",
    "expand_home",
    "load_file",
    "move_into_place",
    "naming_save_errors",
    "noting_ctrl_c",
    "noting_first_ctrl_c",
    "noting_sigterm",
    "process_runs",
    "python_values",
    "tensor_checksum",
    "forked_rng",
    "global_rng_state",
    "resolve_autocast",
    "resolve_device",
    "set_global_rng_state",
    "temporary_file_beside",
]

PRECISIONS = ("auto", "fp32", "bf16")


def expand_home(path, name=None, what="a path"):
    """``path`` as a :class:`~pathlib.Path`, a leading ``~`` read as the home folder.

    ``~`` and ``~user`` are expanded as nilearn and pandas expand them. Unlike
    :meth:`pathlib.Path.expanduser`, which raises ``RuntimeError`` for an unknown user, a path
    whose ``~name`` names no user (say a file ``~draft.npy`` in the working folder) is kept as
    it is, so that its own error names it.

    Parameters
    ----------
    path : str or path-like
        A path.
    name : str, optional
        The parameter ``path`` was given as, named when it is no path.
    what : str, default="a path"
        What ``path`` should be (``"a file's path"``), for that message.

    Returns
    -------
    pathlib.Path
        The path, expanded.

    Raises
    ------
    TypeError
        When ``path`` is not a str or path-like (None, a number, bytes), naming ``name``;
        ``os.fspath``'s "expected str, bytes or os.PathLike object" named no parameter.
    """
    if not isinstance(path, (str, os.PathLike)):
        given = "None" if path is None else type_with_article(path)
        raise TypeError(f"{name or 'the path'} must be {what} (a str or path-like), "
                        f"got {given}")
    return Path(os.path.expanduser(os.fspath(path)))


def resolve_device(device, *, auto=True):
    """``"auto"`` -> CUDA if available, else CPU; anything else through ``torch.device``.

    Parameters
    ----------
    device : str, torch.device or None
        ``"auto"`` or ``None`` for the default, or any ``torch.device`` specification.
    auto : bool, default=True
        Whether the caller takes ``"auto"``: the errors suggest it only then (the fine-tuners,
        whose ``device`` is skorch's, take none).

    Returns
    -------
    torch.device
        The device.

    Raises
    ------
    ValueError
        When ``device`` names no device torch knows (``"gpu"``), a device this machine
        does not have (CUDA, MPS or XPU not available, a CUDA index past the last GPU), or one
        on which the model cannot compute: ``"meta"`` (shapes without data), or a backend
        that this torch cannot run (``"xla"`` without ``torch_xla``, say).
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    choices = "'auto', 'cpu'" if auto else "'cpu'"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device={device!r} is not a device torch knows: use {choices}, "
                         "'cuda' or 'cuda:<index>'") from None
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "meta":
        raise ValueError("device='meta' holds tensors' shapes without their data: the model "
                         f"cannot compute on it; use {choices} or 'cuda'")
    # torch.cuda, torch.mps, torch.xpu, ...: is_available says whether this machine has one
    is_available = getattr(getattr(torch, resolved.type, None), "is_available", None)
    if is_available is not None and not is_available():
        name = resolved.type.upper() if len(resolved.type) <= 4 else resolved.type
        raise ValueError(f"device={str(resolved)!r} was asked for but {name} is not available")
    if resolved.type == "cuda":
        if (resolved.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device={str(resolved)!r} was asked for but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
        return resolved
    # types without such a module (an out-of-tree backend) are asked by computing on them
    failure = _compute_failure(str(resolved))
    if failure is not None:
        raise ValueError(f"device={str(resolved)!r} cannot run the model with this torch "
                         f"({failure}); use {choices} or 'cuda', or install the "
                         "backend's torch package")
    return resolved


@functools.lru_cache(maxsize=None)
def _compute_failure(device):
    """Why torch cannot add two numbers on ``device`` and read the result back (``None`` when
    it can): a backend this torch was not built or extended for fails there, with an error
    (``NotImplementedError``, ``RuntimeError``, ...) that would otherwise come from deep
    inside a fit. Asked once per device."""
    try:
        (torch.ones(1, device=device) + 1).cpu()
    except Exception as error:  # noqa: BLE001 -- whatever the backend raises is the answer
        # the first sentence: torch's dispatcher then lists every backend it has
        first = (str(error).strip().splitlines() or [""])[0].split(". ")[0]
        return f"{type(error).__name__}: {first}".rstrip(": ")
    return None


def resolve_autocast(precision, device):
    """Autocast dtype for a precision setting: ``"auto"`` is bf16 on CUDA, fp32 (None) on CPU.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16"}
        The precision setting.
    device : torch.device
        The training device.

    Returns
    -------
    torch.dtype or None
        ``torch.bfloat16``, or ``None`` for float32 (no autocast).

    Raises
    ------
    ValueError
        When ``precision`` is not one of ``PRECISIONS``.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


#: Held by :func:`forked_rng` blocks: threads of one process share torch's global generators,
#: so two seeded blocks running at once would draw from each other's streams.
_GLOBAL_RNG_LOCK = threading.RLock()


def resolve_compile(compile, device):
    """Whether a ``compile`` setting compiles: ``"auto"`` on CUDA only.

    Parameters
    ----------
    compile : {"auto", True, False}
        The setting, as checked by the estimators' ``COMPILE`` constraint.
    device : torch.device
        The training device.

    Returns
    -------
    bool
        Whether to run the training through ``torch.compile``.
    """
    if isinstance(compile, str):  # "auto": compiling did not pay on the CPUs measured
        return device.type == "cuda"
    return bool(compile)


@contextlib.contextmanager
def forked_rng(seed, device):
    """Seed torch's global generators for ``device`` inside the block only.

    Model initialisation and stochastic depth draw from the global generator; seeding a fork of
    it makes them follow ``random_state`` while the caller's random state (CPU, and the CUDA
    device used) is restored afterwards. Other CUDA devices are not touched. Such blocks run
    one at a time in a process (a lock; the same thread may nest them): threads share the
    global generators, so fits in parallel threads (joblib's threading backend) would
    otherwise not be reproducible.

    Inside the block torch's default dtype is also float32 (restored afterwards): the
    estimators compute in float32, and a caller's ``torch.set_default_dtype(torch.float64)``
    would otherwise build float64 layers that refuse float32 windows (and draw other initial
    weights from the same seed).

    Parameters
    ----------
    seed : int or None
        Seed of the CPU generator, and of the CUDA generator of ``device`` when on CUDA; None
        forks without seeding (the block's draws leave the caller's state alone).
    device : torch.device
        The device whose generator is seeded (a CUDA device without an index means the current
        one, which is also made current inside the block).

    Yields
    ------
    None
        Inside the block, the global generators are seeded with ``seed`` and the default
        dtype is float32.
    """
    with _GLOBAL_RNG_LOCK, _float32_default():
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            with torch.random.fork_rng(devices=[index]), torch.cuda.device(index):
                if seed is not None:
                    torch.default_generator.manual_seed(seed)
                    torch.cuda.manual_seed(seed)
                yield
        else:
            with torch.random.fork_rng(devices=[]):
                if seed is not None:
                    torch.default_generator.manual_seed(seed)
                yield


@contextlib.contextmanager
def _float32_default():
    """torch's default dtype float32 inside the block, restored after (hold the lock)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def global_rng_state(device):
    """States of the global generators used on ``device`` (for exact resume).

    Parameters
    ----------
    device : torch.device
        The training device.

    Returns
    -------
    dict
        ``"cpu"``: the CPU generator state; ``"cuda"``: that of ``device``, when on CUDA.
    """
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_global_rng_state(state, device):
    """Restore what :func:`global_rng_state` returned.

    Parameters
    ----------
    state : dict
        What :func:`global_rng_state` returned; its ``"cuda"`` state, if any, is restored
        only when ``device`` is a CUDA device.
    device : torch.device
        The training device.
    """
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _check_map_location(map_location):
    """Refuse a ``map_location`` that ``torch.load`` cannot take, naming it: torch failed with
    "'int' object is not callable", and on an unknown device with "don't know how to restore
    data location", which the messages took for a damaged file."""
    if isinstance(map_location, str):
        try:
            torch.device(map_location)
        except (RuntimeError, ValueError):
            raise ValueError(f"map_location={map_location!r} is not a device torch knows: use "
                             "'cpu', 'cuda' or 'cuda:<index>'") from None
    elif not (map_location is None or isinstance(map_location, (torch.device, dict))
              or callable(map_location)):
        raise TypeError(f"map_location must be a device ('cpu', 'cuda', a torch.device), a "
                        f"dict or a function, as torch.load takes it; got {map_location!r}")


def load_file(path, map_location="cpu", what="torch file", name="path", safe_globals=()):
    """``torch.load(path, weights_only=True)`` with errors that name the file and the problem.

    Parameters
    ----------
    path : str or path-like
        The file.
    map_location : str or torch.device, default="cpu"
        Passed to ``torch.load``.
    what : str, default="torch file"
        What the file should be, for the messages (e.g. ``"brainjepa_sk checkpoint"``).
    name : str, default="path"
        The parameter ``path`` was given as, named when it is no path.
    safe_globals : sequence of type, default=()
        Classes the safe load may build besides tensors and plain values (those torch's
        ``safe_globals`` takes, for torch 2.5 and later; refused with older ones), such as
        ``argparse.Namespace``, whose objects only hold attributes.

    Returns
    -------
    object
        What the file holds.

    Raises
    ------
    FileNotFoundError
        When there is no file.
    TypeError
        When ``map_location`` is none of what ``torch.load`` takes.
    ValueError
        When ``map_location`` names no device torch knows. Naming the file, when it is a
        folder, empty, truncated or damaged, not a torch file (a safetensors file too, which
        torch reads where that package is installed), holds Python objects that a
        safe load refuses (it is never unpickled unsafely), or is a TorchScript archive.
    """
    _check_map_location(map_location)
    path = expand_home(path, name, "a file's path")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a {what}")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty: not a {what} (an interrupted copy or download?)")
    if is_safetensors_file(path):
        # refused whether or not the safetensors package is there (torch reads a file named
        # .safetensors with it where it is installed, else fails naming the package)
        raise ValueError(f"{path} is not a {what}: {SAFETENSORS_ADVICE}")
    try:
        with catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            # a TorchScript archive is refused below; torch warns first that it dispatches it
            warnings.filterwarnings("ignore", message=".*looks like a TorchScript archive")
            with _allowing(safe_globals):
                return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):
            # not torch's advice to load unsafely: the file is refused
            raise ValueError(
                f"{path} is not a {what}: it holds Python objects other than tensors and "
                "plain values, which are not loaded (loading them could run code)"
            ) from None
        raise ValueError(
            f"{path} is not a {what}: {_not_torch_file(path)}"
        ) from None
    except (FileNotFoundError, PermissionError, IsADirectoryError) as error:
        raise OSError(error.errno, f"could not read {path}: {error.strerror}") from error
    except OSError as error:  # torch's archive reader on some truncations
        raise ValueError(
            f"{path} is truncated or damaged: not a complete {what} ({error})"
        ) from error
    except RuntimeError as error:
        if "TorchScript" in str(error):  # not torch's advice to load it with weights_only=False
            raise ValueError(
                f"{path} is not a {what}: it is a TorchScript archive (torch.jit.save), which "
                "is not loaded (a torch.save file of tensors is expected)"
            ) from None
        if "PytorchStreamReader" in str(error) or "zip archive" in str(error):
            raise ValueError(
                f"{path} is truncated or damaged: not a complete {what} ({error})"
            ) from error
        raise ValueError(f"{path} could not be read as a {what}: {error}") from error
    # struct.error and AssertionError: torch's legacy (not zip) reader on some damaged bytes
    except (EOFError, KeyError, UnicodeDecodeError, ValueError, IndexError, struct.error,
            AssertionError) as error:
        raise ValueError(
            f"{path} is not a {what}: {_not_torch_file(path)} "
            f"({type(error).__name__}: {error})"
        ) from error


def _allowing(safe_globals):
    """torch's context in which a safe load builds objects of ``safe_globals`` too (none
    where torch has no such context: before 2.5)."""
    allowing = getattr(torch.serialization, "safe_globals", None)
    if allowing is None:
        return contextlib.nullcontext()
    # those already allowed (by the user's add_safe_globals) are left out: the context takes
    # off torch's list, on leaving, all it was given
    allowed = getattr(torch.serialization, "get_safe_globals", list)()
    added = [cls for cls in safe_globals if cls not in allowed]
    return allowing(added) if added else contextlib.nullcontext()


#: What ``torch.save``'s legacy (not zip) format pickles first: its magic number (a LONG1
#: opcode), which a damaged legacy file still starts with, after the pickle's header (and
#: from pickle protocol 4, which ``pickle_protocol=`` may ask for, a frame's).
_LEGACY_TORCH_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def _legacy_torch_start(start):
    """Whether the pickle that ``start`` begins is (or could be, cut short) a legacy torch
    file's: its first opcode is (or begins) the magic number."""
    body = start[11:] if start[2:3] == b"\x95" else start[2:]
    return body[:len(_LEGACY_TORCH_MAGIC)] == _LEGACY_TORCH_MAGIC[:len(body)]


def _not_torch_file(path):
    """Why a file that ``torch.load`` cannot read is none, for :func:`load_file`'s errors:
    what it is (see :func:`foreign_file_kind`), else that it was not written by
    ``torch.save`` or is damaged."""
    kind = foreign_file_kind(path)
    if kind is None:
        return "it was not written by torch.save, or it is damaged"
    return f"it is {kind}, not a file written by torch.save"


#: What :func:`foreign_file_kind` calls a safetensors file.
SAFETENSORS_KIND = "a safetensors file"
#: How :func:`load_file` refuses a safetensors file.
SAFETENSORS_ADVICE = (
    "it is a safetensors file, not a file written by torch.save; brainjepa_sk reads torch.save "
    "files only (safetensors is none of its dependencies): convert it with "
    "torch.save(safetensors.torch.load_file(path), 'converted.pt') and pass that file")


def _safetensors_start(start):
    """Whether a file's first bytes ``start`` begin a safetensors file: the length of its JSON
    header (8 bytes, little-endian; the format caps it at 100 MB), then the header's ``{``."""
    return (start[8:9] == b"{"
            and int.from_bytes(start[:8], "little") <= 100_000_000)


def is_safetensors_file(path):
    """Whether ``path`` is a safetensors file (by its first bytes, whatever its name).

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    bool
        False too when the file cannot be read.
    """
    return foreign_file_kind(path) == SAFETENSORS_KIND


def foreign_file_kind(path):
    """What a file that ``torch.load`` cannot read is, when its first bytes say so.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    str or None
        ``"a NumPy array file (numpy.save)"``, ``"a safetensors file"``, ``"a Python pickle
        (...)"`` or ``"a text file (...)"``: files users pass by mistake, which are no damaged
        torch file (not to be deleted); None when the bytes tell nothing (or the file cannot
        be read).
    """
    try:
        with open(path, "rb") as file:
            start = file.read(512)
    except OSError:
        return None
    if start.startswith(b"\x93NUMPY"):
        return "a NumPy array file (numpy.save)"
    if _safetensors_start(start):
        return SAFETENSORS_KIND
    if (start[:1] == b"\x80" and start[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
            and not _legacy_torch_start(start)):
        return ("a Python pickle (pickle.dump or joblib.dump, such as a pickled estimator; "
                "not unpickled here)")
    # a zip archive's (torch.save's) first bytes alone, a copy cut short at once, read as text
    if start and b"\0" not in start and not b"PK\x03\x04".startswith(start):
        try:
            start.decode("utf-8")
        except UnicodeDecodeError as error:
            # a character cut at the end of the bytes read is still text (not a byte that
            # starts none, as a legacy torch file's first)
            if error.reason != "unexpected end of data" or error.start < len(start) - 3:
                return None
        return "a text file (such as a table or JSON)"
    return None


def all_finite(tensors):
    """Whether every value of every tensor is finite, with one wait for the device.

    Parameters
    ----------
    tensors : iterable of torch.Tensor
        E.g. a module's ``parameters()``.

    Returns
    -------
    bool
        ``False`` when any value is NaN or infinite.
    """
    flags = [torch.isfinite(tensor).all() for tensor in tensors]
    return bool(torch.stack(flags).all()) if flags else True


def first_non_finite(named_tensors):
    """The name of the first tensor holding a NaN or infinite value.

    Parameters
    ----------
    named_tensors : iterable of (str, torch.Tensor)
        E.g. a module's ``named_parameters()``.

    Returns
    -------
    str or None
        The name, or None when every value is finite.
    """
    return next((name for name, tensor in named_tensors
                 if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())),
                None)


def tensor_checksum(obj, values=False):
    """SHA-256 of every tensor in a nested structure of dicts, lists and tuples.

    Keys are visited in sorted order and each tensor contributes its place, dtype, shape and
    bytes, so that a flipped byte in any stored tensor changes the digest.

    Parameters
    ----------
    obj : object
        Tensors, or dicts / lists / tuples of them.
    values : bool, default=False
        Whether the other values (numbers, strings, None...) count too, each by its place,
        type and ``repr``; by default they are ignored.

    Returns
    -------
    str
        Hex digest.
    """
    digest = hashlib.sha256()

    def visit(value, place):
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{place}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                visit(value[key], f"{place}/{key}")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(item, f"{place}/{index}")
        elif values:
            digest.update(f"{place}|{type(value).__name__}|{value!r}|".encode())

    visit(obj, "")
    return digest.hexdigest()


def _umask():
    """The process umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back at once
    os.umask(mask)
    return mask


def _is_disk_full(error):
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    # torch's zip writer reports a short write as "unexpected pos"
    return isinstance(error, RuntimeError) and "unexpected pos" in str(error)


def _temporary_prefix(path):
    return f"{path.name}.{socket.gethostname()}.{os.getpid()}."


def _remove_stale_temporaries(path):
    """Remove temporary files of earlier saves of ``path`` whose process no longer runs here."""
    ours = f"{path.name}.{socket.gethostname()}"
    for candidate in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):
        # name.host.pid.random.tmp (the random part has no dots; a host name may)
        parts = candidate.name[: -len(".tmp")].rsplit(".", 2)
        if len(parts) != 3 or parts[0] != ours or not parts[1].isdigit():
            continue  # another machine's (shared folder) or not ours: left alone
        if process_runs(int(parts[1])) is False:  # None (cannot tell): its save may be in flight
            candidate.unlink(missing_ok=True)


def process_runs(pid):
    """Whether process ``pid`` of this machine still runs; None where that cannot be told.

    Asked with ``os.kill(pid, 0)`` on POSIX systems. Not on Windows, where that call ends the
    process (``TerminateProcess``) instead of asking about it.

    Parameters
    ----------
    pid : int
        The process id.

    Returns
    -------
    bool or None
        True when it runs (also another user's), False when no such process exists, None on
        systems that cannot be asked.
    """
    if os.name != "posix":
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:  # another user's: it runs
        return True
    except (OSError, OverflowError):  # no such process (or no such pid)
        return False
    return True


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some systems cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable_folder(folder, what="folder"):
    """Create ``folder`` if needed and check that files can be written in it.

    Parameters
    ----------
    folder : str or path-like
        The folder.
    what : str, default="folder"
        How the error names it (e.g. ``"checkpoint_dir"``).

    Raises
    ------
    OSError
        Naming the folder, when it cannot be created or written to.
    """
    folder = expand_home(folder, what, "a folder's path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OSError(
            error.errno, f"{what} {str(folder)!r} is not a writable folder: {error.strerror}"
        ) from error


def _link_target(path):
    """The file a write of ``path`` replaces: the one a symbolic link points to (the link is
    kept, as a plain write through it would keep it), else ``path`` itself."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)


def temporary_file_beside(path):
    """A new empty temporary file in ``path``'s folder, for a write then renamed over ``path``.

    It is named after ``path``, the host and this process, as :func:`atomic_save`'s are, and
    the temporary files of earlier writes of ``path`` whose process no longer runs here
    (killed mid-write) are removed first. Where ``path`` is a symbolic link, it is made beside
    the file the link points to, which :func:`move_into_place` replaces.

    Parameters
    ----------
    path : str or path-like
        The file the write will replace; its folder must exist.

    Returns
    -------
    pathlib.Path
        The temporary file (the caller renames or removes it).
    """
    path = _link_target(path)
    _remove_stale_temporaries(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temporary_prefix(path), suffix=".tmp")
    os.close(handle)
    return Path(tmp)


def move_into_place(tmp, path):
    """Make the written temporary file ``tmp`` the file ``path``, durably.

    ``tmp`` is flushed to the disk (``fsync``), given the permissions of the umask (as
    ``open`` would give a new file), renamed over ``path`` (atomically: a reader sees the old
    file or the new one, never a part), and the folder is synced so that the rename survives
    a crash. Where ``path`` is a symbolic link, the file it points to is replaced and the link
    kept. A rename refused with ``PermissionError`` (on Windows, while another process holds
    ``path`` open or memory-mapped) is tried again after the pauses of
    ``REPLACE_RETRY_DELAYS`` (about 3 s in all).

    Parameters
    ----------
    tmp : str or path-like
        The temporary file, in ``path``'s folder (e.g. from :func:`temporary_file_beside`).
    path : str or path-like
        The file it replaces.

    Raises
    ------
    PermissionError
        Naming ``path`` (its ``filename``), when the last try is refused too: ``path`` is
        left as it was and ``tmp`` is removed.
    """
    with open(tmp, "rb+") as file:
        os.fsync(file.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    path = _link_target(path)
    _replace_retrying(tmp, path)
    _fsync_folder(path.parent)


#: The pauses (seconds) between the tries of a rename over a file that is refused with
#: ``PermissionError``: Windows refuses to replace a file another process holds open or
#: memory-mapped (a reader, a virus scanner, a file indexer), usually for a moment only.
REPLACE_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


def _replace_retrying(tmp, path):
    """``os.replace(tmp, path)``, tried again after each of ``REPLACE_RETRY_DELAYS``
    while it raises ``PermissionError``; when the last try fails too, ``tmp`` is removed and
    a ``PermissionError`` names ``path`` (left as it was)."""
    waited = 0.0
    for delay in (*REPLACE_RETRY_DELAYS, None):
        try:
            os.replace(tmp, path)
            return
        except PermissionError as error:
            if delay is None:
                last = error
                break
            time.sleep(delay)
            waited += delay
    # (Windows keeps the temporary files of a process that ended: they are never removed as
    # stale there, see process_runs)
    with contextlib.suppress(OSError):
        os.remove(tmp)
    tries = len(REPLACE_RETRY_DELAYS) + 1
    raise PermissionError(
        last.errno,
        f"the file could not be replaced ({last.strerror or last}; {tries} tries over "
        f"{waited:.1f} s): another program may hold it open or memory-mapped, which Windows "
        "refuses to replace (close it there, e.g. a viewer, or an array loaded with mmap), or "
        "its folder does not let it be replaced; the previous file is kept as it was, and the "
        "new one, written to a temporary file beside it, was removed",
        os.fspath(path),
    ) from last


def atomic_save(obj, path):
    """``torch.save`` to a temporary file in the same folder, then rename it into place.

    An interrupted save never leaves a truncated file at ``path``: the data are written to a
    temporary file, flushed to the disk (``fsync``), renamed over ``path``, and the folder is
    synced so that the rename survives a crash. The file gets the permissions of the umask (as
    ``open`` would give it). Temporary files left by earlier saves of ``path`` that were killed
    are removed.

    Parameters
    ----------
    obj : object
        What to save.
    path : str or path-like
        Destination; its folder is created if needed.

    Raises
    ------
    OSError
        Naming ``path``, when it cannot be written (a full disk says so); the previous file at
        ``path``, if any, is left as it was.
    """
    path = expand_home(path, "path", "a file's path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # e.g. a file where a folder of the path should be
        raise OSError(error.errno, f"could not save {path}: cannot create its folder "
                                   f"{path.parent}: {error.strerror or error}") from error
    tmp = None
    try:
        with naming_save_errors(path):  # also when the temporary file cannot be made
            tmp = temporary_file_beside(path)
            with open(tmp, "wb") as file:
                torch.save(obj, file)
            move_into_place(tmp, path)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def naming_save_errors(path):
    """Raise the errors of a save of ``path`` (to a temporary file beside it) as an
    ``OSError`` that names ``path``, and says when the disk is full.

    Parameters
    ----------
    path : str or path-like
        The file being saved.

    Yields
    ------
    None
        Inside the block, the save.

    Raises
    ------
    OSError
        Naming ``path``: ``EISDIR`` when it is a folder or a link to one (before anything is
        written),
        ``ENOSPC`` for a full disk (an ``OSError`` of ``ENOSPC`` or ``EDQUOT``, or torch's
        short write), the system's code for other ``OSError`` errors. Other errors propagate
        as they are.
    """
    # said before the data are written beside it (the rename would refuse a folder only then)
    if Path(path).is_dir():  # a link to a folder too: the rename would replace the link
        link = (f" (a link to the folder {os.path.realpath(path)})"
                if os.path.islink(path) else "")
        raise IsADirectoryError(errno.EISDIR, f"could not save {path}: it is a folder{link}; "
                                              "give the path of a file to write (in it, or "
                                              "elsewhere)")
    try:
        yield
    except (OSError, RuntimeError) as error:
        if _is_disk_full(error):
            raise OSError(
                errno.ENOSPC,
                f"could not save {path}: the disk is full (no space left on device); "
                "the previous file, if any, is kept",
            ) from error
        if isinstance(error, OSError):
            # written through a link: the target (a folder it names that is gone, say) at fault
            link = (f" (a link to {os.path.realpath(path)}, which is written)"
                    if os.path.islink(path) else "")
            raise OSError(error.errno, f"could not save {path}{link}: "
                                       f"{error.strerror or error}") from error
        raise


def python_values(value):
    """``value`` with numpy scalars as Python numbers, inside tuples, lists and dicts too.

    Settings end up in saved states (an optimizer's groups, a model's configuration), and
    ``torch.load(weights_only=True)`` refuses numpy scalars there: a run given
    ``lr=np.float64(...)`` (as ``np.logspace`` gives) could not load its own state.

    Parameters
    ----------
    value : object
        A setting.

    Returns
    -------
    object
        The same setting, numpy scalars replaced (containers rebuilt as their own type).
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return type(value)(python_values(item) for item in value)
    if isinstance(value, dict):
        return {key: python_values(item) for key, item in value.items()}
    return value


def cpu_copy(state):
    """A copy of a (nested) state dict whose tensors are on the CPU.

    Parameters
    ----------
    state : torch.Tensor, dict, list, tuple or object
        E.g. a module's or an optimizer's ``state_dict()``.

    Returns
    -------
    object
        The same structure, tensors detached and copied to the CPU, other values deep-copied
        (a copy that a GPU does not hold twice).
    """
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {key: cpu_copy(value) for key, value in state.items()}
    if isinstance(state, (list, tuple)):
        values = [cpu_copy(value) for value in state]
        if hasattr(state, "_fields"):  # a namedtuple takes its fields one by one
            return type(state)(*values)
        return type(state)(values)
    return copy.deepcopy(state)


@contextlib.contextmanager
def noting_ctrl_c(pressed):
    """Mark ``pressed["ctrl_c"]`` when SIGINT arrives, then let its handler act as before.

    Training loops that end by raising ``KeyboardInterrupt`` themselves (skorch's
    ``EarlyStopping`` does) cannot tell Ctrl-C from it by the exception alone. Only in the main
    thread, and only where SIGINT has a Python handler (the default one raises
    ``KeyboardInterrupt``); elsewhere nothing is marked.

    Parameters
    ----------
    pressed : dict
        Gets the key ``"ctrl_c"`` (True) when SIGINT arrives inside the block.

    Yields
    ------
    None
        The previous SIGINT handler is put back when the block ends.
    """
    with _signal_handled_by(signal.SIGINT, _sigint_noter(pressed)):
        yield


@contextlib.contextmanager
def noting_first_ctrl_c(received, pressed):
    """Mark ``received["ctrl_c"]`` at the first SIGINT instead of letting its handler act; at
    a later one, mark ``pressed["ctrl_c"]`` and let the handler act as before.

    For loops of several processes (``torchrun``), which must all stop after the same step: a
    ``KeyboardInterrupt`` raised at once would stop each process at another point, and leave
    the others waiting in their next collective operation. The first Ctrl-C is a request to
    stop at the next step the processes agree on; a second one in the same process raises at
    once (the default handler's ``KeyboardInterrupt``), for a run that must end now. Only in
    the main thread, and only where SIGINT has a Python handler (an ignored SIGINT stays
    ignored); elsewhere nothing is marked.

    Parameters
    ----------
    received : dict
        Gets the key ``"ctrl_c"`` (True) at the first SIGINT inside the block.
    pressed : dict
        Gets the key ``"ctrl_c"`` (True) at a later SIGINT, before the previous handler is
        called.

    Yields
    ------
    None
        The previous SIGINT handler is put back when the block ends.
    """
    with _signal_handled_by(signal.SIGINT, _sigint_noter(pressed, first_to=received)):
        yield


def _sigint_noter(pressed, first_to=None):
    """The handler maker of :func:`noting_ctrl_c` and :func:`noting_first_ctrl_c`: given the
    previous handler, one that marks ``pressed["ctrl_c"]`` and calls it, or, for the first
    SIGINT when ``first_to`` is a dict, marks ``first_to["ctrl_c"]`` alone."""
    def noting(previous):
        def note(signum, frame):
            if first_to is not None and not first_to.get("ctrl_c"):
                first_to["ctrl_c"] = True
                return
            pressed["ctrl_c"] = True
            previous(signum, frame)
        return note
    return noting


@contextlib.contextmanager
def noting_sigterm(received):
    """Mark ``received["sigterm"]`` when SIGTERM arrives, instead of ending the process.

    For loops that stop at their next safe point when a job scheduler pre-empts them (SLURM
    sends SIGTERM before it kills the job). Only in the main thread, only where SIGTERM's
    handler is one Python can put back (``signal.getsignal`` is None for one an embedding
    program set before Python started: it is left in place), and not where SIGTERM is ignored
    (``SIG_IGN``, e.g. inherited from a shell's ``trap '' TERM``: the process asked not to be
    stopped by it, as Python leaves an ignored SIGINT ignored); elsewhere nothing is marked.

    Parameters
    ----------
    received : dict
        Gets the key ``"sigterm"`` (True) when SIGTERM arrives inside the block.

    Yields
    ------
    None
        The previous SIGTERM handler is put back when the block ends.
    """
    def noting(previous):
        def note(signum, frame):
            received["sigterm"] = True
        return note

    with _signal_handled_by(signal.SIGTERM, noting,
                            takes=lambda previous: previous not in (None, signal.SIG_IGN)):
        yield


@contextlib.contextmanager
def deferring_ctrl_c():
    """Hold Ctrl-C (SIGINT) back during the block: a press inside it acts when the block ends.

    For work that must not stop half-way, such as an optimizer step and the updates that go
    with it. Only in the main thread, and only where SIGINT has a Python handler; elsewhere
    the block runs as it is.

    Yields
    ------
    None
        The previous SIGINT handler is put back when the block ends, then called if SIGINT
        arrived inside it (the default one raises ``KeyboardInterrupt`` there). A block that
        ends with an error lets the error go on instead.
    """
    pressed = []

    def holding(previous):
        return lambda signum, frame: pressed.append((signum, frame))

    with _signal_handled_by(signal.SIGINT, holding) as previous:
        yield
    if pressed and previous is not None:
        previous(*pressed[0])


@contextlib.contextmanager
def _signal_handled_by(signum, make_handler, takes=callable):
    """Handle signal ``signum`` with ``make_handler(previous)`` during the block, in the main
    thread and where ``takes(previous)`` (by default: the previous handler is a Python one, as
    handlers that call it need); yields that previous handler (None where not)."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    previous = signal.getsignal(signum)
    if not takes(previous):
        yield None
        return
    signal.signal(signum, make_handler(previous))
    try:
        yield previous
    finally:
        signal.signal(signum, previous)
