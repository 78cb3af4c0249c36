"""Stage 1 of the pipeline: the pairwise Ising systems, as frozen, validated specs.

``archive``
    the deterministic ``.npz`` and the text edge list both specs write.
``dense``
    :class:`Hamiltonian` (couplings as an ``[N, N]`` matrix), the Curie-Weiss and
    Sherrington-Kirkpatrick constructors, and the dense ``.npz`` / edge-list files.
``sparse``
    :class:`SparseHamiltonian` (couplings as an edge list, nothing of size N^2), its
    conversions to and from the dense form, and the sparse ``.npz`` files.
``lattices``
    seeded generators of the sparse systems: Edwards-Anderson in 2-D and 3-D
    (:func:`ea2d`, :func:`ea3d`), the 2-D Ising ferromagnet (:func:`ising2d`) and spin
    glasses on random regular graphs (:func:`rrg`).
``readers``
    :func:`read_couplings`: coupling files (sparse or dense ``.npz``, edge lists, G-set
    MaxCut graphs, spin-glass instances) read as sparse systems.
``ordering``
    site orders (natural, reverse Cuthill-McKee) and their frontiers (:func:`site_order`,
    :func:`frontier`, :class:`Frontier`; docs/physics.md section 7).
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
from arnn_gen.systems.lattices import ea2d, ea3d, ising2d, rrg
from arnn_gen.systems.ordering import (
    Frontier,
    frontier,
    frontier_plus_sizes,
    order_signature,
    site_order,
)
from arnn_gen.systems.readers import read_couplings
from arnn_gen.systems.sparse import SPARSE_KINDS, SparseHamiltonian, load_sparse_npz

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
    "SPARSE_KINDS",
    "SparseHamiltonian",
    "load_sparse_npz",
    "ea2d",
    "ea3d",
    "ising2d",
    "rrg",
    "read_couplings",
    "site_order",
    "order_signature",
    "frontier_plus_sizes",
    "frontier",
    "Frontier",
]
