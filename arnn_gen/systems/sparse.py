"""Stage 1 of the pipeline for sparse coupling graphs: the pairwise Ising system held as an
edge list, so that nothing of size N^2 is ever built (N up to :data:`~arnn_gen.checks.MAX_SPINS`).

A :class:`SparseHamiltonian` holds the same system as :class:`~arnn_gen.systems.dense.Hamiltonian`,

    H(x) = - sum_{i<j} J_ij x_i x_j - sum_i h_i x_i,      x_i in {-1, +1}

(docs/physics.md section 1), with the couplings as the E nonzero pairs ``edges`` (``[E, 2]``,
i < j, sorted) and their values ``weights`` (``[E]``). The frontier families and orderings
(:mod:`arnn_gen.systems.ordering`, docs/physics.md section 7) read its neighbour lists.

Constructors: the class itself, :meth:`SparseHamiltonian.from_dense`, the seeded generators of
:mod:`arnn_gen.systems.lattices`, :func:`arnn_gen.systems.readers.read_couplings` and
:func:`load_sparse_npz`. :meth:`SparseHamiltonian.save` writes, atomically,

``.npz``
    arrays ``format`` (the 0-d string ``"sparse"``), ``N`` (0-d int64), ``edges``
    (``[E, 2]`` int64), ``weights`` (``[E]`` float64), ``h`` (``[N]`` float64), and the 0-d
    strings ``kind``, ``provenance`` (JSON) and ``signature`` (checked on loading). The file
    loads with ``numpy.load(path, allow_pickle=False)``; its bytes are deterministic.
any other suffix
    the text edge list of :func:`arnn_gen.systems.dense.save` (``N n``, ``i j J_ij``,
    ``h i value``), which loads as a ``"general"`` system.

Every invalid input raises :class:`~arnn_gen.errors.ArnnGenError` with a one-line message.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import types
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from arnn_gen.checks import DENSE_BUDGET_BYTES, MAX_DENSE_N, MAX_SPINS, check_int, check_spins
from arnn_gen.errors import ArnnGenError
from arnn_gen.files import atomic_writer as _atomic_writer
from arnn_gen.systems.archive import edge_list_text, write_npz_archive
from arnn_gen.systems.dense import (
    KINDS,
    CurieWeiss,
    Hamiltonian,
    _normalise_provenance,
    _npz_shape,
    _readonly,
    as_hamiltonian,
)

__all__ = [
    "SPARSE_KINDS",
    "MAX_EDGES",
    "SparseHamiltonian",
    "load_sparse_npz",
    "write_sparse_npz",
]

SPARSE_KINDS: tuple[str, ...] = ("general", "ea2d", "ea3d", "ising2d", "rrg")
"""The families whose couplings are sparse: any edge list, Edwards-Anderson in 2-D and 3-D,
the 2-D Ising ferromagnet, random regular graphs (:mod:`arnn_gen.systems.lattices`).

A :class:`SparseHamiltonian` also accepts the dense kinds ``"cw"`` and ``"sk"`` of
:data:`~arnn_gen.systems.dense.KINDS`, so that :meth:`SparseHamiltonian.from_dense` keeps
every system's kind."""

MAX_EDGES = DENSE_BUDGET_BYTES // 16
"""The most edges a file may declare: ``edges`` is int64 ``[E, 2]`` (16 bytes an edge), held
to the budget of dense couplings (2 GiB, 2^27 edges). Checked before the arrays are read."""

PathLike = str | os.PathLike[str]

# Relative tolerance with which a named family's arrays must match its provenance.
_PROVENANCE_RTOL = 1e-12
# Elements of the [b, E] products of one energy() chunk (128 MiB of float64).
_ENERGY_CHUNK = 2**24

# Keys the provenance of each named kind must have, and which of them are integers
# (boundary "periodic" and disorder "pm1" are 0/1 flags). docs/physics.md section 1.
_PROVENANCE_KEYS: dict[str, tuple[str, ...]] = {
    "cw": ("J", "h"),
    "sk": ("J", "h", "seed"),
    "ea2d": ("L", "W", "periodic", "pm1", "h", "seed"),
    "ea3d": ("L", "periodic", "pm1", "h", "seed"),
    "ising2d": ("L", "W", "periodic", "J", "h"),
    "rrg": ("degree", "pm1", "h", "seed"),
}
_INTEGER_KEYS = ("L", "W", "periodic", "pm1", "seed", "degree")


# --------------------------------------------------------------------------------------
# Array validation helpers
# --------------------------------------------------------------------------------------


def _as_numpy(name: str, value: Any) -> np.ndarray:
    """``value`` (array-like or tensor) as a numpy array, or a one-line error."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as err:
        raise ArnnGenError(f"{name} must be an array: {err}") from None


def _as_edges(value: Any) -> np.ndarray:
    """``edges`` as an int64 ``[E, 2]`` array (an empty array-like means no edges)."""
    raw = _as_numpy("edges", value)
    if raw.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if raw.dtype.kind not in "iu":
        raise ArnnGenError(f"edges must be an integer array [E, 2], got dtype {raw.dtype}")
    if raw.ndim != 2 or raw.shape[1] != 2:
        raise ArnnGenError(f"edges must have shape [E, 2], got shape {raw.shape}")
    if raw.dtype.kind == "u" and int(raw.max()) > np.iinfo(np.int64).max:
        raise ArnnGenError(f"edges must hold spin indices, got {int(raw.max())}")
    return np.array(raw, dtype=np.int64)


def _as_reals(name: str, symbol: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """A fresh finite float64 array of ``shape`` (``-0.0`` mapped to ``+0.0``); ``symbol``
    names an entry in the error (``weights[3]``, ``h[0]``)."""
    raw = _as_numpy(name, value)
    if raw.size == 0 and shape == (0,):
        return np.zeros(0)
    if raw.dtype.kind not in "biuf":
        raise ArnnGenError(f"{name} must be a real array, got dtype {raw.dtype}")
    if raw.shape != shape:
        raise ArnnGenError(f"{name} must have shape {shape}, got shape {raw.shape}")
    result = np.array(raw, dtype=np.float64) + 0.0
    bad = np.flatnonzero(~np.isfinite(result.ravel()))
    if bad.size:
        value = float(result.ravel()[bad[0]])
        raise ArnnGenError(f"{name} must be finite, got {symbol}[{int(bad[0])}] = {value!r}")
    return result


def _normalise_edges(
    n_spins: int, edges: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Edges (i < j, sorted lexicographically, duplicates merged, zeros dropped) and weights.

    Raises on an index outside [0, N), a self-loop, or a pair given twice with two values.
    """
    if edges.size:
        low, high = int(edges.min()), int(edges.max())
        if low < 0 or high >= n_spins:
            row = int(np.flatnonzero(((edges < 0) | (edges >= n_spins)).any(axis=1))[0])
            i, j = edges[row].tolist()
            raise ArnnGenError(
                f"edge {row} = ({i}, {j}) has a spin index outside [0, {n_spins}) for N={n_spins}"
            )
    loops = np.flatnonzero(edges[:, 0] == edges[:, 1])
    if loops.size:
        row = int(loops[0])
        i = int(edges[row, 0])
        raise ArnnGenError(
            f"edge {row} = ({i}, {i}) is a self-loop (the diagonal of J must be zero)"
        )
    first = np.minimum(edges[:, 0], edges[:, 1])
    second = np.maximum(edges[:, 0], edges[:, 1])
    # i * N + j < N^2 <= 10^12 fits int64; a stable sort keeps the input order among repeats.
    key = first * n_spins + second
    order = np.argsort(key, kind="stable")
    key, first, second, weights = key[order], first[order], second[order], weights[order]
    repeat = np.flatnonzero(key[1:] == key[:-1]) + 1  # rows equal to the row before them
    if repeat.size:
        conflict = repeat[weights[repeat] != weights[repeat - 1]]
        if conflict.size:
            row = int(conflict[0])
            raise ArnnGenError(
                f"the pair ({int(first[row])}, {int(second[row])}) is given twice with "
                f"different couplings {float(weights[row - 1])!r} and {float(weights[row])!r}"
            )
    keep = np.ones(key.shape[0], dtype=bool)
    keep[repeat] = False
    keep &= weights != 0.0  # a zero coupling is no edge
    return np.stack([first[keep], second[keep]], axis=1), weights[keep]


# --------------------------------------------------------------------------------------
# The sparse Hamiltonian
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SparseHamiltonian:
    """A pairwise Ising Hamiltonian held as an edge list (docs/physics.md sections 1 and 7).

    H(x) = -sum_{(i,j) in edges} J_ij x_i x_j - sum_i h_i x_i.

    Attributes:
        N: number of spins, 1 <= N <= :data:`~arnn_gen.checks.MAX_SPINS`.
        edges: ``[E, 2]`` int64, read-only: the pairs (i, j) with J_ij != 0, i < j, sorted
            lexicographically.
        weights: ``[E]`` float64, read-only: J_ij of each edge, all nonzero and finite.
        h: ``[N]`` float64, read-only: the fields.
        kind: one of :data:`SPARSE_KINDS` (or ``"cw"``/``"sk"``, kept from a dense system).
        provenance: read-only, key-sorted mapping of the numbers that generated the system
            (:mod:`arnn_gen.systems.lattices` lists them for each kind; usually empty for
            ``"general"``).

    Construction validates and normalises the input: ``edges`` any integer ``[E, 2]`` array
    (either orientation), ``weights`` real ``[E]``, ``h`` real ``[N]``; indices in [0, N), no
    self-loops, finite values. A pair given twice (in either orientation) with the same value
    is one edge; with two values it is an error. Zero weights are dropped. A named kind must
    carry its provenance, and the arrays must agree with it: a lattice kind's edges are bonds
    of the lattice its provenance describes (all of them, with J_ij = J, for ``"ising2d"``),
    h_i = h for every named kind, |J_ij| = 1 when ``pm1`` is 1, degrees <= ``degree`` for
    ``"rrg"``; ``"cw"`` and ``"sk"`` are checked as :class:`~arnn_gen.systems.dense.Hamiltonian`
    checks them.

    Equality compares kind, provenance and the arrays exactly; the hash derives from
    :meth:`signature`. A sparse and a dense spec of one system have different signatures by
    design (see :meth:`signature`): compare them through :meth:`to_dense` or :meth:`from_dense`.
    """

    N: int
    edges: np.ndarray  # [E, 2]
    weights: np.ndarray  # [E]
    h: np.ndarray  # [N]
    kind: str = "general"
    provenance: Mapping[str, float | int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_spins = check_spins(self.N)
        edges = _as_edges(self.edges)
        weights = _as_reals("the weights", "weights", self.weights, (edges.shape[0],))
        fields = _as_reals("the fields h", "h", self.h, (n_spins,))
        edges, weights = _normalise_edges(n_spins, edges, weights)
        if not isinstance(self.kind, str) or self.kind not in KINDS:
            raise ArnnGenError(f"unknown system kind {self.kind!r}; expected one of {KINDS}")
        provenance = _normalise_provenance(self.provenance)
        _check_provenance(self.kind, n_spins, provenance, edges, weights, fields)

        object.__setattr__(self, "N", n_spins)
        object.__setattr__(self, "edges", _readonly(edges))
        object.__setattr__(self, "weights", _readonly(weights))
        object.__setattr__(self, "h", _readonly(fields))
        object.__setattr__(self, "provenance", types.MappingProxyType(provenance))
        # Per-device torch copies of the edge arrays and h, filled by energy().
        object.__setattr__(self, "_tensor_cache", {})

    # -- views ---------------------------------------------------------------------------

    @property
    def E(self) -> int:  # noqa: N802 (physics name)
        """Number of edges (nonzero couplings J_ij, i < j)."""
        return self.edges.shape[0]

    @property
    def couplings(self) -> tuple[np.ndarray, np.ndarray]:
        """``(edges [E, 2], weights [E])``."""
        return self.edges, self.weights

    @property
    def fields(self) -> np.ndarray:
        """Alias of :attr:`h`, ``[N]``."""
        return self.h

    def neighbours(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The symmetric coupling graph in CSR form, neighbours sorted by index (cached).

        Returns:
            ``(indptr [N + 1], indices [2E], values [2E])``, read-only: the neighbours of
            site i are ``indices[indptr[i]:indptr[i + 1]]`` (increasing), with couplings
            ``values[indptr[i]:indptr[i + 1]]``.
        """
        return self._csr

    @functools.cached_property
    def _csr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = np.concatenate([self.edges[:, 0], self.edges[:, 1]])  # [2E]
        cols = np.concatenate([self.edges[:, 1], self.edges[:, 0]])  # [2E]
        values = np.concatenate([self.weights, self.weights])  # [2E]
        order = np.argsort(rows * self.N + cols, kind="stable")
        indptr = np.zeros(self.N + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=self.N), out=indptr[1:])
        return (
            _readonly(indptr),
            _readonly(np.ascontiguousarray(cols[order])),
            _readonly(np.ascontiguousarray(values[order])),
        )

    @functools.cached_property
    def degrees(self) -> np.ndarray:
        """``[N]`` int64, read-only: the number of neighbours of each site."""
        return _readonly(np.diff(self.neighbours()[0]))

    @property
    def max_degree(self) -> int:
        """The largest number of neighbours of a site (0 without edges)."""
        return int(self.degrees.max())

    # -- physics -------------------------------------------------------------------------

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Energy H(x) of spin configurations, from the edge list in O(B E) (section 1).

        Args:
            x: ``[..., N]`` (typically ``[B, N]``, or ``[N]``) with every entry exactly -1 or
                +1, on any device; a numpy array is converted first.

        Returns:
            ``[...]`` energies in float64 on x's device (exact products of +-1, sums in
            float64 whatever x's dtype).
        """
        x = _check_spins(x, self.N)
        shape = x.shape[:-1]
        flat = x.reshape(-1, self.N).to(torch.float64)  # [B, N]
        first, second, weights, fields = self._tensors(x.device)
        # Chunks over the batch keep the [b, E] products within _ENERGY_CHUNK elements.
        step = max(1, _ENERGY_CHUNK // max(1, self.E))
        parts = [
            -((block[:, first] * block[:, second]) @ weights) - block @ fields  # [b]
            for block in flat.split(step)
        ]
        energies = torch.cat(parts) if parts else flat.new_zeros(0)  # [B]
        return energies.reshape(shape)

    def _tensors(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """first [E], second [E] (long), weights [E], h [N] (float64) on ``device`` (cached)."""
        cache: dict[torch.device, tuple[torch.Tensor, ...]] = self._tensor_cache  # type: ignore[attr-defined]
        if device not in cache:
            cache[device] = (
                torch.tensor(self.edges[:, 0], dtype=torch.long, device=device),
                torch.tensor(self.edges[:, 1], dtype=torch.long, device=device),
                torch.tensor(self.weights, dtype=torch.float64, device=device),
                torch.tensor(self.h, dtype=torch.float64, device=device),
            )
        return cache[device]

    # -- dense form ----------------------------------------------------------------------

    def to_dense(self, max_n: int = MAX_DENSE_N) -> Hamiltonian:
        """The same system as a dense :class:`~arnn_gen.systems.dense.Hamiltonian` (same kind
        and provenance); refused, before ``[N, N]`` is allocated, when N > ``max_n`` (at most
        :data:`~arnn_gen.checks.MAX_DENSE_N`)."""
        limit = min(check_int("max_n", max_n, 1), MAX_DENSE_N)
        if self.N > limit:
            raise ArnnGenError(
                f"the dense couplings of this {self.kind!r} system of N = {self.N} spins "
                f"are limited to N <= {limit}"
            )
        couplings = np.zeros((self.N, self.N))  # [N, N]
        couplings[self.edges[:, 0], self.edges[:, 1]] = self.weights
        couplings[self.edges[:, 1], self.edges[:, 0]] = self.weights
        return Hamiltonian(couplings, self.h.copy(), self.kind, dict(self.provenance))

    @classmethod
    def from_dense(cls, hamiltonian: Hamiltonian | CurieWeiss) -> SparseHamiltonian:
        """The edge list of a dense system (its nonzero J_ij, i < j); kind and provenance kept."""
        dense = as_hamiltonian(hamiltonian)
        rows, cols = np.nonzero(dense.J)  # row-major: already sorted lexicographically
        upper = rows < cols
        edges = np.stack([rows[upper], cols[upper]], axis=1).astype(np.int64)
        return cls(
            dense.N, edges, dense.J[rows[upper], cols[upper]], dense.h, dense.kind,
            dict(dense.provenance),
        )  # fmt: skip

    # -- identity ------------------------------------------------------------------------

    def signature(self) -> str:
        """sha256 hex digest of the canonical bytes of the sparse spec.

        The canonical form is: the tag ``arnn-gen-sparse-hamiltonian-v1``, ``kind``, the repr
        of the key-sorted provenance items (with their type names), ``N`` and ``E``, then
        ``edges`` as little-endian int64 bytes (row-major, normalised), ``weights`` and ``h``
        as little-endian float64 bytes. It is the same on every machine and in every process.

        By design it differs from the signature of the dense
        :class:`~arnn_gen.systems.dense.Hamiltonian` of the same system: a signature names a
        spec in its storage form (what an emitted module or a checkpoint was built from), and
        hashing the sparse form never needs the ``[N, N]`` matrix.
        """
        return self._signature

    @functools.cached_property
    def _signature(self) -> str:
        digest = hashlib.sha256()
        header = (
            f"arnn-gen-sparse-hamiltonian-v1\0{self.kind}\0{self._provenance_key()!r}\0"
            f"{self.N}\0{self.E}\0"
        )
        digest.update(header.encode("utf-8"))
        digest.update(self.edges.astype("<i8", copy=False).tobytes())
        digest.update(self.weights.astype("<f8", copy=False).tobytes())
        digest.update(self.h.astype("<f8", copy=False).tobytes())
        return digest.hexdigest()

    def _provenance_key(self) -> tuple[tuple[str, str, float | int], ...]:
        # The type name keeps 1 and 1.0 apart, so that equality agrees with the signature.
        return tuple((k, type(v).__name__, v) for k, v in self.provenance.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseHamiltonian):
            return NotImplemented
        return (
            self.kind == other.kind
            and self.N == other.N
            and self._provenance_key() == other._provenance_key()
            and np.array_equal(self.edges, other.edges)
            and np.array_equal(self.weights, other.weights)
            and np.array_equal(self.h, other.h)
        )

    def __hash__(self) -> int:
        return int(self.signature()[:16], 16)

    def __repr__(self) -> str:
        items = "".join(f", {k}={v!r}" for k, v in self.provenance.items())
        return f"SparseHamiltonian(kind={self.kind!r}, N={self.N}, E={self.E}{items})"

    def __reduce__(self) -> tuple[Any, ...]:
        # MappingProxyType does not pickle; rebuild through the validating constructor.
        return (
            SparseHamiltonian,
            (self.N, self.edges, self.weights, self.h, self.kind, dict(self.provenance)),
        )

    # -- files ---------------------------------------------------------------------------

    def save(self, path: PathLike) -> None:
        """Write the system to ``path`` atomically: the sparse ``.npz`` for a ``.npz`` suffix,
        else the text edge list (see the module docstring). An interrupted save never leaves a
        half-written file."""
        path = Path(path)
        if not path.parent.is_dir():
            raise ArnnGenError(
                f"cannot write couplings file {path}: {path.parent} is not a directory"
            )
        try:
            with _atomic_writer(path) as handle:
                if path.suffix.lower() == ".npz":
                    write_sparse_npz(self, handle)
                else:
                    handle.write(_edge_list_text(self).encode("utf-8"))
        except OSError as err:
            raise ArnnGenError(f"cannot write couplings file {path}: {err}") from None


def _check_spins(x: Any, n_spins: int) -> torch.Tensor:
    """``x`` as a real tensor ``[..., N]`` of +-1, or a one-line error."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ArnnGenError(f"spin configurations must be a tensor: {err}") from None
    if x.is_complex():
        raise ArnnGenError(f"spin configurations must be real, got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[-1] != n_spins:
        raise ArnnGenError(
            f"spin configurations must have shape [B, {n_spins}] or [{n_spins}], "
            f"got {list(x.shape)}"
        )
    is_spin = (x == 1) | (x == -1)
    if not bool(torch.all(is_spin)):
        bad = x[~is_spin][0].item()
        raise ArnnGenError(f"spin configurations must contain only -1 and +1, found {bad!r}")
    return x


# --------------------------------------------------------------------------------------
# Provenance of the named kinds
# --------------------------------------------------------------------------------------


def _check_provenance(
    kind: str,
    n_spins: int,
    provenance: Mapping[str, float | int],
    edges: np.ndarray,
    weights: np.ndarray,
    fields: np.ndarray,
) -> None:
    """Check that a named family's provenance is complete and agrees with the arrays."""
    required = _PROVENANCE_KEYS.get(kind)
    if required is None:
        return
    missing = [key for key in required if key not in provenance]
    if missing:
        raise ArnnGenError(
            f"a {kind!r} system needs provenance keys {list(required)}, missing {missing}"
        )
    for key in required:
        value = provenance[key]
        if key in _INTEGER_KEYS and (not isinstance(value, int) or value < 0):
            raise ArnnGenError(
                f"a {kind!r} system's provenance {key} must be an integer >= 0, got {value!r}"
            )
        if key in ("periodic", "pm1") and value not in (0, 1):
            raise ArnnGenError(
                f"a {kind!r} system's provenance {key} must be 0 or 1, got {value!r}"
            )
    field_value = float(provenance["h"])
    if not np.allclose(fields, field_value, rtol=_PROVENANCE_RTOL, atol=0.0):
        raise ArnnGenError(
            f"a {kind!r} system has uniform fields h_i = h = {field_value!r}, "
            f"but the fields range over [{float(fields.min())!r}, {float(fields.max())!r}]"
        )
    if provenance.get("pm1") == 1 and np.any(np.abs(weights) != 1.0):
        raise ArnnGenError(f"a {kind!r} system with pm1 disorder has couplings J_ij = +-1 only")
    if kind in ("ea2d", "ea3d", "ising2d"):
        _check_lattice(kind, n_spins, provenance, edges, weights)
    elif kind == "rrg":
        degree = int(provenance["degree"])
        present = np.bincount(edges.ravel(), minlength=n_spins)
        if (
            degree < 1
            or degree >= n_spins
            or (n_spins * degree) % 2
            or present.max(initial=0) > degree
        ):
            raise ArnnGenError(
                f"an 'rrg' system of N = {n_spins} spins with degree {degree} needs "
                f"1 <= degree < N, N * degree even and at most {degree} neighbours a site"
            )
    elif kind == "cw":
        expected = float(provenance["J"]) / n_spins
        count = n_spins * (n_spins - 1) // 2 if expected != 0.0 else 0
        if edges.shape[0] != count or not np.allclose(
            weights, expected, rtol=_PROVENANCE_RTOL, atol=0.0
        ):
            raise ArnnGenError(
                f"a 'cw' system has couplings J_ij = J/N = {expected!r} for every pair i < j"
            )
    elif kind == "sk" and float(provenance["J"]) < 0:
        raise ArnnGenError(f"SK coupling scale J must be >= 0, got {provenance['J']!r}")


def _check_lattice(
    kind: str,
    n_spins: int,
    provenance: Mapping[str, float | int],
    edges: np.ndarray,
    weights: np.ndarray,
) -> None:
    """A lattice kind: N fits the geometry and every edge is one of its bonds."""
    # Imported here: the generators build SparseHamiltonian objects themselves.
    from arnn_gen.systems.lattices import lattice_bonds

    length = int(provenance["L"])
    width = int(provenance.get("W", length))
    size = length**3 if kind == "ea3d" else length * width
    shape = f"{length}^3" if kind == "ea3d" else f"{length} x {width}"
    if size != n_spins:
        raise ArnnGenError(
            f"a {kind!r} system on the {shape} lattice has N = {size} spins, got N = {n_spins}"
        )
    bonds = lattice_bonds(
        "cubic" if kind == "ea3d" else "square",
        length,
        width,
        periodic=bool(provenance["periodic"]),
    )
    bond_keys = bonds[:, 0] * n_spins + bonds[:, 1]  # sorted: bonds are normalised
    edge_keys = edges[:, 0] * n_spins + edges[:, 1]
    found = np.searchsorted(bond_keys, edge_keys)
    inside = found < bond_keys.shape[0]
    is_bond = np.zeros(edge_keys.shape[0], dtype=bool)
    is_bond[inside] = bond_keys[found[inside]] == edge_keys[inside]
    if not is_bond.all():
        i, j = edges[int(np.flatnonzero(~is_bond)[0])].tolist()
        raise ArnnGenError(f"a {kind!r} system's edge ({i}, {j}) is not a bond of its lattice")
    if kind == "ising2d":
        coupling = float(provenance["J"])
        count = bonds.shape[0] if coupling != 0.0 else 0
        if edges.shape[0] != count or np.any(weights != coupling):
            raise ArnnGenError(
                f"an 'ising2d' system couples every bond of its lattice with J = {coupling!r}"
            )


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def write_sparse_npz(
    system: SparseHamiltonian, handle: IO[bytes], *, extra: Mapping[str, np.ndarray] | None = None
) -> None:
    """Deterministic sparse .npz: fixed member order and timestamps, no pickles; ``extra``
    arrays follow the system's (an emitted module's sidecar adds its site order)."""
    members = {
        "format": np.array("sparse"),
        "N": np.array(system.N, dtype="<i8"),
        "edges": system.edges.astype("<i8"),
        "weights": system.weights.astype("<f8"),
        "h": system.h.astype("<f8"),
        "kind": np.array(system.kind),
        "provenance": np.array(json.dumps(dict(system.provenance), sort_keys=True)),
        "signature": np.array(system.signature()),
        **(extra or {}),
    }
    write_npz_archive(members, handle)


def _edge_list_text(system: SparseHamiltonian) -> str:
    """Text edge list of arnn_gen.systems.dense: 'N n', 'i j J_ij' (i < j), 'h i value'."""
    couplings = (
        (i, j, w) for (i, j), w in zip(system.edges.tolist(), system.weights.tolist(), strict=True)
    )
    return edge_list_text(system.N, system.kind, system.provenance, couplings, system.h)


# Errors numpy and zipfile raise on unreadable archives. NotImplementedError: a compression
# method zipfile lacks; RuntimeError: an encrypted member.
_UNREADABLE = (
    OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError,
    RuntimeError,
)  # fmt: skip
_REQUIRED_MEMBERS = ("N", "edges", "weights")


def load_sparse_npz(path: PathLike, *, max_n: int = MAX_SPINS) -> SparseHamiltonian:
    """Read a sparse ``.npz`` written by :meth:`SparseHamiltonian.save` (or by hand).

    Arrays ``N``, ``edges`` and ``weights`` are required; ``h`` (default zeros), ``kind``
    (default ``"general"``), ``provenance`` (JSON, default ``{}``), ``format`` (if present,
    ``"sparse"``) and ``signature`` (if present, checked) are optional. The sizes are read
    from the array headers and checked (N <= ``max_n`` <= MAX_SPINS, E <= :data:`MAX_EDGES`,
    shapes consistent) before any array is read.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise ArnnGenError(f"couplings file {path} {what}")
    limit = min(check_int("max_n", max_n, 1), MAX_SPINS)
    try:
        with zipfile.ZipFile(path) as archive:
            names = {name[:-4] for name in archive.namelist() if name.endswith(".npy")}
            missing = [name for name in _REQUIRED_MEMBERS if name not in names]
            if missing:
                raise ArnnGenError(
                    f"couplings file {path} is not a sparse .npz: it lacks arrays {missing}"
                )
            shapes = {name: _npz_shape(archive, f"{name}.npy") for name in names}
    except ArnnGenError:
        raise
    except _UNREADABLE as err:
        raise ArnnGenError(f"cannot read couplings file {path}: {err}") from None
    _check_npz_shapes(path, shapes)
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            n_array = archive["N"]
            if n_array.dtype.kind not in "iu":
                raise ArnnGenError(f"couplings file {path}: N must be an integer")
            n_spins = int(n_array[()])
            if n_spins > limit or n_spins < 1:
                raise ArnnGenError(
                    f"couplings file {path} has N = {n_spins} spins; expected 1 <= N <= {limit}"
                )
            if "h" in names and shapes["h"] != (n_spins,):
                raise ArnnGenError(
                    f"couplings file {path}: h must have shape ({n_spins},), got {shapes['h']}"
                )
            edges = archive["edges"]
            weights = archive["weights"]
            fields = archive["h"] if "h" in names else np.zeros(n_spins)
            strings = {
                name: _npz_string(path, archive, name)
                for name in ("format", "kind", "provenance", "signature")
                if name in names
            }
    except ArnnGenError:
        raise
    except _UNREADABLE as err:
        raise ArnnGenError(f"cannot read couplings file {path}: {err}") from None
    if strings.get("format", "sparse") != "sparse":
        raise ArnnGenError(
            f"couplings file {path} has format {strings['format']!r}; expected 'sparse'"
        )
    try:
        provenance = json.loads(strings.get("provenance", "{}"))
    except json.JSONDecodeError as err:
        raise ArnnGenError(f"couplings file {path}: provenance is not valid JSON: {err}") from None
    if not isinstance(provenance, dict):
        raise ArnnGenError(f"couplings file {path}: provenance must be a JSON object")
    try:
        system = SparseHamiltonian(
            n_spins, edges, weights, fields, strings.get("kind", "general"), provenance
        )
    except ArnnGenError as err:
        raise ArnnGenError(f"couplings file {path}: {err}") from None
    recorded = strings.get("signature")
    if recorded is not None and recorded != system.signature():
        raise ArnnGenError(
            f"couplings file {path} is damaged: its arrays do not have the signature it records"
        )
    return system


def _check_npz_shapes(path: Path, shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Shapes from the headers: N 0-d, edges [E, 2] with E <= MAX_EDGES, weights [E]."""
    if shapes["N"] != ():
        raise ArnnGenError(f"couplings file {path}: N must be a 0-d array, got shape {shapes['N']}")
    edges_shape = shapes["edges"]
    if len(edges_shape) != 2 or edges_shape[1] != 2:
        raise ArnnGenError(
            f"couplings file {path}: edges must have shape [E, 2], got {edges_shape}"
        )
    if edges_shape[0] > MAX_EDGES:
        raise ArnnGenError(
            f"couplings file {path} has E = {edges_shape[0]} edges; the limit is {MAX_EDGES}"
        )
    if shapes["weights"] != (edges_shape[0],):
        raise ArnnGenError(
            f"couplings file {path}: weights must have shape ({edges_shape[0]},) to match "
            f"edges, got {shapes['weights']}"
        )
    if "h" in shapes and len(shapes["h"]) != 1:
        raise ArnnGenError(f"couplings file {path}: h must be 1-D, got shape {shapes['h']}")
    if "h" in shapes and shapes["h"][0] > MAX_SPINS:
        raise ArnnGenError(f"couplings file {path}: h has {shapes['h'][0]} entries > {MAX_SPINS}")


def _npz_string(path: Path, archive: Any, name: str) -> str:
    value = archive[name]
    if value.ndim != 0 or value.dtype.kind != "U":
        raise ArnnGenError(
            f"couplings file {path}: array {name!r} must be a 0-d string, "
            f"got dtype {value.dtype} and shape {value.shape}"
        )
    return str(value[()])
