"""Cortical surfaces in (GIFTI, FreeSurfer, nilearn's fsaverage5), per-vertex data out."""
import numpy as np
import pytest
import torch

nib = pytest.importorskip("nibabel")

from colgraph.geometry import (exponential, from_mesh, from_surface, read_parcellation,
                               write_vertex_data)


def octahedron():
    verts = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                     dtype=np.float32)
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5],
                      [3, 1, 5], [0, 3, 5]], dtype=np.int32)
    return verts, faces


def write_gifti(path, verts, faces):
    img = nib.gifti.GiftiImage(darrays=[
        nib.gifti.GiftiDataArray(verts, intent="NIFTI_INTENT_POINTSET"),
        nib.gifti.GiftiDataArray(faces, intent="NIFTI_INTENT_TRIANGLE")])
    nib.save(img, path)


def test_gifti_and_freesurfer_surfaces_give_the_mesh_sheet(tmp_path):
    verts, faces = octahedron()
    reference = from_mesh(verts, faces, geodesic=True)
    write_gifti(tmp_path / "lh.test.surf.gii", verts, faces)
    nib.freesurfer.write_geometry(str(tmp_path / "lh.pial"), verts, faces)
    for source in (tmp_path / "lh.test.surf.gii", str(tmp_path / "lh.pial"), (verts, faces),
                   nib.load(tmp_path / "lh.test.surf.gii")):
        geo = from_surface(source)
        assert torch.equal(geo.edge_index, reference.edge_index), source
        assert torch.allclose(geo.edge_length, reference.edge_length)
    assert from_surface(tmp_path / "lh.pial").name == "lh.pial(6 vertices)"


def test_parcellations_become_areas(tmp_path):
    verts, faces = octahedron()
    labels = np.array([0, 0, 1, 1, 2, -1])  # vertex 5 in no parcel
    ctab = np.array([[20, 30, 40, 0, 0], [255, 0, 0, 0, 0], [0, 255, 0, 0, 0]])
    nib.freesurfer.write_annot(str(tmp_path / "lh.test.annot"), labels, ctab,
                               [b"V1", b"V2", b"MT"], fill_ctab=True)
    parcels = read_parcellation(tmp_path / "lh.test.annot")
    assert {k: v.tolist() for k, v in parcels.items()} == {"V1": [0, 1], "V2": [2, 3], "MT": [4]}
    geo = from_surface((verts, faces), parcellation=tmp_path / "lh.test.annot",
                       areas={"input": [0, 1], "output": [4]})
    assert geo.area("V2").tolist() == [2, 3] and geo.area("input").tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"Parcel 'far' names vertices up to 99, but the "
                                         r"surface has 6"):
        from_surface((verts, faces), parcellation={"far": [1, 99]})


def test_bad_surface_files_are_refused(tmp_path):
    (tmp_path / "junk.surf.gii").write_text("<not gifti")
    with pytest.raises(ValueError, match=r"Cannot read the surface .*junk.surf.gii"):
        from_surface(tmp_path / "junk.surf.gii")
    (tmp_path / "lh.junk").write_bytes(b"\x00\x01garbage")
    with pytest.raises(ValueError, match=r"Cannot read the surface .*FreeSurfer surface"):
        from_surface(tmp_path / "lh.junk")
    with pytest.raises(FileNotFoundError, match=r"Surface file not found"):
        from_surface(tmp_path / "missing.gii")
    data = nib.gifti.GiftiImage(darrays=[nib.gifti.GiftiDataArray(np.zeros(6, np.float32))])
    nib.save(data, tmp_path / "thick.func.gii")
    with pytest.raises(ValueError, match=r"holds no mesh"):
        from_surface(tmp_path / "thick.func.gii")
    with pytest.raises(TypeError, match=r"from_surface expects a surface file"):
        from_surface(42)
    verts, _ = octahedron()
    with pytest.raises(ValueError, match=r"has 6 vertices but no faces"):
        from_surface((verts, np.zeros((0, 3), dtype=np.int64)))


def test_vertex_data_round_trips(tmp_path):
    values = {"receptive_field": np.arange(6.0), "community": np.array([0, 0, 1, 1, 2, 2.0])}
    gii = write_vertex_data(values, tmp_path / "metrics.func.gii")
    img = nib.load(gii)
    assert [d.meta["Name"] for d in img.darrays] == ["receptive_field", "community"]
    assert np.allclose(img.darrays[0].data, values["receptive_field"])
    write_vertex_data(values["community"], tmp_path / "c.npy")
    assert np.allclose(np.load(tmp_path / "c.npy"), values["community"])
    write_vertex_data(values, tmp_path / "m.npz")
    assert set(np.load(tmp_path / "m.npz")) == set(values)
    with pytest.raises(ValueError, match=r"one length .*receptive_field: \[6\], x: \[5\]"):
        write_vertex_data({"receptive_field": np.zeros(6), "x": np.zeros(5)}, tmp_path / "a.npz")
    with pytest.raises(ValueError, match=r"A .npy file holds one array"):
        write_vertex_data(values, tmp_path / "m.npy")
    with pytest.raises(ValueError, match=r"Unsupported file 'm.csv'"):
        write_vertex_data(values, tmp_path / "m.csv")


def test_fsaverage5_from_nilearn_offline():
    datasets = pytest.importorskip("nilearn.datasets")
    mesh = datasets.fetch_surf_fsaverage("fsaverage5")  # shipped inside nilearn
    geo = from_surface(mesh["pial_left"])
    assert geo.num_columns == 10242 and geo.num_edges == 2 * 30720  # 3F/2 mesh edges
    assert 0.5 < float(geo.edge_length.median()) < 10  # millimetres
    wired = geo.with_wiring(exponential(m=2, lam=20.0))
    assert wired.num_edges == geo.num_edges + 2 * 10242
