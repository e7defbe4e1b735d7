"""Checkpoint files: nothing in them runs, damage anywhere in them is refused (and called
damage), writes are atomic and durable, and a write the disk refuses says so."""
import errno
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import pytest
import torch

from colgraph import checkpoint
from colgraph.checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_NAME, CheckpointWriteError,
                                 ensure_writable, load_checkpoint, remove_stale_tmp,
                                 save_checkpoint, tensor_digest)
from colgraph.training import train

from conftest import TINY, compose

STATE = {"colgraph_version": "x", "checkpoint_format": CHECKPOINT_FORMAT, "step": 1,
         "model": {"w": torch.arange(4000, dtype=torch.float32), "b": torch.ones(3)},
         "rng": {"torch": torch.get_rng_state()}}


class _Payload:
    """Unpickling this runs ``touch MARKER``: what an attacker plants in a checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    evil = {**STATE, "model": {"w": torch.ones(2), "x": _Payload(marker)}}
    torch.save(evil, tmp_path / CHECKPOINT_NAME)  # a valid torch zip with a payload inside
    for attempt in (lambda: load_checkpoint(tmp_path),
                    lambda: train(compose(TINY + [f"train.resume={tmp_path}"]), tmp_path / "r"),
                    lambda: __import__("colgraph.restore").restore.load_model(tmp_path),
                    lambda: __import__("colgraph.connectome").connectome.to_networkx(tmp_path)):
        with pytest.raises(ValueError, match="Refusing to load .*could run code"):
            attempt()
    assert not marker.exists()
    # the same payload pickled the old way (no zip) is refused before unpickling, too
    (tmp_path / "old.pt").write_bytes(pickle.dumps(evil))
    with pytest.raises(ValueError, match="not a torch.save zip archive"):
        load_checkpoint(tmp_path / "old.pt")
    assert not marker.exists()


def test_round_trip_verifies_every_tensor(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, STATE)
    state = load_checkpoint(path)
    assert torch.equal(state["model"]["w"], STATE["model"]["w"]) and state["step"] == 1
    assert "checksums" not in state  # checked and dropped


def _flip_byte_in(path, member_suffix, offset=10):
    """Flip one byte inside a tensor's storage record of the zip (the pickle untouched)."""
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member_suffix))
    raw = bytearray(path.read_bytes())
    # a stored (uncompressed) record: 30-byte local header + name + extra, then the data
    name_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    at = info.header_offset + 30 + name_len + extra_len + offset
    raw[at] ^= 0x40
    path.write_bytes(bytes(raw))


def test_corrupted_tensor_is_refused_and_named(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, STATE)
    with zipfile.ZipFile(path) as z:  # the biggest storage record is model/w's
        big = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    _flip_byte_in(path, big.filename)
    with pytest.raises(ValueError, match=r"corrupted: tensor 'model/w' \[4000\] fails its SHA-256"):
        load_checkpoint(path)


@pytest.mark.parametrize("content,match", [
    (b"", "is empty"),
    (b"this is a text file, not a checkpoint\n", "not a torch.save zip archive"),
    (None, "corrupted"),  # a real checkpoint cut in half
])
def test_damaged_files_get_a_clear_error(tmp_path, content, match):
    path = tmp_path / CHECKPOINT_NAME
    if content is None:
        save_checkpoint(path, STATE)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] + data[-200:])  # keeps the zip's end record
        if not zipfile.is_zipfile(path):
            match = "not a torch.save zip archive"
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_checkpoint(path)


def test_checkpoint_without_checksums_is_refused(tmp_path):
    torch.save(STATE, tmp_path / CHECKPOINT_NAME)  # format 4 but not written by colgraph
    with pytest.raises(ValueError, match="has no checksums"):
        load_checkpoint(tmp_path)


def test_save_syncs_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("replace") or real_replace(a, b))
    save_checkpoint(tmp_path / CHECKPOINT_NAME, STATE)
    assert events[:2] == ["fsync", "replace"]  # file data on disk before it replaces the old
    assert events[2:] == ["fsync"]  # then the directory entry


def test_stale_tmp_is_removed_at_start(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / (CHECKPOINT_NAME + ".tmp")).write_bytes(b"partial")
    train(compose(TINY + ["train.max_steps=1"]), run)
    assert not (run / (CHECKPOINT_NAME + ".tmp")).exists()
    assert "partial checkpoint left by a crash" in capsys.readouterr().out
    assert not remove_stale_tmp(run / CHECKPOINT_NAME)


def test_sigkill_mid_write_keeps_the_last_good_checkpoint(tmp_path):
    """A real process killed while writing: the old checkpoint still loads."""
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, STATE)
    code = (
        "import os, signal, torch\n"
        "from colgraph.checkpoint import save_checkpoint\n"
        "real = torch.save\n"
        "def dying(obj, f, *a, **k):\n"
        "    f.write(b'half a checkpoint'); f.flush(); os.kill(os.getpid(), signal.SIGKILL)\n"
        "torch.save = dying\n"
        f"save_checkpoint({str(path)!r}, {{'colgraph_version': 'x', 'checkpoint_format': "
        f"{CHECKPOINT_FORMAT}, 'step': 2}})\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    assert load_checkpoint(path)["step"] == 1
    assert (tmp_path / (CHECKPOINT_NAME + ".tmp")).exists()  # what train() cleans up


# ---- the whole payload is checksummed (issue 21, class 3) -------------------------------

CONFIGURED = {**STATE, "epoch": 2, "batch": 5, "config": {"optim": {"lr": 0.002}},
              "plasticity": {"last_update": 40, "lam": 0.5}, "metrics": {"test_acc": 0.5}}


def _patch_pickle(path, old: bytes, new: bytes):
    """Replace the first ``old`` in the checkpoint's pickle by ``new`` (same length): a
    byte-level edit, CRC and all left as they were."""
    assert len(old) == len(new)
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("data.pkl"))
    raw = bytearray(path.read_bytes())
    name_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    at = raw.index(old, start, start + info.compress_size)
    raw[at:at + len(old)] = new
    path.write_bytes(bytes(raw))


def test_a_flipped_bit_in_the_config_is_refused(tmp_path):
    """The issue's example: one bit of optim.lr's float in the pickle. torch reads the
    file without complaint (and another lr); the checksum of 'config' does not match."""
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, CONFIGURED)
    lr = struct.pack(">d", 0.002)
    _patch_pickle(path, b"G" + lr, b"G" + lr[:7] + bytes([lr[7] ^ 1]))
    raw = torch.load(path, weights_only=True)
    assert raw["config"]["optim"]["lr"] != 0.002  # silently another value without checksums
    with pytest.raises(ValueError, match=r"corrupted: its 'config' fails the SHA-256 checksum"):
        load_checkpoint(path)


@pytest.mark.parametrize("key,value", [("epoch", -3), ("batch", 10**6), ("step", 10**9),
                                       ("step", 2), ("metrics", {"test_acc": 0.9}),
                                       ("rng", {**STATE["rng"], "python": (3, (1,), None)}),
                                       ("plasticity", None), ("colgraph_version", "9.9")])
def test_an_edited_counter_or_entry_is_refused(tmp_path, key, value):
    """Edited the easy way (torch.load, change, torch.save: the checksums kept): refused,
    naming the entry; the range checks where the counters are used come on top of this."""
    path = _edited(tmp_path, lambda state: state.__setitem__(key, value))
    with pytest.raises(ValueError, match=f"corrupted: its '{key}' fails the SHA-256"):
        load_checkpoint(path)


def _edited(tmp_path, edit):
    """CONFIGURED saved, loaded with torch.load, changed by ``edit``, saved with torch.save."""
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, CONFIGURED)
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)
    return path


@pytest.mark.parametrize("edit,match", [
    (lambda s: s.update(extra=1), "does not match its checksums: unexpected entry 'extra'"),
    (lambda s: s.pop("epoch"), "does not match its checksums: missing entry 'epoch'"),
    (lambda s: s.update(epoch_=s.pop("epoch")), "missing entry 'epoch'; unexpected entry "
                                                "'epoch_'"),
    (lambda s: s.update(key_checksums="garbage"), "'key_checksums' are damaged"),
    (lambda s: s.update(checksums={"model/w": 3}), "'checksums' are damaged"),
    (lambda s: s.pop("key_checksums"), "has no checksums"),  # a format-5 file without them
])
def test_added_renamed_or_removed_entries_are_refused(tmp_path, edit, match):
    with pytest.raises(ValueError, match=match):
        load_checkpoint(_edited(tmp_path, edit))


def test_a_damaged_checksum_table_name_is_damage(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, CONFIGURED)
    _patch_pickle(path, b"key_checksums", b"key_checksumz")
    with pytest.raises(ValueError, match="corrupted: its checksums are stored under the "
                                         "damaged name 'key_checksumz'"):
        load_checkpoint(path)


def test_checksums_are_canonical(tmp_path):
    """Dict and set order do not matter (sets of strings are ordered by a per-process hash:
    checked in another process too); a value's type does (1 vs 1.0 vs True)."""
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, {**STATE, "x": {"b": 1, "a": [1.5, float("nan")], "s": {3, 1, 2}}})
    state = torch.load(path, weights_only=True)
    torch.save({**state, "x": {"a": [1.5, float("nan")], "s": {2, 1, 3}, "b": 1}}, path)
    assert load_checkpoint(path)["x"]["b"] == 1  # reordered: the same checkpoint
    for other in (1.0, True, "1"):
        torch.save({**state, "x": {"a": [1.5, float("nan")], "s": {1, 2, 3}, "b": other}}, path)
        with pytest.raises(ValueError, match="its 'x' fails"):
            load_checkpoint(path)
    save_checkpoint(path, {**STATE, "x": {"words": {f"w{i}" for i in range(50)}}})
    code = f"from colgraph.checkpoint import load_checkpoint; load_checkpoint({str(path)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert proc.returncode == 0, proc.stderr


def write_format4(path, state):
    """What colgraph wrote as checkpoint format 4: checksums over tensors only."""
    state = {**state, "checkpoint_format": 4}
    torch.save({**state, "checksums": {k: tensor_digest(t)
                                       for k, t in checkpoint._tensors(state)}}, path)


def test_older_formats_still_load_with_a_warning(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    write_format4(path, CONFIGURED)
    with pytest.warns(UserWarning, match="format 4: its tensors are verified, but not its "
                                         "config, counters"):
        state = load_checkpoint(path)
    assert state["epoch"] == 2 and state["checkpoint_format"] == 4
    with zipfile.ZipFile(path) as z:  # a format-4 tensor is still checked
        big = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    _flip_byte_in(path, big.filename)
    with pytest.raises(ValueError, match="corrupted: tensor 'model/w'"):
        load_checkpoint(path)
    torch.save({**CONFIGURED, "checkpoint_format": 3}, path)
    with pytest.warns(UserWarning, match="format 3 \\(before checksums\\)"):
        assert load_checkpoint(path)["step"] == 1
    # saving what was loaded writes the current format, with every checksum
    save_checkpoint(path, {**CONFIGURED, "checkpoint_format": 4})
    assert load_checkpoint(path)["checkpoint_format"] == CHECKPOINT_FORMAT


def test_a_flipped_opcode_is_damage_not_an_attack(tmp_path):
    """Damage the pickle reader trips over is reported as damage, with the path: an
    unknown opcode, a garbled global name (a known one a byte off), a cut pickle."""
    path = tmp_path / CHECKPOINT_NAME
    for old, new in ((b"q\x00", b"\xff\x00"),  # the first BINPUT becomes no opcode at all
                     (b"_rebuild_tensor_v2", b"_rebuild_tensor_w2"),
                     (b"OrderedDict", b"OrderedDicu")):
        save_checkpoint(path, CONFIGURED)
        _patch_pickle(path, old, new)
        with pytest.raises(ValueError, match=f"{path} is corrupted \\(damaged or truncated\\)") as e:
            load_checkpoint(path)
        assert "could run code" not in str(e.value)


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_pickled_object_is_still_refused_as_code(tmp_path, protocol):
    """A class global (any pickle protocol) is what could run code: named, never built."""
    marker = tmp_path / "pwned"
    evil = {**STATE, "rng": _Payload(marker)}
    torch.save(evil, tmp_path / CHECKPOINT_NAME, pickle_protocol=protocol)
    with pytest.warns() if protocol != 2 else _nothing():
        with pytest.raises(ValueError, match=r"Refusing to load .*could run code when loaded "
                                             r"\(posix\.system\)"):
            load_checkpoint(tmp_path)
    assert not marker.exists()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("content,match", [
    ([1, 2, 3], "it holds a list, not a dict"),
    ("a string", "it holds a str, not a dict"),
    ({"checkpoint_format": CHECKPOINT_FORMAT}, "no 'colgraph_version' key"),
    ({"colgraph_version": "x", "checkpoint_format": "5"}, "checkpoint format '5'"),
    ({"colgraph_version": "x", "checkpoint_format": 99}, "checkpoint format 99"),
])
def test_wrong_contents_are_refused(tmp_path, content, match):
    torch.save(content, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(ValueError, match=match):
        load_checkpoint(tmp_path)


def test_truncated_anywhere_is_damage(tmp_path):
    """Cut at every tenth of the file: a clear refusal each time, never an internal error."""
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, CONFIGURED)
    data = path.read_bytes()
    for cut in range(1, 10):
        path.write_bytes(data[: len(data) * cut // 10])
        with pytest.raises(ValueError, match="not a torch.save zip archive|corrupted"):
            load_checkpoint(path)


def test_deeply_nested_contents_are_refused(tmp_path):
    """Lists in lists 5000 deep (torch's reader builds them without recursion): refused,
    not a RecursionError."""
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(30_000)  # for torch.save's pickler only
    try:
        torch.save({**STATE, "checksums": {}, "key_checksums": {}, "x": deep},
                   tmp_path / CHECKPOINT_NAME)
    finally:
        sys.setrecursionlimit(limit)
    with pytest.raises(ValueError, match="nested too deeply"):
        load_checkpoint(tmp_path)


# ---- writes the disk refuses (issue 21, class 9) ----------------------------------------

def test_disk_full_mid_save_keeps_the_last_good_checkpoint(tmp_path):
    """A real ENOSPC from the kernel, inside torch's zip writer (its own error is 'unexpected
    pos ...'): the error says the disk is full and that the last checkpoint is intact."""
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, STATE)
    tmp = tmp_path / (CHECKPOINT_NAME + ".tmp")
    tmp.symlink_to("/dev/full")  # every write to the partial file fails: a full disk
    with pytest.raises(CheckpointWriteError, match=r"Could not write the checkpoint .*: the "
                       r"disk is full .*errno 28\). The last good checkpoint, .*, is intact\. "
                       r"Free space .*then resume from it with train.resume=") as e:
        save_checkpoint(path, {**STATE, "step": 2})
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, OSError)
    assert not tmp.exists() and not tmp.is_symlink()  # the partial file is gone
    assert load_checkpoint(path)["step"] == 1


@pytest.mark.parametrize("where,code,match", [
    ("open", errno.EROFS, "the file system is read-only"),
    ("open", errno.EACCES, "permission denied"),
    ("fsync", errno.ENOSPC, "the disk is full"),
    ("fsync", errno.EIO, "Input/output error"),
    ("replace", errno.EROFS, "the file system is read-only"),
    ("replace", errno.EDQUOT, "quota"),
])
def test_every_write_step_that_fails_says_why(tmp_path, monkeypatch, where, code, match):
    """Tests run as root, where chmod does not stop a write: the file system's refusal is
    simulated at each step of the save (open, fsync, rename)."""
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, STATE)

    def refuse(*args, **kwargs):
        raise (PermissionError if code == errno.EACCES else OSError)(code, os.strerror(code))

    if where == "open":
        monkeypatch.setattr(checkpoint, "open", refuse, raising=False)
    else:
        monkeypatch.setattr(checkpoint.os, where, refuse)
    with pytest.raises(CheckpointWriteError, match=match) as e:
        save_checkpoint(path, {**STATE, "step": 2})
    monkeypatch.undo()
    assert f"The last good checkpoint, {path}, is intact" in str(e.value)
    assert e.value.errno == code
    assert load_checkpoint(path)["step"] == 1
    assert not (tmp_path / (CHECKPOINT_NAME + ".tmp")).exists()


def test_first_save_that_fails_says_there_is_no_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint.os, "fsync", lambda fd: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(CheckpointWriteError, match="No checkpoint was written before this one"):
        save_checkpoint(tmp_path / CHECKPOINT_NAME, STATE)


def test_an_error_that_is_not_the_disk_is_not_disguised(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint.torch, "save", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("something else")))
    with pytest.raises(RuntimeError, match="something else"):
        save_checkpoint(tmp_path / CHECKPOINT_NAME, STATE)


def test_read_only_run_directory_is_refused_before_any_work(tmp_path, monkeypatch):
    run = tmp_path / "run"

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(checkpoint, "open", read_only, raising=False)
    with pytest.raises(CheckpointWriteError, match=f"Cannot write the run directory {run}: the "
                                                   f"file system is read-only"):
        train(compose(TINY + ["train.max_steps=1"]), run)
    assert not (run / "metrics.csv").exists() and not list(run.iterdir())  # nothing left


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"),
                    reason="needs root to run a process as another user")
def test_a_directory_without_write_permission_is_refused(tmp_path):
    """The real thing: chmod 0o555, checked by a process of an ordinary user."""
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o555)
    tmp_path.chmod(0o755)
    code = ("from colgraph.checkpoint import ensure_writable\n"
            f"ensure_writable({str(run)!r})\n")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "HOME": str(tmp_path)}, cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "CheckpointWriteError: Cannot write the run directory" in proc.stderr
    assert "permission denied" in proc.stderr and "chmod u+w" in proc.stderr
    assert ensure_writable(run) == run and list(run.iterdir()) == []  # root may; no probe left


def test_a_loaded_state_can_be_written_back(tmp_path):
    """The way to change a stored value on purpose: load, change, save_checkpoint (the
    checksums are recomputed; the 'path' load_checkpoint adds is not stored)."""
    save_checkpoint(tmp_path / CHECKPOINT_NAME, CONFIGURED)
    state = load_checkpoint(tmp_path)
    state["config"]["optim"]["lr"] = 0.01
    save_checkpoint(tmp_path / "b.pt", state)
    again = load_checkpoint(tmp_path / "b.pt")
    assert again["config"]["optim"]["lr"] == 0.01 and again["path"] == str(tmp_path / "b.pt")
    assert "path" not in torch.load(tmp_path / "b.pt", weights_only=True)
