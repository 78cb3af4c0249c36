"""Stage 1 of the pipeline: the pairwise Ising systems, as frozen, validated specs.

``dense``
    :class:`Hamiltonian` (couplings as an ``[N, N]`` matrix), the Curie-Weiss and
    Sherrington-Kirkpatrick constructors, and the dense ``.npz`` / edge-list files.
"""

from arnn_gen.systems.dense import (
    KINDS,
    CurieWeiss,
    Hamiltonian,
    as_hamiltonian,
    curie_weiss,
    from_couplings,
    load,
    save,
    sherrington_kirkpatrick,
    write_npz,
)

__all__ = [
    "KINDS",
    "Hamiltonian",
    "CurieWeiss",
    "as_hamiltonian",
    "curie_weiss",
    "sherrington_kirkpatrick",
    "from_couplings",
    "load",
    "save",
    "write_npz",
]
