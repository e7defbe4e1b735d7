"""Cortical surfaces as sheets, and per-vertex data back to the surface tools.

* :func:`from_surface`: a FreeSurfer or GIFTI surface (or an in-memory mesh) -> a sheet, with
  a parcellation (FreeSurfer ``.annot`` / GIFTI ``.label.gii``) as areas.
* :func:`write_vertex_data`: per-column values (receptive-field size, degree, community, ...)
  as a GIFTI functional file or numpy, so nilearn / FreeSurfer / Connectome Workbench draw
  them on the surface.

File reading and writing use nibabel (``pip install "colgraph[surface]"``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import Geometry
from .io import from_mesh

__all__ = ["from_surface", "read_parcellation", "write_vertex_data"]


def _nibabel():
    try:
        import nibabel
    except ImportError:
        raise ImportError('Reading and writing surface files needs nibabel: pip install '
                          '"colgraph[surface]" (or pip install nibabel).') from None
    return nibabel


def _file(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}.")
    return path


def _is_gifti(path: Path) -> bool:
    return path.name.lower().endswith((".gii", ".gii.gz"))


def _read_mesh(surface: Any) -> tuple[np.ndarray, np.ndarray, str]:
    """``(vertices [V, 3], faces [F, 3], name)`` from a path or an in-memory mesh."""
    if isinstance(surface, (str, Path)):
        path = _file(surface, "Surface file")
        nib = _nibabel()
        try:
            if _is_gifti(path):
                coords, faces = nib.load(path).agg_data(("pointset", "triangle"))
            else:  # FreeSurfer geometry: lh.pial, rh.white, lh.inflated, lh.sphere, ...
                coords, faces = nib.freesurfer.read_geometry(str(path))
        except Exception as e:  # nibabel's parse errors, with the file named
            raise ValueError(f"Cannot read the surface {path}: {e}. Expected a GIFTI surface "
                             f"(.surf.gii, with a pointset and a triangle array) or a "
                             f"FreeSurfer surface (lh.pial, rh.white, ...).") from None
        if coords is None or faces is None or np.size(coords) == 0 or np.size(faces) == 0:
            raise ValueError(f"{path} holds no mesh (a GIFTI surface needs a pointset and a "
                             f"triangle array; is it a data file such as .func.gii?).")
        stem = path.name
        for suffix in (".gz", ".gii"):
            stem = stem[:-len(suffix)] if stem.lower().endswith(suffix) else stem
        return np.asarray(coords), np.asarray(faces), stem
    if hasattr(surface, "coordinates") and hasattr(surface, "faces"):  # nilearn meshes
        return np.asarray(surface.coordinates), np.asarray(surface.faces), "surface"
    if hasattr(surface, "agg_data"):  # a nibabel GiftiImage
        coords, faces = surface.agg_data(("pointset", "triangle"))
        return np.asarray(coords), np.asarray(faces), "surface"
    if isinstance(surface, (tuple, list)) and len(surface) == 2:
        return np.asarray(surface[0]), np.asarray(surface[1]), "surface"
    raise TypeError(f"from_surface expects a surface file, a (vertices, faces) pair, a nibabel "
                    f"GiftiImage or a nilearn mesh, got {type(surface).__name__}.")


def read_parcellation(path: str | Path) -> dict[str, np.ndarray]:
    """Parcel name -> vertex indices from a FreeSurfer ``.annot`` or a GIFTI ``.label.gii``
    file (vertices labelled -1, i.e. in no parcel, are left out; so are parcels with no
    vertex)."""
    path = _file(path, "Parcellation file")
    nib = _nibabel()
    try:
        if _is_gifti(path):
            img = nib.load(path)
            labels = np.asarray(img.agg_data()).astype(np.int64).ravel()
            names = img.labeltable.get_labels_as_dict()
        else:
            labels, _, raw = nib.freesurfer.read_annot(str(path))
            names = {i: n.decode() if isinstance(n, bytes) else str(n) for i, n in enumerate(raw)}
    except Exception as e:
        raise ValueError(f"Cannot read the parcellation {path}: {e}. Expected a FreeSurfer "
                         f".annot or a GIFTI .label.gii file.") from None
    out = {}
    for value in np.unique(labels[labels >= 0]):
        name = str(names.get(int(value), f"parcel{int(value)}"))
        out[name] = np.flatnonzero(labels == value)
    return out


def from_surface(surface: Any, k_ring: int = 1, geodesic: bool = True,
                 parcellation: str | Path | dict | None = None, areas: dict | None = None,
                 name: str | None = None) -> Geometry:
    """A cortical surface becomes a sheet: one column per vertex, edges from the mesh.

    Args:
        surface: a GIFTI surface (``.surf.gii`` / ``.gii.gz``), a FreeSurfer surface file
            (``lh.pial``, ``rh.white``, ``lh.inflated``, ...), a nibabel ``GiftiImage``, a
            nilearn mesh (``coordinates`` and ``faces``) or a ``(vertices, faces)`` pair.
        k_ring, geodesic: as in :func:`~colgraph.geometry.from_mesh` (default: mesh edges
            with their lengths along the surface).
        parcellation: a FreeSurfer ``.annot`` / GIFTI ``.label.gii`` file, or a dict name ->
            vertex indices: each parcel becomes an area.
        areas: more named vertex sets (``input``, ``output``, ...).
        name: a description (default: the file's name).

    Add long-range inputs with :meth:`~colgraph.geometry.Geometry.with_wiring`, e.g.
    ``from_surface("lh.pial").with_wiring(exponential(m=4, lam=20.0))`` (millimetres on
    FreeSurfer surfaces).
    """
    verts, faces, default_name = _read_mesh(surface)
    n = len(verts)
    named: dict[str, Any] = {}
    if parcellation is not None:
        parcels = (read_parcellation(parcellation) if isinstance(parcellation, (str, Path))
                   else dict(parcellation))
        for k, v in parcels.items():
            v = np.asarray(v)
            if v.size and (v.min() < 0 or v.max() >= n):
                raise ValueError(f"Parcel '{k}' names vertices up to {int(v.max())}, but the "
                                 f"surface has {n}: are the surface and the parcellation of "
                                 f"the same mesh (e.g. both fsaverage5, same hemisphere)?")
        named.update(parcels)
    named.update(areas or {})
    return from_mesh(verts, faces, k_ring=k_ring, geodesic=geodesic,
                     areas={k: torch.as_tensor(np.asarray(v), dtype=torch.long)
                            for k, v in named.items()},
                     name=name or default_name)


def write_vertex_data(values: Any, path: str | Path) -> Path:
    """Per-column values as a file surface tools read: ``.func.gii`` / ``.shape.gii`` /
    ``.gii`` (GIFTI, one data array per metric, named), ``.npy`` (one metric) or ``.npz``
    (one array per metric).

    ``values``: a 1-D array ``[V]``, or a dict name -> ``[V]`` (e.g. from
    :func:`colgraph.connectome.node_metrics`). Draw it with nilearn:
    ``plotting.plot_surf_stat_map(mesh, path)`` (first metric) or pass one array.
    """
    path = Path(path)
    data = values if isinstance(values, dict) else {"values": values}
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in data.items()}
    if not arrays:
        raise ValueError("write_vertex_data needs at least one array of per-vertex values.")
    lengths = {a.shape[0] for a in arrays.values() if a.ndim == 1}
    if any(a.ndim != 1 for a in arrays.values()) or len(lengths) != 1:
        shapes = ", ".join(f"{k}: {list(a.shape)}" for k, a in arrays.items())
        raise ValueError(f"Expected 1-D arrays of one length (one value per vertex), got "
                         f"shapes {shapes}.")
    name = path.name.lower()
    if name.endswith(".npy"):
        if len(arrays) != 1:
            raise ValueError(f"A .npy file holds one array, got {len(arrays)} metrics: write "
                             f"them to a .npz or a .func.gii file.")
        np.save(path, next(iter(arrays.values())))
    elif name.endswith(".npz"):
        np.savez(path, **arrays)
    elif name.endswith(".gii"):
        nib = _nibabel()
        darrays = [nib.gifti.GiftiDataArray(a, intent="NIFTI_INTENT_NONE",
                                            datatype="NIFTI_TYPE_FLOAT32",
                                            meta=nib.gifti.GiftiMetaData({"Name": k}))
                   for k, a in arrays.items()]
        nib.save(nib.gifti.GiftiImage(darrays=darrays), path)
    else:
        raise ValueError(f"Unsupported file '{path.name}' for per-vertex data. Choices: "
                         f".func.gii (GIFTI), .npy (one metric), .npz.")
    return path
