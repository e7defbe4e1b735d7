"""Checkpoint files: nothing in them runs, damage is refused, writes are atomic and durable."""
import os
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

from colgraph.checkpoint import (CHECKPOINT_FORMAT, CHECKPOINT_NAME, load_checkpoint,
                                 remove_stale_tmp, save_checkpoint)
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
