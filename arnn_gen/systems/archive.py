"""The two couplings-file layouts arnn-gen writes, shared by the dense and sparse specs: a
deterministic ``.npz`` archive and the text edge list (docs/physics.md section 1)."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterable, Mapping
from typing import IO

import numpy as np

__all__ = ["write_npz_archive", "edge_list_text"]

# Fixed timestamp of every member of a written .npz archive (the zip format's epoch), so
# that writing the same arrays twice gives byte-identical files.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write_npz_archive(members: Mapping[str, np.ndarray], handle: IO[bytes]) -> None:
    """A deterministic .npz of ``members`` (name -> array), in their order: fixed timestamps
    and permissions, deflated, no pickles (``numpy.load(..., allow_pickle=False)`` reads it)."""
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in members.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with archive.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def edge_list_text(
    n_spins: int,
    kind: str,
    provenance: Mapping,
    couplings: Iterable[tuple[int, int, float]],
    fields: np.ndarray,
) -> str:
    """The text edge list: 'N n', a comment with the kind and provenance, 'i j J_ij' for the
    given couplings (i < j), then 'h i value' for every nonzero field; floats by repr, so
    that the file reads back exactly."""
    lines = [
        f"N {n_spins}",
        f"# kind={kind} provenance={json.dumps(dict(provenance), sort_keys=True)}",
        "# H(x) = -sum_{i<j} J_ij x_i x_j - sum_i h_i x_i; lines 'i j J_ij' and 'h i h_i'",
    ]
    lines.extend(f"{i} {j} {float(value)!r}" for i, j, value in couplings)
    lines.extend(f"h {i} {float(fields[i])!r}" for i in np.flatnonzero(fields).tolist())
    return "\n".join(lines) + "\n"
