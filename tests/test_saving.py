"""Saving files safely: atomic and durable, umask, stale temporary files, full disks, folders."""

import errno
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from _estimators import tiny_module

from brainjepa_sk import BrainJEPAPretrainer
from brainjepa_sk.checkpoint import load_checkpoint, save_checkpoint
from brainjepa_sk.train import runtime
from brainjepa_sk.train.runtime import atomic_save, check_writable_folder


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_saved_files_follow_the_umask(tmp_path, umask_027):
    atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    assert (tmp_path / "x.pt").stat().st_mode & 0o777 == 0o640
    os.umask(0o022)
    atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    assert (tmp_path / "x.pt").stat().st_mode & 0o777 == 0o644


def test_the_file_and_its_folder_are_synced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(runtime.os, "fsync", recording_fsync)
    atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    assert len(synced) == 2
    assert synced[0].endswith(".tmp")  # the data, before the rename
    assert synced[1] == str(tmp_path.resolve())  # the folder, after it
    assert torch.load(tmp_path / "x.pt", weights_only=True)["a"].sum() == 2


def test_the_data_are_written_beside_the_file_wherever_the_system_temporary_folder_is(
        tmp_path, monkeypatch):
    """A rename is atomic only within one file system (across two it fails): the temporary
    file is in the destination's folder, not in TMPDIR."""
    elsewhere = tmp_path / "system-tmp"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    folders = []
    real_save = torch.save

    def recording_save(obj, file):
        folders.append(Path(file.name).parent)
        real_save(obj, file)

    monkeypatch.setattr(runtime.torch, "save", recording_save)
    atomic_save({"a": 1}, tmp_path / "run" / "x.pt")
    assert folders == [tmp_path / "run"]
    assert list(elsewhere.iterdir()) == []
    assert torch.load(tmp_path / "run" / "x.pt", weights_only=True) == {"a": 1}


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporary_files_of_killed_saves_are_removed(tmp_path):
    host = socket.gethostname()
    stale = tmp_path / f"last.pt.{host}.{_dead_pid()}.abc123.tmp"
    running = tmp_path / f"last.pt.{host}.{os.getpid()}.def456.tmp"  # a save in flight
    # a dead pid here: only the host tells that its process may run (a shared folder)
    elsewhere = tmp_path / f"last.pt.another-machine.{_dead_pid()}.ghi789.tmp"
    other_file = tmp_path / f"other.pt.{host}.{_dead_pid()}.jkl012.tmp"
    for path in (stale, running, elsewhere, other_file):
        path.write_bytes(b"partial")
    atomic_save({"a": 1}, tmp_path / "last.pt")
    assert not stale.exists()
    assert running.exists() and elsewhere.exists() and other_file.exists()
    assert sorted(p.name for p in tmp_path.glob("last.pt*")) == sorted(
        ["last.pt", running.name, elsewhere.name])


class _WindowsOs:
    """``os`` as Windows has it, where ``os.kill(pid, 0)`` ends the process."""

    name = "nt"

    def __init__(self):
        self.killed = []

    def kill(self, pid, signal):
        self.killed.append(pid)

    def __getattr__(self, name):
        return getattr(os, name)


def test_no_process_is_ended_on_windows_to_tell_whether_it_runs(tmp_path, monkeypatch):
    """os.kill(pid, 0) asks on POSIX but terminates the process on Windows: saving a
    checkpoint there ended the process that wrote a temporary file of it (this one included)
    instead of asking about it. Where it cannot be told, the temporary files are kept."""
    windows = _WindowsOs()
    monkeypatch.setattr(runtime, "os", windows)
    host = socket.gethostname()
    left = [tmp_path / f"last.pt.{host}.{pid}.abc123.tmp" for pid in (_dead_pid(), os.getpid())]
    for path in left:
        path.write_bytes(b"partial")
    atomic_save({"a": 1}, tmp_path / "last.pt")
    assert windows.killed == [] and all(path.exists() for path in left)
    assert runtime.process_runs(os.getpid()) is None and windows.killed == []


def _short_write(obj, file):
    """What torch's zip writer reports when the disk fills up."""
    file.write(b"PK\x03\x04 half an archive")
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")


def _system_error(code):
    def failing(obj, file):
        raise OSError(code, os.strerror(code))
    return failing


@pytest.mark.parametrize("save", [_short_write, _system_error(errno.ENOSPC),
                                  _system_error(errno.EDQUOT)],
                         ids=["short-write", "ENOSPC", "EDQUOT"])
def test_a_full_disk_says_so_and_keeps_the_previous_file(tmp_path, monkeypatch, save):
    path = tmp_path / "last.pt"
    atomic_save({"epoch": 1}, path)
    monkeypatch.setattr(runtime.torch, "save", save)
    with pytest.raises(OSError, match=r"could not save .*last\.pt: the disk is full") as info:
        atomic_save({"epoch": 2}, path)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left


def test_saving_to_a_folder_says_so_before_writing_anything(tmp_path, monkeypatch):
    """The rename would refuse the folder only after the whole model was written beside it,
    with the system's bare 'Is a directory'."""
    folder = tmp_path / "my models"
    folder.mkdir()
    written = []
    monkeypatch.setattr(runtime.torch, "save", lambda obj, file: written.append(file))
    with pytest.raises(IsADirectoryError, match=rf"could not save {re.escape(str(folder))}: it "
                                                r"is a folder; give the path of a file") as info:
        save_checkpoint(folder, tiny_module())
    assert info.value.errno == errno.EISDIR
    assert written == [] and list(folder.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my models"]


def test_saving_through_a_link_to_a_file_writes_its_target_and_keeps_the_link(tmp_path):
    """A link the user keeps (say latest.pt -> run3/model.pt) is not replaced by a file."""
    from brainjepa_sk._skorch import save_params_atomically

    (tmp_path / "run3").mkdir()
    target, link = tmp_path / "run3" / "model.pt", tmp_path / "latest.pt"
    target.write_bytes(b"old")
    link.symlink_to(target)
    save_checkpoint(link, tiny_module())
    assert link.is_symlink() and os.readlink(link) == str(target)
    load_checkpoint(target)  # the new model, through the link's target
    save_params_atomically(lambda f_params: Path(f_params).write_bytes(b"params"),
                           {"f_params": link})
    assert link.is_symlink() and target.read_bytes() == b"params"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["latest.pt", "model.pt", "run3"]


def test_saving_through_a_link_into_a_missing_folder_names_the_link_target(tmp_path):
    """The link is written through, as open() does: its target's missing folder is the fault,
    which the message had not shown (only the link's own path, and 'No such file')."""
    link = tmp_path / "latest.pt"
    link.symlink_to(Path("gone") / "model.pt")
    with pytest.raises(FileNotFoundError, match=r"latest.pt \(a link to .*gone.model.pt, which "
                                                r"is written\): No such file or directory"):
        save_checkpoint(link, tiny_module())
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]


def test_saving_to_a_link_to_a_folder_is_refused_as_a_folder(tmp_path):
    folder, link = tmp_path / "models", tmp_path / "models-link"
    folder.mkdir()
    link.symlink_to(folder)
    with pytest.raises(IsADirectoryError, match=r"models-link: it is a folder \(a link to the "
                                                r"folder .*models\); give the path of a file"):
        save_checkpoint(link, tiny_module())
    assert link.is_symlink() and list(folder.iterdir()) == []


def test_other_write_errors_name_the_file(tmp_path, monkeypatch):
    def denied(obj, file):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(runtime.torch, "save", denied)
    with pytest.raises(OSError, match=r"could not save .*x\.pt: Permission denied") as info:
        atomic_save({}, tmp_path / "x.pt")
    assert info.value.errno == errno.EACCES  # the system's code, for callers that test it


@pytest.mark.parametrize("code, message", [(errno.ENOSPC, "the disk is full"),
                                           (errno.EACCES, "Permission denied")])
def test_a_temporary_file_that_cannot_be_made_names_the_file_being_saved(
        tmp_path, monkeypatch, code, message):
    """The error names the file the user asked for, not the hidden temporary file beside it."""
    def refused(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(tmp_path / ".x.pt-host-1-abc.tmp"))

    monkeypatch.setattr(runtime.tempfile, "mkstemp", refused)
    with pytest.raises(OSError, match=rf"could not save .*x\.pt: {message}") as info:
        atomic_save({}, tmp_path / "x.pt")
    assert ".tmp" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_the_umask_is_read_and_left_as_it_was_where_proc_cannot_be_read(
        tmp_path, monkeypatch, umask_027):
    """Elsewhere than Linux the umask is read by setting it: it is put back at once."""
    real_open = open

    def no_proc(file, *args, **kwargs):
        if str(file).startswith("/proc"):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(runtime, "open", no_proc, raising=False)  # found before the builtin
    atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
    assert (tmp_path / "x.pt").stat().st_mode & 0o777 == 0o640
    assert os.umask(0o027) == 0o027  # the process's umask is still the caller's


def test_temporary_files_of_another_users_running_process_are_left_alone(tmp_path, monkeypatch):
    """``kill(pid, 0)`` refused (the process runs, under another user): its save may be in
    flight. Names that only look like ours (no process id in them) are left alone too."""
    host = socket.gethostname()
    theirs = tmp_path / f"last.pt.{host}.1.abc123.tmp"  # init's: root's process
    not_a_save = tmp_path / f"last.pt.{host}.backup.abc123.tmp"
    for path in (theirs, not_a_save):
        path.write_bytes(b"partial")

    def refused(pid, signal):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(runtime.os, "kill", refused)
    atomic_save({"a": 1}, tmp_path / "last.pt")
    assert theirs.exists() and not_a_save.exists()
    assert torch.load(tmp_path / "last.pt", weights_only=True) == {"a": 1}


def test_other_errors_of_torch_save_are_raised_as_they_are(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"epoch": 1}, path)

    def failing(obj, file):
        raise RuntimeError("cannot serialize this object")

    monkeypatch.setattr(runtime.torch, "save", failing)
    with pytest.raises(RuntimeError, match="^cannot serialize this object$"):
        atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_an_os_error_without_a_system_message_is_named_by_its_own(tmp_path, monkeypatch):
    """An OSError raised with a message only (no errno, no strerror) keeps that message."""
    def failing(obj, file):
        raise OSError("the storage backend went away")

    monkeypatch.setattr(runtime.torch, "save", failing)
    with pytest.raises(OSError, match=r"could not save .*last\.pt: the storage backend went "
                                      r"away$"):
        atomic_save({"epoch": 1}, tmp_path / "last.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_exists_but_takes_no_files_is_named(tmp_path, monkeypatch):
    """A read-only folder (a read-only mount: root is refused too), simulated."""
    def read_only(dir=None):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(runtime.tempfile, "TemporaryFile", read_only)
    with pytest.raises(OSError, match=r"checkpoint_dir '.*' is not a writable folder: "
                                      r"Read-only file system") as info:
        check_writable_folder(tmp_path, "checkpoint_dir")
    assert info.value.errno == errno.EROFS


def test_python_values_keeps_each_containers_type():
    from brainjepa_sk.train.runtime import python_values

    value = python_values({"betas": (np.float64(0.9), np.float32(0.5)), "steps": [np.int64(3)]})
    assert value == {"betas": (0.9, 0.5), "steps": [3]}
    assert type(value["betas"]) is tuple and type(value["steps"]) is list
    assert type(value["betas"][0]) is float and type(value["steps"][0]) is int


def test_unwritable_folders_are_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match=r"checkpoint_dir '.*a_file/run' is not a writable folder"):
        check_writable_folder(blocker / "run", "checkpoint_dir")
    check_writable_folder(tmp_path / "new" / "run")  # created
    assert (tmp_path / "new" / "run").is_dir()


def _pretrainer(**params):
    defaults = dict(
        gradients=np.random.default_rng(0).standard_normal((8, 3)), patch_size=4, n_frames=16,
        model_size=dict(embed_dim=16, depth=1, num_heads=2), predictor_depth=1, n_epochs=1,
        batch_size=4, device="cpu", verbose=0, random_state=0)
    return BrainJEPAPretrainer(**{**defaults, **params})


def test_the_pretrainer_checks_checkpoint_dir_before_any_work(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    # nothing is computed: validating the input would already fail on this X
    with pytest.raises(OSError, match="checkpoint_dir .* is not a writable folder"):
        _pretrainer(checkpoint_dir=blocker / "run").fit("not even data")


def test_an_unseeded_run_with_checkpoint_dir_warns_up_front(tmp_path):
    X = np.random.default_rng(0).standard_normal((4, 32, 8))
    with pytest.warns(UserWarning, match="random_state is not an int.*never be resumed"):
        _pretrainer(checkpoint_dir=tmp_path, random_state=None).fit(X)
    # its state file is never resumed, so a damaged one is overwritten, not read
    (state,) = tmp_path.glob("*.pt")
    state.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="not resuming from .*random_state is not an int"):
        _pretrainer(checkpoint_dir=tmp_path, random_state=None).fit(X)
    assert state.stat().st_size > 1000


def test_gradients_of_an_unseeded_positioner_make_an_unseeded_run(tmp_path):
    """The gradients are part of the run key, and a GradientPositioner whose random_state is
    not an int draws slightly other ones at every fit: each fit started afresh under a new
    key, silently, leaving a run-*.pt file that no fit would ever resume."""
    from brainjepa_sk import GradientPositioner

    X = np.random.default_rng(0).standard_normal((4, 32, 8))
    for _ in range(2):
        with pytest.warns(UserWarning, match=r"GradientPositioner.*random_state that is not an "
                                             r"int.*never be resumed"):
            _pretrainer(checkpoint_dir=tmp_path, gradients=GradientPositioner(
                n_components=2, sparsity=0.5, random_state=None)).fit(X)
    assert [path.name for path in tmp_path.glob("*.pt")] == ["unseeded.pt"]


def test_a_random_state_instance_with_checkpoint_dir_is_an_unseeded_run(tmp_path):
    """A RandomState instance gives other seeds at every fit: as with None the run cannot be
    reproduced, so it is warned about up front and its state is not saved under a run key."""
    X = np.random.default_rng(0).standard_normal((4, 32, 8))
    with pytest.warns(UserWarning, match="random_state is not an int.*never be resumed"):
        _pretrainer(checkpoint_dir=tmp_path, random_state=np.random.RandomState(0)).fit(X)
    assert [path.name for path in tmp_path.glob("*.pt")] == ["unseeded.pt"]


def test_checkpoint_metadata_round_trips_or_is_refused_before_writing(tmp_path):
    import numpy as np
    import pytest
    import torch
    from _estimators import tiny_module

    from brainjepa_sk.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(), metadata={
        "names": np.array(["a", "b"]), "source": tmp_path / "data", "scalar": np.array(2.5),
        "big_endian": np.arange(3, dtype=">f8")})
    metadata = load_checkpoint(path).metadata
    assert metadata["names"] == ["a", "b"] and metadata["source"] == str(tmp_path / "data")
    assert metadata["scalar"].shape == () and float(metadata["scalar"]) == 2.5
    np.testing.assert_array_equal(metadata["big_endian"], [0.0, 1.0, 2.0])
    other = tmp_path / "other.pt"
    with pytest.raises(TypeError, match="metadata holds a set"):
        save_checkpoint(other, tiny_module(), metadata={"regions": {1, 2}})
    with pytest.raises(TypeError, match="preprocessing holds a set"):
        save_checkpoint(other, tiny_module(), preprocessing={"median_": {1, 2}})
    for name in ("metadata", "preprocessing"):  # load_checkpoint would refuse the file
        with pytest.raises(TypeError, match=f"{name} must be a dict, got list"):
            save_checkpoint(other, tiny_module(), **{name: ["a note"]})
    assert not other.exists()
    # a file missing its weights names itself
    payload = torch.load(path, weights_only=True)
    del payload["gradients"]
    torch.save(payload, other)
    with pytest.raises(ValueError, match=r"other\.pt is an incomplete checkpoint: it has no "
                                         r"\['gradients'\]"):
        load_checkpoint(other)


def test_numpy_scalars_in_metadata_are_saved_as_the_python_values_they_equal(tmp_path):
    """A score's argmax or a float32 metric, as NumPy hands them out, saves (as the number)."""
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_module(), metadata={
        "best_epoch": np.int64(3), "improved": np.bool_(True), "score": np.float32(0.5)})
    metadata = load_checkpoint(path).metadata
    assert metadata == {"best_epoch": 3, "improved": True, "score": 0.5}
    assert [type(metadata[key]) for key in ("best_epoch", "improved", "score")] == [
        int, bool, float]


@pytest.mark.parametrize("value", [np.datetime64("2020-01-01"), np.timedelta64(3, "D"),
                                   np.datetime64("2020-01-01T00:00:00.000000001"),
                                   np.timedelta64(5, "ns"), np.longdouble(2),
                                   np.complex128(1j), np.bytes_(b"a")])
def test_numpy_scalars_without_a_plain_python_value_are_refused_before_writing(tmp_path, value):
    """A date or a duration in days (``item()`` gives a ``datetime`` object) or a long double
    (``item()`` gives itself) used to be written, and the file then refused on loading as
    holding Python objects; one in nanoseconds came back as a bare int. Complex numbers and
    bytes are refused as their plain Python counterparts are."""
    path = tmp_path / "model.pt"
    with pytest.raises(TypeError, match=f"metadata holds a {type(value).__name__}, which a "
                                        "checkpoint cannot store"):
        save_checkpoint(path, tiny_module(), metadata={"value": value})
    assert not path.exists()


@pytest.mark.parametrize("value", [np.array(["2020-01-01"], dtype="datetime64[D]"),
                                   np.arange(2).astype("timedelta64[s]"),
                                   np.zeros(2, dtype=[("a", "f4")]), np.ones(2, np.longdouble)])
def test_numpy_arrays_without_a_tensor_dtype_are_refused_as_such_before_writing(tmp_path,
                                                                                 value):
    """As the scalars of those types: named with the section that holds them, not with
    torch's message about the NumPy types it converts."""
    path = tmp_path / "model.pt"
    for section in ("metadata", "preprocessing"):
        with pytest.raises(TypeError, match=rf"{section} holds a NumPy array of "
                                            rf"{re.escape(str(value.dtype))}, which a "
                                            "checkpoint cannot store"):
            save_checkpoint(path, tiny_module(), **{section: {"median_": [value]}})
    assert not path.exists()


def test_names_in_an_object_array_are_saved_as_a_list_of_strings(tmp_path):
    """Region names as a DataFrame's columns hand them out (an object array) save as a list."""
    path = tmp_path / "model.pt"
    names = np.array(["roi0", "roi1"], dtype=object)
    save_checkpoint(path, tiny_module(), metadata={"region_names": names},
                    preprocessing={"window": np.array(["first"], dtype=object)})
    loaded = load_checkpoint(path)
    assert loaded.metadata["region_names"] == ["roi0", "roi1"]
    assert loaded.preprocessing["window"] == ["first"]
    assert loaded.model.region_names == ["roi0", "roi1"]


def test_temporary_files_of_killed_saves_of_a_name_with_glob_characters_are_removed(tmp_path):
    host = socket.gethostname()
    stale = tmp_path / f"run[1].pt.{host}.{_dead_pid()}.abc123.tmp"
    stale.write_bytes(b"partial")
    atomic_save({"a": 1}, tmp_path / "run[1].pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run[1].pt"]


def test_the_temporary_file_of_a_killed_write_is_removed_by_the_next_save(tmp_path, monkeypatch):
    """The names this module gives its own temporary files are those it recognises later."""
    dead = _dead_pid()
    monkeypatch.setattr(runtime.os, "getpid", lambda: dead)
    left = runtime.temporary_file_beside(tmp_path / "last.pt")  # then the process was killed
    monkeypatch.undo()
    assert left.exists() and left.parent == tmp_path
    atomic_save({"a": 1}, tmp_path / "last.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_saving_leaves_no_file_open(tmp_path):
    atomic_save({"a": 1}, tmp_path / "x.pt")  # anything opened once, at the first save
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        atomic_save({"a": torch.ones(2)}, tmp_path / "x.pt")
        runtime.temporary_file_beside(tmp_path / "y.pt").unlink()
    assert len(os.listdir("/proc/self/fd")) == before


def test_the_folders_of_a_new_path_are_created(tmp_path):
    atomic_save({"a": 1}, tmp_path / "runs" / "first" / "last.pt")
    assert torch.load(tmp_path / "runs" / "first" / "last.pt", weights_only=True) == {"a": 1}


@pytest.mark.parametrize("parent", ["taken", "taken/runs"])
def test_a_file_where_a_folder_of_the_path_should_be_is_named_with_the_reason(tmp_path, parent):
    """The error names the file to save, the folder that could not be made and the system's
    reason (not the exception's repr with the path twice)."""
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(OSError, match=r"could not save .*last\.pt: cannot create its folder "
                                      rf".*{parent}: ") as info:
        atomic_save({"a": 1}, tmp_path / parent / "last.pt")
    assert info.value.errno in (errno.EEXIST, errno.ENOTDIR)
    assert str(info.value).endswith(os.strerror(info.value.errno))


def test_tensors_in_metadata_that_need_grad_are_saved_as_their_values(tmp_path):
    """A loss or a parameter from training (they require grad) used to be written as it was,
    and load_checkpoint then failed on the file (NumPy cannot take a tensor that needs grad)."""
    path = tmp_path / "model.pt"
    loss = (torch.ones(2, requires_grad=True) * 2).sum()
    save_checkpoint(path, tiny_module(), metadata={"final_loss": loss},
                    preprocessing={"median_": torch.nn.Parameter(torch.ones(2))})
    loaded = load_checkpoint(path)
    assert isinstance(loaded.metadata["final_loss"], np.ndarray)
    assert float(loaded.metadata["final_loss"]) == 4.0
    np.testing.assert_array_equal(loaded.preprocessing["median_"], [1.0, 1.0])
    # a file written that way before still loads
    from brainjepa_sk.checkpoint import _checksum

    payload = torch.load(path, weights_only=True)
    payload["metadata"]["final_loss"] = loss
    payload["checksum"] = _checksum(payload)
    torch.save(payload, path)
    assert float(load_checkpoint(path).metadata["final_loss"]) == 4.0


def test_conjugated_and_negated_tensor_views_are_saved_as_their_values(tmp_path):
    """``conj()`` and ``imag`` of it are lazy views (a bit on the tensor, which NumPy
    refuses): they are saved as the values they stand for."""
    path = tmp_path / "model.pt"
    z = torch.tensor([1 + 2j, 3 - 1j])
    save_checkpoint(path, tiny_module(), metadata={"conj": z.conj(), "neg": z.conj().imag})
    metadata = load_checkpoint(path).metadata
    np.testing.assert_array_equal(metadata["conj"], [1 - 2j, 3 + 1j])
    np.testing.assert_array_equal(metadata["neg"], [-2.0, 1.0])


@pytest.mark.parametrize("value", [torch.ones(2, dtype=torch.bfloat16),
                                   torch.eye(2).to_sparse()], ids=["bfloat16", "sparse"])
def test_tensors_numpy_cannot_hold_are_refused_before_writing(tmp_path, value):
    """load_checkpoint gives tensors back as NumPy arrays: a bfloat16 or a sparse tensor was
    written (or failed with a RuntimeError), and the file then could not be loaded."""
    path = tmp_path / "model.pt"
    with pytest.raises(TypeError, match="metadata holds a .*tensor.*which a checkpoint cannot "
                                        "store"):
        save_checkpoint(path, tiny_module(), metadata={"value": value})
    assert not path.exists()


@pytest.mark.parametrize("key", [1, np.int64(3), 2.5, True, None, ("a", 1)],
                         ids=["int", "numpy_int", "float", "bool", "None", "tuple"])
def test_a_key_that_is_not_a_string_is_refused_naming_it(tmp_path, key):
    """A checkpoint keeps string keys only: ``{1: 2}`` was saved and came back as ``{'1': 2}``
    (two keys could even become one), without a word."""
    path = tmp_path / "model.pt"
    with pytest.raises(TypeError, match=rf"^metadata has the key {re.escape(repr(key))} "
                                        rf"\(an? {type(key).__name__}\), which a checkpoint "
                                        rf"would give back as the string "
                                        rf"{re.escape(repr(str(key)))}"):
        save_checkpoint(path, tiny_module(), metadata={"scores": {key: 2}})
    with pytest.raises(TypeError, match=r"^preprocessing has the key 1 \(an int\)"):
        save_checkpoint(path, tiny_module(), preprocessing={"median_": [{1: 2}]})
    assert not path.exists()
    # string keys, NumPy's included, are kept
    save_checkpoint(path, tiny_module(), metadata={np.str_("site"): {"a": 1}})
    assert load_checkpoint(path).metadata == {"site": {"a": 1}}


def test_a_value_refused_inside_a_list_is_named_with_the_dict_it_was_given_in(tmp_path):
    """The error names ``preprocessing`` (not the default ``metadata``) at any depth."""
    from brainjepa_sk.checkpoint import storable_values

    path = tmp_path / "model.pt"
    with pytest.raises(TypeError, match="^preprocessing holds a set"):
        save_checkpoint(path, tiny_module(), preprocessing={"median_": [["a"], {1, 2}]})
    assert not path.exists()
    with pytest.raises(TypeError, match="^extra holds a set"):
        storable_values(({"groups": [{1, 2}]},), "extra")


def test_checkpoints_load_in_float32_whatever_torchs_default_dtype(tmp_path, official_dir):
    """The model computes in float32: a float64 default dtype (set for other work) had built
    the loaded model in float64, the saved float32 weights copied into it."""
    from brainjepa_sk.checkpoint import load_research_checkpoint

    save_checkpoint(tmp_path / "m.pt", tiny_module())
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ours = load_checkpoint(tmp_path / "m.pt").model
        research = load_research_checkpoint(official_dir / "checkpoint.pth.tar",
                                            official_dir / "gradient.csv", num_heads=4)
    finally:
        torch.set_default_dtype(default)
    for model in (ours, research):
        dtypes = {tensor.dtype for tensor in model.state_dict().values()
                  if tensor.is_floating_point()}
        assert dtypes == {torch.float32}


def _refused_renames(monkeypatch, n_refused):
    """Make ``os.replace`` refuse the first ``n_refused`` renames with ``PermissionError`` (as
    Windows does while another process holds the target open); return the renames tried and
    the pauses slept between them."""
    tried, slept, real_replace = [], [], os.replace

    def replace(src, dst):
        tried.append(Path(dst))
        if len(tried) <= n_refused:
            raise PermissionError(errno.EACCES, "The process cannot access the file because "
                                                "it is being used by another process")
        real_replace(src, dst)

    monkeypatch.setattr(runtime.os, "replace", replace)
    monkeypatch.setattr(runtime.time, "sleep", slept.append)
    return tried, slept


def test_a_rename_refused_for_a_moment_is_tried_again_until_it_succeeds(tmp_path, monkeypatch):
    """On Windows a file a reader (a virus scanner, an indexer) holds open cannot be replaced
    for that moment: the save waits and tries again, with growing pauses."""
    path = tmp_path / "x.pt"
    atomic_save({"epoch": 1}, path)
    tried, slept = _refused_renames(monkeypatch, 3)
    atomic_save({"epoch": 2}, path)
    assert tried == [path] * 4
    assert slept == list(runtime.REPLACE_RETRY_DELAYS[:3])
    assert torch.load(path, weights_only=True) == {"epoch": 2}
    assert sorted(tmp_path.iterdir()) == [path]  # no temporary file left


def _save_run_file(path):
    from brainjepa_sk._skorch import save_run_fingerprint
    save_run_fingerprint(SimpleNamespace(dirname=str(path.parent),
                                         fn_prefix=path.name[:-len("run.json")]),
                         {"saved": "again"})


def _write_hash_record(path):
    from brainjepa_sk.datasets._weights import _write_record
    _write_record(path, "new\n")


@pytest.mark.parametrize("save, name", [
    (lambda path: atomic_save({"epoch": 2}, path), "last.pt"),
    (_save_run_file, "run.json"),  # a fine-tuner's run file, outside a group of saves
    (_write_hash_record, "weights.pth.sha256"),
])
def test_a_rename_refused_every_time_names_the_file_and_keeps_the_previous_one(
        save, name, tmp_path, monkeypatch):
    """A file held open for good (say memory-mapped by another program): after a bounded
    wait the error names the file and says what was kept; the previous file is whole and no
    temporary file is left (Windows never removes them as stale: process_runs cannot tell)."""
    path = tmp_path / name
    path.write_bytes(b"previous")
    tried, slept = _refused_renames(monkeypatch, 10**6)
    with pytest.raises(PermissionError, match=re.escape(str(path)) + r".*could not be "
                       r"replaced.*7 tries over 3\.2 s.*another program may hold it open.*the "
                       r"previous file is kept as it was.*was removed") as error:
        save(path)
    assert error.value.errno == errno.EACCES
    assert len(tried) == len(runtime.REPLACE_RETRY_DELAYS) + 1
    assert slept == list(runtime.REPLACE_RETRY_DELAYS)
    assert path.read_bytes() == b"previous"
    assert sorted(tmp_path.iterdir()) == [path]


def _save_checkpoint_files(folder, contents, written_ns=None):
    """One save of a fine-tuner's Checkpoint: the files ``contents`` (name: bytes, in order)
    and the run file, moved into place together. The files' time is set to ``written_ns``
    (default a second before the run file, as a model's files are written long before it)."""
    from brainjepa_sk._skorch import save_params_atomically, save_run_fingerprint, saving_together

    checkpoint = SimpleNamespace(dirname=str(folder), fn_prefix="")
    written_ns = written_ns or time.time_ns() - 10**9

    def save_params(**files):
        (name, part), = files.items()
        Path(part).write_bytes(contents[name])
        os.utime(part, ns=(written_ns, written_ns))

    with saving_together():
        for name in contents:
            save_params_atomically(save_params, {name: folder / name})
        save_run_fingerprint(checkpoint, {"settings": {}})
    return checkpoint


def _files_read(monkeypatch):
    """The paths whose digests are read from the disk from now on."""
    import brainjepa_sk._skorch as skorch_glue

    read, digest = [], skorch_glue._file_digest
    monkeypatch.setattr(skorch_glue, "_file_digest",
                        lambda path: read.append(Path(path)) or digest(path))
    return read


def _params_not_replaced(monkeypatch):
    """From now on, a save's params.pt cannot be renamed into place (its other files can);
    returns the rename, to put back."""
    import brainjepa_sk._skorch as skorch_glue

    move = skorch_glue.move_into_place

    def params_not_replaced(part, target):
        if target.name == "params.pt":
            raise PermissionError(errno.EACCES, "the file could not be replaced", str(target))
        return move(part, target)

    monkeypatch.setattr(skorch_glue, "move_into_place", params_not_replaced)
    return move


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def test_a_checkpoint_save_does_not_read_again_the_files_its_last_save_wrote(
        tmp_path, monkeypatch):
    """The run file records the digests of the files a save replaces: those that the run file
    it replaces recorded as written, unchanged since, are not read again (a ViT-B's weights
    and optimizer are over 1 GB); a run file of an earlier version, without the files' stats,
    has them read."""
    _save_checkpoint_files(tmp_path, {"history.json": b"[1]", "params.pt": b"weights 1"})
    read = _files_read(monkeypatch)
    _save_checkpoint_files(tmp_path, {"history.json": b"[1, 2]", "params.pt": b"weights 2"})
    # only the two files written (temporary files beside their targets)
    assert len(read) == 2 and not {tmp_path / "history.json", tmp_path / "params.pt"} & {
        *read}
    with open(tmp_path / "run.json") as file:
        record = json.load(file)
    assert record["replaced"] == {"history.json": _sha256(b"[1]"),
                                  "params.pt": _sha256(b"weights 1")}
    assert record["files"] == {"history.json": _sha256(b"[1, 2]"),
                               "params.pt": _sha256(b"weights 2")}
    del record["stats"]
    with open(tmp_path / "run.json", "w") as file:
        json.dump(record, file)
    read.clear()
    _save_checkpoint_files(tmp_path, {"history.json": b"[1, 2, 3]", "params.pt": b"weights 3"})
    assert {tmp_path / "history.json", tmp_path / "params.pt"} <= {*read}
    with open(tmp_path / "run.json") as file:
        assert json.load(file)["replaced"] == {"history.json": _sha256(b"[1, 2]"),
                                               "params.pt": _sha256(b"weights 2")}


@pytest.mark.parametrize("change", ["size", "time", "inode", "same tick as the run file"])
def test_a_checkpoint_file_changed_behind_its_run_file_is_read_and_a_mix_refused(
        tmp_path, monkeypatch, change):
    """A file replaced by a save is read again when it may have changed since the run file
    recorded it: another size, time or inode, or a time not before the run file's (a write in
    the same tick of the clock keeps it). Its digest is then of its bytes, and a save cut off
    after the renames of some of its files still leaves files refused as of two saves."""
    from brainjepa_sk._skorch import check_saved_together

    params = tmp_path / "params.pt"
    # in the same tick as the run file: timed after it (as a clock's tick holds both)
    future_ns = time.time_ns() + 10**10
    _save_checkpoint_files(tmp_path, {"history.json": b"[1]", "params.pt": b"weights 1"},
                           written_ns=future_ns if change.startswith("same") else None)
    recorded = params.stat()
    if change == "size":
        params.write_bytes(b"weights 1, changed")
    elif change == "inode":  # another file moved over it (as a save does), given its time
        (tmp_path / "other.pt").write_bytes(b"weights X")
        os.replace(tmp_path / "other.pt", params)
    else:  # rewritten in place, the same size
        params.write_bytes(b"weights X")
    # the time recorded, or (a copy that keeps its source's time) one before the run file's
    then = recorded.st_mtime_ns - (10**9 if change == "time" else 0)
    os.utime(params, ns=(then, then))
    changed = params.read_bytes()
    read = _files_read(monkeypatch)
    _params_not_replaced(monkeypatch)
    with pytest.raises(PermissionError):
        _save_checkpoint_files(tmp_path, {"history.json": b"[1, 2]", "params.pt": b"weights 2"})
    monkeypatch.undo()
    assert params in read
    # the history, unchanged, is known unless it was timed in the run file's tick
    assert (tmp_path / "history.json" in read) == change.startswith("same")
    with open(tmp_path / "run.json") as file:
        assert json.load(file)["replaced"]["params.pt"] == _sha256(changed)
    assert params.read_bytes() == changed
    checkpoint = SimpleNamespace(dirname=str(tmp_path), fn_prefix="")
    with pytest.raises(ValueError, match=r"are of two saves, which are not loaded together: "
                                         r"history\.json of the last save, params\.pt of the "
                                         r"save before it"):
        check_saved_together(checkpoint, [params, tmp_path / "history.json"])


def test_a_resume_does_not_read_the_checkpoint_files_its_run_file_records_unchanged(
        tmp_path, monkeypatch):
    """The files a resume loads are checked against the run file's digests: those it records
    as written, unchanged since, are not read again (a ViT-B's weights and optimizer are over
    1 GB); a save cut off between its renames is still refused, its files of the save before
    read; a run file of an earlier version, without the files' stats, has them read."""
    import brainjepa_sk._skorch as skorch_glue
    from brainjepa_sk._skorch import check_saved_together

    files = [tmp_path / "history.json", tmp_path / "params.pt"]
    _save_checkpoint_files(tmp_path, {"history.json": b"[1]", "params.pt": b"weights 1"})
    checkpoint = _save_checkpoint_files(
        tmp_path, {"history.json": b"[1, 2]", "params.pt": b"weights 2"})
    read = _files_read(monkeypatch)
    check_saved_together(checkpoint, [*files, os.fspath(files[1])])
    assert read == []
    # cut off after the run file and the history were renamed: the weights are of the save
    # before, and are the only file read
    move = _params_not_replaced(monkeypatch)
    with pytest.raises(PermissionError):
        _save_checkpoint_files(tmp_path, {"history.json": b"[1, 2, 3]", "params.pt": b"w 3"})
    monkeypatch.setattr(skorch_glue, "move_into_place", move)
    read.clear()
    with pytest.raises(ValueError, match=r"are of two saves, which are not loaded together: "
                                         r"history\.json of the last save, params\.pt of the "
                                         r"save before it"):
        check_saved_together(checkpoint, files)
    assert read == [files[1]]
    with open(tmp_path / "run.json") as file:
        record = json.load(file)
    del record["stats"]
    with open(tmp_path / "run.json", "w") as file:
        json.dump(record, file)
    read.clear()
    with pytest.raises(ValueError, match="are of two saves"):
        check_saved_together(checkpoint, files)
    assert sorted(read) == files


@pytest.mark.parametrize("change", [
    "rewritten in place, the same size", "replaced by a rename, given its time",
    "restored in place from a copy of the save before, with its time",
    "timed in the run file's tick"])
def test_a_checkpoint_file_changed_behind_its_run_file_is_read_at_a_resume(
        tmp_path, monkeypatch, change):
    """A file that may have changed since the run file recorded it is read at a resume, and
    found of the save it is of: another time (rewritten; a copy that keeps the time of the
    save it was copied from), another inode (a file moved over it, even given the time
    recorded), or a time not before the run file's (a write in the same tick keeps it)."""
    import shutil

    from brainjepa_sk._skorch import check_saved_together

    params, history = tmp_path / "params.pt", tmp_path / "history.json"
    _save_checkpoint_files(tmp_path, {"history.json": b"[1]", "params.pt": b"weights 1"})
    shutil.copy2(params, tmp_path / "backup.pt")  # as cp -p
    # in the same tick as the run file: timed after it (as a clock's tick holds both)
    written_ns = time.time_ns() + 10**10 if change.startswith("timed") else None
    checkpoint = _save_checkpoint_files(
        tmp_path, {"history.json": b"[1, 2]", "params.pt": b"weights 2"}, written_ns=written_ns)
    recorded = params.stat()
    if change.startswith("rewritten"):
        params.write_bytes(b"weights X")
    elif change.startswith("replaced"):
        (tmp_path / "other.pt").write_bytes(b"weights X")
        os.utime(tmp_path / "other.pt", ns=(recorded.st_mtime_ns, recorded.st_mtime_ns))
        os.replace(tmp_path / "other.pt", params)
    elif change.startswith("restored"):
        shutil.copy2(tmp_path / "backup.pt", params)  # written into the file in place
        assert params.stat().st_ino == recorded.st_ino
    assert params.stat().st_size == recorded.st_size
    read = _files_read(monkeypatch)
    if change.startswith("timed"):
        check_saved_together(checkpoint, [params, history])
        assert sorted(read) == [history, params]
        return
    if change.startswith("restored"):
        with pytest.raises(ValueError, match=r"are of two saves, which are not loaded "
                                             r"together: history\.json of the last save, "
                                             r"params\.pt of the save before it"):
            check_saved_together(checkpoint, [params, history])
    else:  # of neither save: left to the load
        check_saved_together(checkpoint, [params, history])
    # the history, unchanged, is known
    assert read == [params]


def test_a_copied_checkpoint_folder_is_read_at_a_resume_and_resumes(tmp_path, monkeypatch):
    """A checkpoint's folder copied with its files' times kept (cp -p, rsync -a) holds other
    files (other inodes) than its run file records: they are read, and load."""
    import shutil

    from brainjepa_sk._skorch import check_saved_together

    _save_checkpoint_files(tmp_path / "run", {"history.json": b"[1]", "params.pt": b"w 1"})
    _save_checkpoint_files(tmp_path / "run", {"history.json": b"[1, 2]", "params.pt": b"w 2"})
    shutil.copytree(tmp_path / "run", tmp_path / "copy")  # copy2: the times kept
    files = [tmp_path / "copy" / "history.json", tmp_path / "copy" / "params.pt"]
    assert files[1].stat().st_mtime_ns == (tmp_path / "run" / "params.pt").stat().st_mtime_ns
    read = _files_read(monkeypatch)
    check_saved_together(SimpleNamespace(dirname=str(tmp_path / "copy"), fn_prefix=""), files)
    assert sorted(read) == files


@pytest.mark.parametrize("given", [None, 3, b"model.pt"], ids=["None", "int", "bytes"])
def test_a_path_parameter_given_no_path_is_named(tmp_path, given):
    """os.fspath's "expected str, bytes or os.PathLike object, not NoneType" named no
    parameter (and a number given to file_stamp was read as a file descriptor)."""
    from brainjepa_sk import files
    from brainjepa_sk.checkpoint import export_training_state, load_research_checkpoint
    from brainjepa_sk.train import (
        Checkpoint,
        find_shorter_run,
        read_training_state,
        unfinished_runs,
    )

    good = tmp_path / "model.pt"
    save_checkpoint(good, tiny_module())
    got = "None" if given is None else f"an? {type(given).__name__}"
    calls = [
        ("path", "a file's path", lambda: load_checkpoint(given)),
        ("path", "a file's path", lambda: load_research_checkpoint(given, np.ones((8, 3)))),
        ("path", "a file's path", lambda: save_checkpoint(given, tiny_module())),
        ("state_path", "a file's path", lambda: export_training_state(given, good)),
        ("path", "a file's path", lambda: export_training_state(good, given)),
        ("path", "a file's path", lambda: read_training_state(given)),
        ("path", "a file's path", lambda: Checkpoint(given, "key")),
        ("folder", "a folder's path", lambda: unfinished_runs(given)),
        ("folder", "a folder's path", lambda: find_shorter_run(given, "key", 3)),
        ("path", "a file's path", lambda: files.read_subject_file(given)),
        ("pattern", "a path or a glob", lambda: files.expand_subject_paths(given)),
        ("path", "a file's path", lambda: files.file_stamp(given)),
    ]
    for name, what, call in calls:
        with pytest.raises(TypeError, match=rf"^{name} must be {what} \(a str or path-like\), "
                                            rf"got {got}$"):
            call()
