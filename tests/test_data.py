import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from colgraph.data import DATASETS, iterate_batches, load_data


def data_cfg(**kw):
    base = {"name": "digits", "path": None, "root": "data", "download": False,
            "test_fraction": 0.2, "split_seed": 0}
    return OmegaConf.create({**base, **kw})


def test_digits_fixed_split():
    a, b = load_data(data_cfg()), load_data(data_cfg())
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert torch.equal(a.y_test, b.y_test) and a.num_classes == 10
    assert abs(float(a.x_train.mean())) < 1e-4  # standardised with train statistics


@pytest.mark.parametrize("suffix", [".pt", ".npz"])
def test_user_file(tmp_path, suffix):
    x = np.random.rand(50, 4, 4).astype(np.float32)
    y = np.arange(50) % 3
    path = tmp_path / f"data{suffix}"
    if suffix == ".pt":
        torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, path)
    else:
        np.savez(path, x=x, y=y)
    data = load_data(data_cfg(name="file", path=str(path)))
    assert data.sample_shape == (1, 4, 4) and data.num_classes == 3
    assert len(data.x_train) + len(data.x_test) == 50


def test_user_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Data file not found"):
        load_data(data_cfg(name="file", path=str(tmp_path / "nope.pt")))
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match=r"lacks \['x', 'y'\]"):
        load_data(data_cfg(name="file", path=str(tmp_path / "bad.npz")))
    with pytest.raises(ValueError, match="data.path"):
        load_data(data_cfg(name="file"))


def test_unknown_data_set_lists_choices():
    with pytest.raises(ValueError, match="Unknown data set 'digit'. Choices: digits, file, mnist"):
        load_data(data_cfg(name="digit"))


def test_iterate_batches_covers_everything():
    x, y = torch.arange(10).float(), torch.arange(10)
    seen = torch.cat([yb for _, yb in iterate_batches(x, y, 3, shuffle=True,
                                                      generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))


def test_file_samples_are_shaped_for_the_task(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.rand(40, 3, 12).astype(np.float32),
             y=np.arange(40) % 2)
    cfg = data_cfg(name="file", path=str(tmp_path / "d.npz"))
    assert load_data(cfg, "sequence").sample_shape == (3, 12)  # [M, C, L]
    assert load_data(cfg, "image").sample_shape == (1, 3, 12)  # [M, H, W]
    seq = load_data(cfg, "sequence").x_train
    assert torch.allclose(seq.mean((0, 2)), torch.zeros(3), atol=1e-5)  # per channel


def test_image_data_refused_for_a_sequence_task():
    with pytest.raises(ValueError, match="data=digits holds images but the task reads sequences"):
        load_data(data_cfg(), "sequence")


def _file(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, **arrays)
    else:
        torch.save(arrays, path)
    return data_cfg(name="file", path=str(path))


X = np.random.default_rng(0).random((40, 8, 8)).astype(np.float32)
Y = np.arange(40) % 4


def _nan(a, i):
    a = a.copy()
    a[i, 0, 0] = np.nan
    return a


BAD_DATA = [
    ({"x": X, "y": Y, "x_test": np.zeros((10, 16, 16), np.float32), "y_test": Y[:10]},
     r"Test samples have shape \[1, 16, 16\] but training samples \[1, 8, 8\]"),
    ({"x": X, "y": Y, "x_test": X[:10], "y_test": np.r_[Y[:9], 50]},
     r"y_test\[9\] = 50 is a class the training labels never use \(they are 0 .. 3\)"),
    ({"x": X, "y": Y, "x_test": X[:10], "y_test": np.r_[Y[:9], -1]},
     r"Labels must be >= 0: y_test\[9\] = -1"),
    ({"x": X, "y": Y + 0.5}, r"Labels must be integers: y\[0\] = 0.5"),
    ({"x": X, "y": Y[:30]}, r"'x' has 40 samples and 'y' 30 labels"),
    ({"x": X, "y": Y, "x_test": X[:10], "y_test": Y[:8]}, r"'x_test' has 10 samples but "
                                                          r"'y_test' has 8 labels"),
    ({"x": X, "y": Y, "x_test": X[:10]}, r"has 'x_test' but no 'y_test'"),
    ({"x": X, "y": np.where(Y == 3, 1000, Y)}, r"Training labels skip 997 of the classes 0 .. "
                                               r"1000 \(e.g. \[3, 4, 5, 6, 7\]\)"),
    ({"x": _nan(X, 7), "y": Y, "x_test": X[:10], "y_test": Y[:10]},
     r"'x' in .* holds non-finite values \(NaN / inf\) in 1 sample\(s\), the first at index 7"),
    ({"x": X, "y": Y, "x_test": _nan(X[:10], 2), "y_test": Y[:10]},
     r"'x_test' in .* non-finite values .* the first at index 2"),
    ({"x": X[:0], "y": Y[:0]}, r"at least one sample"),
    ({"x": X, "y": Y, "x_test": X[:0], "y_test": Y[:0]}, r"'x_test' in .* holds no samples"),
    ({"x": X, "y": np.r_[Y[:-1], 9][:40] * 0 + np.r_[np.zeros(39, int), 1]},
     r"Class 1 has a single sample"),
    ({"x": np.array(["a"] * 40, dtype=object), "y": Y},
     r"Refusing to load .*could run code .*'x' is an object array"),
    # labels are checked before anything is sized by the class count (was a 7 TB allocation)
    ({"x": X, "y": np.r_[Y[:-1], 10 ** 12]}, r"Training labels skip 999999999996 of the "
                                             r"classes 0 .. 1000000000000 \(e.g. \[4, 5, 6"),
    ({"x": X, "y": np.r_[Y[:-1], 10 ** 12], "x_test": X[:4], "y_test": Y[:4]},
     r"Training labels skip 999999999996 of the classes"),
    ({"x": X, "y": Y, "x_test": X[:4], "y_test": np.r_[Y[:3], 10 ** 12]},
     r"y_test\[3\] = 1000000000000 is a class the training labels never use"),
    ({"x": X, "y": np.r_[Y[:-1], 1e300]}, r"y\[39\] = 1e\+300 in .* is not a class id"),
    ({"x": X, "y": np.r_[Y[:-1].astype(np.uint64), np.array([2 ** 63 + 5], np.uint64)]},
     r"y\[39\] = 9223372036854775813 in .* is not a class id"),
    ({"x": X, "y": Y.astype(str)}, r"got dtype <U21 .*y = np.unique\(y, return_inverse=True\)"),
    ({"x": X + 1j, "y": Y}, r"'x' in .* holds complex numbers \(complex64\): casting them to "
                            r"float would drop the imaginary part"),
    ({"x": X, "y": Y, "x_test": X[:4] + 0j, "y_test": Y[:4]}, r"'x_test' in .* holds complex"),
    ({"x": np.array(3.0), "y": Y}, r"'x' in .* is a single number \(3.0\), not an array"),
    ({"x": X, "y": Y, "x_test": np.array(1.0), "y_test": Y[:1]}, r"'x_test' .* single number"),
    ({"x": np.zeros((40, 0, 8)), "y": Y}, r"'x' in .* has shape \[40, 0, 8\]: its samples hold "
                                          r"no values"),
    ({"x": np.where(np.arange(40)[:, None, None] == 5, 1e300, X.astype(np.float64)), "y": Y},
     r"x\[5, 0, 0\] = 1e\+300 in .* is beyond float32's range"),
    ({"x": X, "y": Y, "x_val": X[:4]}, r"holds \['x_val'\], which data=file does not read: it "
                                       r"reads x, y, x_test, y_test"),
]


@pytest.mark.parametrize("arrays,match", BAD_DATA, ids=range(len(BAD_DATA)))
def test_bad_data_is_refused_at_load_naming_key_and_index(tmp_path, arrays, match):
    with pytest.raises(ValueError, match=match):
        load_data(_file(tmp_path, **arrays))


def test_unreadable_data_files(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="holds a Tensor, not a dict"):
        load_data(data_cfg(name="file", path=str(tmp_path / "bare.pt")))
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"Cannot read data file .*text.npz .*np.savez"):
        load_data(data_cfg(name="file", path=str(tmp_path / "text.npz")))
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"Cannot read data file .*empty.pt"):
        load_data(data_cfg(name="file", path=str(tmp_path / "empty.pt")))


def test_integral_float_labels_are_accepted(tmp_path):
    data = load_data(_file(tmp_path, "d.pt", x=torch.from_numpy(X), y=torch.from_numpy(Y).float()))
    assert data.num_classes == 4 and data.y_train.dtype == torch.long


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_data_set_composes_and_builds(tmp_path, name):
    """Each registered data set composes, validates, loads and feeds a model of a task that
    reads its kind of samples (a tiny file for data=file; those that need a download are
    skipped offline)."""
    from colgraph.config import validate_config
    from colgraph.geometry import build_geometry
    from colgraph.restore import build_model, load_task_data
    from colgraph.tasks import TASKS, task_class

    from conftest import compose

    np.savez(tmp_path / "tiny.npz", x=np.random.rand(20, 8, 8).astype(np.float32),
             y=np.arange(20) % 2)
    download = [f"data.root={tmp_path}", "data.download=false"]  # only what each reads
    own = {"file": [f"data.path={tmp_path / 'tiny.npz'}"], "mnist": download,
           "cifar10": download}
    overrides = [f"data.name={name}", *own.get(name, []), "model.channels=8",
                 "model.steps=3", "geometry.widths=[8,4]", "geometry.wiring.k=6"]
    try:
        raw = DATASETS[name](compose(overrides).data)
    except (ImportError, RuntimeError) as e:  # torchvision absent, or data not downloaded
        pytest.skip(f"data={name} needs a download: {e}")
    modality = raw.modality or "image"  # a file's samples fit either kind
    task = next(t for t in TASKS if task_class(t).modality == modality)
    cfg = compose(overrides + [f"task.name={task}"])
    validate_config(cfg)
    data = load_task_data(cfg)
    assert data.modality == modality and len(data.x_train) > 0
    model = build_model(cfg, build_geometry(cfg.geometry), data.sample_shape, data.num_classes)
    res = model(data.x_train[:4], data.y_train[:4])
    assert torch.isfinite(res.loss), f"data={name}: loss {res.loss}"


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
def test_bad_data_is_refused_from_either_format(tmp_path, suffix):
    cases = [({"x": X, "y": np.r_[Y[:-1], 10 ** 12]}, r"Training labels skip"),
             ({"x": X + 1j, "y": Y}, r"holds complex numbers"),
             ({"x": np.array(3.0), "y": Y}, r"is a single number"),
             ({"x": X, "y": Y, "z": Y}, r"holds \['z'\], which data=file does not read")]
    for arrays, match in cases:
        if suffix == ".pt":
            arrays = {k: torch.as_tensor(v) for k, v in arrays.items()}
        with pytest.raises(ValueError, match=match):
            load_data(_file(tmp_path, "d" + suffix, **arrays))


class Payload:  # a class pickled into a data file: loading it could run code
    pass


def test_pickled_objects_in_a_data_file_get_the_checkpoints_message(tmp_path):
    torch.save({"x": torch.from_numpy(X), "y": torch.from_numpy(Y), "extra": Payload()},
               tmp_path / "obj.pt")
    with pytest.raises(ValueError, match=r"Refusing to load .*obj.pt: it holds Python objects "
                                         r"other than tensors and plain containers, which could "
                                         r"run code when loaded \(.*Payload\). Save plain "
                                         r"tensors"):
        load_data(data_cfg(name="file", path=str(tmp_path / "obj.pt")))
    torch.save({"x": X, "y": Y}, tmp_path / "numpy.pt")  # numpy arrays are pickled objects too
    with pytest.raises(ValueError, match=r"could run code .*numpy.*np.savez"):
        load_data(data_cfg(name="file", path=str(tmp_path / "numpy.pt")))


class _Runs:  # what an attacker plants: unpickling it calls os.system
    def __reduce__(self):
        import os

        return os.system, ("true",)


@pytest.mark.parametrize("content,named", [
    ({"x": torch.from_numpy(X), "y": torch.from_numpy(Y), "f": print}, r"builtin.*print"),
    ({"x": np.array(["a"] * 40, dtype=object), "y": Y}, r"numpy.*_reconstruct"),
    ({"x": np.array([Payload()] * 40, dtype=object), "y": Y}, r"Payload"),
    ({"x": torch.from_numpy(X), "y": _Runs()}, r"posix.system|nt.system"),
])
def test_objects_in_a_pt_file_could_run_code(tmp_path, content, named):
    """A function, a numpy object array, an object inside one, a reduce payload: each is
    refused as code (named), like the same object in a checkpoint; none is built."""
    torch.save(content, tmp_path / "obj.pt")
    with pytest.raises(ValueError, match=f"Refusing to load .*obj.pt: .*could run code when "
                                         f"loaded \\(.*{named}.*\\)"):
        load_data(data_cfg(name="file", path=str(tmp_path / "obj.pt")))


def test_a_bare_pickle_with_a_payload_could_run_code(tmp_path):
    """Not a torch.save archive at all: the same scan of its pickle names the object."""
    import pickle

    with open(tmp_path / "raw.pt", "wb") as f:
        pickle.dump({"x": X, "y": _Runs()}, f)
    with pytest.raises(ValueError, match=r"Refusing to load .*raw.pt: .*could run code"):
        load_data(data_cfg(name="file", path=str(tmp_path / "raw.pt")))
    with open(tmp_path / "plain.pt", "wb") as f:  # a pickle of plain values: not torch's
        pickle.dump({"x": X.tolist(), "y": Y.tolist()}, f)
    with pytest.raises(ValueError, match=r"Cannot read data file .*plain.pt \(.*\)\. Expected "
                                         r"a torch.save file") as e:
        load_data(data_cfg(name="file", path=str(tmp_path / "plain.pt")))
    assert "could run code" not in str(e.value)


def _saved(tmp_path):
    path = tmp_path / "d.pt"
    torch.save({"x": torch.from_numpy(X), "y": torch.from_numpy(Y)}, path)
    return path


@pytest.mark.parametrize("cut", [0.05, 0.3, 0.6, 0.95])
def test_a_truncated_pt_file_is_damaged(tmp_path, cut):
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(ValueError, match=f"Data file {path} is damaged \\(cut short, or bytes "
                                         f"changed\\): the reader failed with .*Copy it again "
                                         f"from its source, or write it again with torch.save") \
            as e:
        load_data(data_cfg(name="file", path=str(path)))
    assert "could run code" not in str(e.value)


@pytest.mark.parametrize("old,new", [(b"q\x00", b"\xff\x00"),  # no opcode at all
                                     (b"_rebuild_tensor_v2", b"_rebuild_tensor_w2"),  # a name
                                     (b"collections", b"collectionr")])
def test_a_flipped_opcode_in_a_pt_file_is_damage_not_code(tmp_path, old, new):
    """The pickle damaged where the weights-only reader refuses it: damage, as for a
    checkpoint, never 'could run code'."""
    from test_checkpoint import _patch_pickle

    path = _saved(tmp_path)
    _patch_pickle(path, old, new)
    with pytest.raises(ValueError, match=f"Data file {path} is damaged .*UnpicklingError") as e:
        load_data(data_cfg(name="file", path=str(path)))
    assert "could run code" not in str(e.value)


def test_every_flipped_bit_of_a_pt_pickle_is_damage_or_a_clear_value_error(tmp_path):
    """Each byte of the pickle flipped in turn: the file loads (a value changed: the data
    checks judge it) or is refused as damage; never as code, never an internal error."""
    import zipfile

    path = _saved(tmp_path)
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("data.pkl"))
    data = path.read_bytes()
    start = data.index(b"PK\x03\x04", info.header_offset)
    start += 30 + int.from_bytes(data[start + 26:start + 28], "little") + \
        int.from_bytes(data[start + 28:start + 30], "little")
    damaged = 0
    for offset in range(info.file_size):
        raw = bytearray(data)
        raw[start + offset] ^= 0x10
        path.write_bytes(bytes(raw))
        try:
            load_data(data_cfg(name="file", path=str(path)))
        except ValueError as e:
            assert "could run code" not in str(e), (offset, str(e))
            damaged += "is damaged" in str(e)
    assert damaged > info.file_size // 2


@pytest.mark.parametrize("how", ["cut", "flip"])
def test_a_damaged_npz_file_is_damaged(tmp_path, how):
    path = tmp_path / "d.npz"
    np.savez(path, x=X, y=Y)
    data = bytearray(path.read_bytes())
    if how == "cut":
        data = data[:len(data) // 2]
    else:
        data[200] ^= 1  # inside x's array data: its CRC fails
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"Data file {path} is damaged .*(BadZipFile|CRC).*"
                                         f"write it again with np.savez"):
        load_data(data_cfg(name="file", path=str(path)))


def test_huge_declared_shapes_are_refused_before_reading(tmp_path):
    """A few bytes can declare terabytes: an .npz header or an expanded tensor."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10 ** 7, 10 ** 6)})
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as z:
        z.writestr("x.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:])
        z.writestr("y.npy", b"")
    with pytest.raises(ValueError, match=r"'x' in .*bomb.npz has shape \[10000000, 1000000\]: "
                                         r".* GiB as float32, more than this machine's memory"):
        load_data(data_cfg(name="file", path=str(tmp_path / "bomb.npz")))
    torch.save({"x": torch.zeros(1).expand(10 ** 12), "y": torch.zeros(3, dtype=torch.long)},
               tmp_path / "expanded.pt")
    with pytest.raises(ValueError, match=r"'x' in .*expanded.pt has shape \[1000000000000\]"):
        load_data(data_cfg(name="file", path=str(tmp_path / "expanded.pt")))


@pytest.mark.parametrize("value,match", [
    (torch.rand(40, 8, 8).to_sparse(), r"'x' in .* is a torch.sparse_coo tensor: save a dense"),
    ([[1.0, 2.0], [3.0]], r"'x' in .* is not an array \(.*inhomogeneous"),
    ({"a": 1}, r"'x' in .* is a dict, not an array of numbers"),
    (torch.empty(40, 8, 8, device="meta"), r"'x' in .* is a torch.float32 tensor on meta that "
                                           r"holds no plain values"),
])
def test_pt_values_that_are_not_arrays(tmp_path, value, match):
    torch.save({"x": value, "y": torch.from_numpy(Y)}, tmp_path / "d.pt")
    with pytest.raises(ValueError, match=match):
        load_data(data_cfg(name="file", path=str(tmp_path / "d.pt")))


def test_a_split_without_room_for_every_class_names_test_fraction(tmp_path):
    cfg = _file(tmp_path, x=X, y=Y)
    cfg.test_fraction = 0.05  # 2 test samples for 4 classes
    with pytest.raises(ValueError, match=r"Cannot split the 40 samples of .*d.npz with "
                                         r"data.test_fraction=0.05: .*change "
                                         r"data.test_fraction, or give 'x_test' / 'y_test'"):
        load_data(cfg)


def test_boolean_and_bfloat16_samples_are_read_as_their_values(tmp_path):
    fixed = {"y": Y, "x_test": X[:8], "y_test": Y[:8]}
    as_bool = load_data(_file(tmp_path, x=X > 0.5, **fixed))
    as_float = load_data(_file(tmp_path, "f.npz", x=(X > 0.5).astype(np.float32), **fixed))
    assert torch.equal(as_bool.x_train, as_float.x_train)
    half = torch.from_numpy(X).to(torch.bfloat16)
    data = load_data(_file(tmp_path, "h.pt", x=half, y=torch.from_numpy(Y)))
    assert data.x_train.dtype == torch.float32 and data.sample_shape == (1, 8, 8)


FIXED = {"x": X, "y": Y, "x_test": X[:8], "y_test": Y[:8]}


@pytest.mark.parametrize("suffix", [".npz", ".pt"])
@pytest.mark.parametrize("moved,match", [
    ({"test_fraction": 0.3}, r"^data.test_fraction=0.3 cannot take effect: .*d\.(npz|pt) has "
                             r"its own test split \('x_test' / 'y_test'\), used as it is \(no "
                             r"split is made\)\. Drop data.test_fraction, or remove 'x_test' / "
                             r"'y_test' from the file to have 'x' / 'y' split\.$"),
    ({"split_seed": 3}, r"^data.split_seed=3 cannot take effect: .* Drop data.split_seed, or"),
    ({"test_fraction": 0.3, "split_seed": 3},
     r"^data.test_fraction=0.3 and data.split_seed=3 cannot take effect: .* Drop "
     r"data.test_fraction and data.split_seed, or"),
])
def test_split_settings_with_a_fixed_test_split_are_refused(tmp_path, suffix, moved, match):
    arrays = FIXED if suffix == ".npz" else {k: torch.as_tensor(v) for k, v in FIXED.items()}
    cfg = _file(tmp_path, "d" + suffix, **arrays)
    cfg.merge_with(moved)
    with pytest.raises(ValueError, match=match):
        load_data(cfg)


def test_split_settings_apply_where_they_are_read(tmp_path):
    """Defaults with a fixed split, and the settings on a file that is split: no refusal."""
    fixed = load_data(_file(tmp_path, **FIXED))
    assert len(fixed.x_test) == 8
    cfg = _file(tmp_path, "s.npz", x=X, y=Y)
    cfg.merge_with({"test_fraction": 0.5, "split_seed": 3})
    assert len(load_data(cfg).x_test) == 20


def test_a_stored_config_with_split_settings_only_warns(tmp_path):
    """A checkpoint's config (read under stored_config) warns: the run already happened."""
    from colgraph.validation import stored_config

    cfg = _file(tmp_path, **FIXED)
    cfg.test_fraction = 0.3
    with stored_config(), pytest.warns(UserWarning, match="The checkpoint's config: "
                                                          "data.test_fraction=0.3 cannot"):
        assert len(load_data(cfg).x_test) == 8
