"""Stage 1 of the pipeline: the pairwise Ising system, as a frozen, validated spec.

A :class:`Hamiltonian` holds the couplings ``J`` (``[N, N]``, symmetric, zero diagonal) and
the fields ``h`` (``[N]``) of

    H(x) = - sum_{i<j} J_ij x_i x_j - sum_i h_i x_i,      x_i in {-1, +1}

(docs/physics.md section 1), together with the name of the family it belongs to (``kind``) and
the few numbers that generated it (``provenance``: the Curie-Weiss ``J`` and ``h``, or the
Sherrington-Kirkpatrick ``J``, ``h`` and ``seed``). Later stages read the structure of ``J``
from it; :mod:`arnn_gen.exact` uses the provenance of a Curie-Weiss system to apply the
closed-form partition function at any N.

Constructors: :func:`curie_weiss`, :func:`sherrington_kirkpatrick`, :func:`from_couplings`,
:func:`load`. Files are written by :func:`save` (atomically) in one of two formats chosen by
the file suffix:

``.npz``
    arrays ``J`` (``[N, N]``) and ``h`` (``[N]``), plus ``kind``, ``provenance`` (JSON) and
    ``signature`` (:meth:`Hamiltonian.signature`, checked on loading) as 0-d unicode
    arrays, so that the file loads with ``numpy.load(path, allow_pickle=False)``.
    The bytes are deterministic (fixed zip timestamps): saving the same system twice gives
    the same file.
any other suffix
    a text edge list: ``N n`` (number of spins, optional), ``i j J_ij`` (0-based indices),
    ``h i value``; blank lines and ``#`` comments are ignored. A text file always loads as a
    ``"general"`` system: the kind and provenance are written as a comment only.

Every invalid input raises :class:`~arnn_gen.errors.ArnnGenError` with a one-line message.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import types
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from arnn_gen.checks import MAX_DENSE_N, MAX_SPINS, check_dense
from arnn_gen.errors import ArnnGenError
from arnn_gen.files import atomic_writer as _atomic_writer
from arnn_gen.systems.archive import edge_list_text, write_npz_archive

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
]

KINDS: tuple[str, ...] = ("general", "cw", "sk", "ea2d", "ea3d", "ising2d", "rrg")
"""Names of the system families: any couplings, Curie-Weiss, Sherrington-Kirkpatrick, and the
sparse families of :mod:`arnn_gen.systems.lattices` (Edwards-Anderson in 2-D and 3-D, the 2-D
Ising ferromagnet, random regular graphs)."""

PathLike = str | os.PathLike[str]

# Relative tolerance of the symmetry check |J - J^T| <= _SYMMETRY_RTOL * max(1, max|J|).
_SYMMETRY_RTOL = 1e-12
# Relative tolerance with which a "cw" system's arrays must match its provenance.
_PROVENANCE_RTOL = 1e-12
# Keys the provenance of each kind must have (docs/physics.md section 1).
_PROVENANCE_KEYS: dict[str, tuple[str, ...]] = {"cw": ("J", "h"), "sk": ("J", "h", "seed")}


# --------------------------------------------------------------------------------------
# Scalar validation helpers
# --------------------------------------------------------------------------------------


def _check_n(N: Any) -> int:
    """Return ``N`` as an int after checking it is an integer >= 1 (and not a bool)."""
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)):
        raise ArnnGenError(f"the number of spins N must be an integer, got {N!r}")
    if N < 1:
        raise ArnnGenError(f"the number of spins N must be >= 1, got N={int(N)}")
    if N > MAX_SPINS:
        raise ArnnGenError(f"the number of spins N must be <= {MAX_SPINS}, got N={int(N)}")
    return int(N)


def _finite_float(name: str, value: Any) -> float:
    """Return ``value`` as a finite Python float, or raise naming the parameter ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise ArnnGenError(f"{name} must be a real number, got {value!r}")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ArnnGenError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(result):
        raise ArnnGenError(f"{name} must be finite, got {result!r}")
    return result


def _as_float_array(name: str, value: Any) -> np.ndarray:
    """Convert ``value`` (array-like or torch tensor) to a fresh float64 numpy array."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise ArnnGenError(f"{name} must be a real array: {err}") from None
    if raw.dtype.kind not in "biuf":
        raise ArnnGenError(f"{name} must be a real array, got dtype {raw.dtype}")
    # "+ 0.0" maps -0.0 to +0.0, so that equal systems have equal bytes (signature()).
    return np.array(raw, dtype=np.float64) + 0.0


def _normalise_provenance(provenance: Mapping[str, Any] | None) -> dict[str, float | int]:
    """Key-sorted copy of ``provenance`` with plain int/float values, validated."""
    if provenance is None:
        return {}
    if not isinstance(provenance, Mapping):
        raise ArnnGenError(f"provenance must be a mapping of names to numbers, got {provenance!r}")
    result: dict[str, float | int] = {}
    for key in sorted(provenance, key=str):
        value = provenance[key]
        if not isinstance(key, str):
            raise ArnnGenError(f"provenance keys must be strings, got {key!r}")
        if isinstance(value, (bool, np.bool_)):
            raise ArnnGenError(f"provenance value {key}={value!r} must be an int or a float")
        if isinstance(value, (int, np.integer)):
            result[key] = int(value)
        elif isinstance(value, (float, np.floating)):
            result[key] = _finite_float(f"provenance value {key}", value)
        else:
            raise ArnnGenError(f"provenance value {key}={value!r} must be an int or a float")
    return result


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


# --------------------------------------------------------------------------------------
# The Hamiltonian
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Hamiltonian:
    """A pairwise Ising Hamiltonian H(x) = -sum_{i<j} J_ij x_i x_j - sum_i h_i x_i.

    Attributes:
        J: couplings, ``[N, N]`` float64, symmetric with zero diagonal, read-only.
        h: fields, ``[N]`` float64, read-only.
        kind: one of :data:`KINDS`.
        provenance: read-only, key-sorted mapping of the numbers that generated the system:
            ``{"J", "h"}`` for ``"cw"``, ``{"J", "h", "seed"}`` for ``"sk"``, usually empty
            for ``"general"``.

    Construction validates everything and stores private read-only copies: ``J`` must be a
    square matrix with N >= 1, finite, with zero diagonal, symmetric to within
    ``1e-12 * max(1, max|J|)`` (it is then symmetrised exactly as ``(J + J.T) / 2``); ``h``
    must be finite with shape ``[N]``. A ``"cw"`` system must match its provenance
    (J_ij = J/N off the diagonal, h_i = h); an ``"sk"`` system must have uniform fields h.

    Equality compares kind, provenance and the arrays exactly; the hash derives from
    :meth:`signature`, a sha256 that is stable across processes and machines.
    """

    J: np.ndarray  # [N, N]
    h: np.ndarray  # [N]
    kind: str = "general"
    provenance: Mapping[str, float | int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        couplings = _as_float_array("the coupling matrix J", self.J)
        if couplings.ndim != 2 or couplings.shape[0] != couplings.shape[1]:
            raise ArnnGenError(
                f"the coupling matrix J must be a square 2-D array, got shape {couplings.shape}"
            )
        n_spins = couplings.shape[0]
        if n_spins < 1:
            raise ArnnGenError("the number of spins N must be >= 1, got N=0 (J has shape (0, 0))")
        if not np.all(np.isfinite(couplings)):
            i, j = np.argwhere(~np.isfinite(couplings))[0]
            raise ArnnGenError(
                f"couplings must be finite, got J[{i}, {j}] = {float(couplings[i, j])!r}"
            )
        diagonal = np.diagonal(couplings)
        if np.any(diagonal != 0.0):
            i = int(np.flatnonzero(diagonal)[0])
            raise ArnnGenError(
                f"couplings must have a zero diagonal (no self-interaction), "
                f"got J[{i}, {i}] = {float(diagonal[i])!r}"
            )
        asymmetry = np.abs(couplings - couplings.T)
        tolerance = _SYMMETRY_RTOL * max(1.0, float(np.max(np.abs(couplings))))
        if np.any(asymmetry > tolerance):
            i, j = np.unravel_index(int(np.argmax(asymmetry)), asymmetry.shape)
            raise ArnnGenError(
                f"couplings must be symmetric, got J[{i}, {j}] = {float(couplings[i, j])!r} "
                f"but J[{j}, {i}] = {float(couplings[j, i])!r}"
            )
        # Exact symmetrisation (J + J^T) / 2; entries that already agree are kept bit for bit
        # (0.5 * a + 0.5 * b avoids the overflow of a + b near the largest float).
        couplings = np.where(
            couplings == couplings.T, couplings, 0.5 * couplings + 0.5 * couplings.T
        )

        fields = _as_float_array("the fields h", self.h)
        if fields.shape != (n_spins,):
            raise ArnnGenError(
                f"the fields h must have shape ({n_spins},) to match J, got shape {fields.shape}"
            )
        if not np.all(np.isfinite(fields)):
            i = int(np.flatnonzero(~np.isfinite(fields))[0])
            raise ArnnGenError(f"fields must be finite, got h[{i}] = {float(fields[i])!r}")

        if self.kind not in KINDS:
            raise ArnnGenError(f"unknown system kind {self.kind!r}; expected one of {KINDS}")
        provenance = _normalise_provenance(self.provenance)
        _check_provenance(self.kind, provenance, couplings, fields)

        object.__setattr__(self, "J", _readonly(couplings))
        object.__setattr__(self, "h", _readonly(fields))
        object.__setattr__(self, "provenance", types.MappingProxyType(provenance))
        # Per (device, dtype) torch copies of J and h, filled by energy().
        object.__setattr__(self, "_tensor_cache", {})

    # -- views ---------------------------------------------------------------------------

    @property
    def N(self) -> int:  # noqa: N802 (physics name)
        """Number of spins."""
        return self.J.shape[0]

    @property
    def couplings(self) -> np.ndarray:
        """Alias of :attr:`J`, ``[N, N]``."""
        return self.J

    @property
    def fields(self) -> np.ndarray:
        """Alias of :attr:`h`, ``[N]``."""
        return self.h

    # -- physics -------------------------------------------------------------------------

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """Energy H(x) of spin configurations (docs/physics.md section 1).

        Args:
            x: ``[..., N]`` (typically ``[B, N]``, or ``[N]`` for one configuration) with
                every entry exactly -1 or +1, on any device. Floating tensors keep their
                dtype (J and h are cast to it); integer and bool tensors are computed in
                float64. A numpy array is converted to a tensor first.

        Returns:
            ``[...]`` energies (``[B]``, or a 0-d tensor for ``[N]`` input) on x's device.
        """
        if not isinstance(x, torch.Tensor):
            try:
                x = torch.as_tensor(np.asarray(x))
            except (TypeError, ValueError, RuntimeError) as err:
                raise ArnnGenError(f"spin configurations must be a tensor: {err}") from None
        if x.is_complex():
            raise ArnnGenError(f"spin configurations must be real, got dtype {x.dtype}")
        if not x.is_floating_point():
            x = x.to(torch.float64)
        if x.ndim == 0 or x.shape[-1] != self.N:
            raise ArnnGenError(
                f"spin configurations must have shape [B, {self.N}] or [{self.N}], "
                f"got {list(x.shape)}"
            )
        is_spin = (x == 1.0) | (x == -1.0)
        if not bool(torch.all(is_spin)):
            bad = x[~is_spin][0].item()
            raise ArnnGenError(f"spin configurations must contain only -1 and +1, found {bad!r}")
        couplings, fields = self._tensors(x.device, x.dtype)
        # sum_{i<j} J_ij x_i x_j = (1/2) x^T J x because J is symmetric with zero diagonal.
        pair = 0.5 * ((x @ couplings) * x).sum(dim=-1)  # [...]
        return -pair - x @ fields  # [...]

    def _tensors(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """J ``[N, N]`` and h ``[N]`` as tensors on ``device`` with ``dtype`` (cached)."""
        cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, ...]]
        cache = self._tensor_cache  # type: ignore[attr-defined]
        key = (device, dtype)
        if key not in cache:
            cache[key] = (
                torch.tensor(self.J, dtype=dtype, device=device),
                torch.tensor(self.h, dtype=dtype, device=device),
            )
        return cache[key]

    # -- identity ------------------------------------------------------------------------

    def signature(self) -> str:
        """sha256 hex digest of the canonical bytes of the system.

        The canonical form is: a format tag, ``kind``, the repr of the key-sorted provenance
        items, ``N``, then ``J`` and ``h`` as little-endian float64 bytes. It is the same on
        every machine and in every process (unlike :func:`hash`).
        """
        return self._signature

    @functools.cached_property
    def _signature(self) -> str:
        if self.kind == "cw":  # the arrays are a function of (N, J, h), checked on construction
            return _curie_weiss_signature(self.N, self.provenance)
        digest = hashlib.sha256()
        header = f"arnn-gen-hamiltonian-v1\0{self.kind}\0{self._provenance_key()!r}\0{self.N}\0"
        digest.update(header.encode("utf-8"))
        digest.update(self.J.astype("<f8", copy=False).tobytes())
        digest.update(self.h.astype("<f8", copy=False).tobytes())
        return digest.hexdigest()

    def _provenance_key(self) -> tuple[tuple[str, str, float | int], ...]:
        # The type name keeps 1 and 1.0 apart, so that equality agrees with the signature.
        return tuple((k, type(v).__name__, v) for k, v in self.provenance.items())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CurieWeiss):
            return self.kind == "cw" and self.signature() == other.signature()
        if not isinstance(other, Hamiltonian):
            return NotImplemented
        return (
            self.kind == other.kind
            and self._provenance_key() == other._provenance_key()
            and np.array_equal(self.J, other.J)
            and np.array_equal(self.h, other.h)
        )

    def __hash__(self) -> int:
        return int(self.signature()[:16], 16)

    def __repr__(self) -> str:
        items = "".join(f", {k}={v!r}" for k, v in self.provenance.items())
        return f"Hamiltonian(kind={self.kind!r}, N={self.N}{items})"

    def __reduce__(self) -> tuple[Any, ...]:
        # MappingProxyType does not pickle; rebuild through the validating constructor.
        return (Hamiltonian, (self.J, self.h, self.kind, dict(self.provenance)))

    def save(self, path: PathLike) -> None:
        """Write the system to ``path``; see :func:`save`."""
        save(self, path)


def _curie_weiss_signature(N: int, provenance: Mapping[str, float | int]) -> str:  # noqa: N803
    """The signature of a Curie-Weiss system, from its numbers alone (any N, no matrix)."""
    key = tuple((k, type(v).__name__, v) for k, v in sorted(provenance.items()))
    header = f"arnn-gen-curie-weiss-v1\0{key!r}\0{N}\0"
    return hashlib.sha256(header.encode("utf-8")).hexdigest()


@dataclass(frozen=True, eq=False)
class CurieWeiss:
    """The Curie-Weiss system by its three numbers: O(1) memory at any N <= MAX_SPINS.

    J_ij = J/N for every i != j and h_i = h (docs/physics.md section 1), as
    :func:`curie_weiss`, without the [N, N] matrix: the closed-form free energy, the CW
    modules and the energy need only N, J and h. :meth:`dense` (and the ``J``/``h``
    properties) build the :class:`Hamiltonian` on request, within the dense budget. Its
    :meth:`signature` is the dense system's.

    >>> system = CurieWeiss(10**6, 1.0, 0.1)
    >>> system.N, dict(system.provenance)
    (1000000, {'J': 1.0, 'h': 0.1})
    >>> CurieWeiss(50).signature() == curie_weiss(50).signature()
    True
    """

    size: int
    coupling: float = 1.0
    field: float = 0.0
    kind = "cw"

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", _check_n(self.size))
        object.__setattr__(self, "coupling", _finite_float("Curie-Weiss coupling J", self.coupling))
        object.__setattr__(self, "field", _finite_float("Curie-Weiss field h", self.field))

    @property
    def N(self) -> int:  # noqa: N802 (physics name)
        return self.size

    @property
    def provenance(self) -> Mapping[str, float]:
        return types.MappingProxyType({"J": self.coupling, "h": self.field})

    def signature(self) -> str:
        return _curie_weiss_signature(self.size, self.provenance)

    def dense(self) -> Hamiltonian:
        """The same system with its [N, N] couplings (refused beyond the dense budget)."""
        return _dense_curie_weiss(self.size, self.coupling, self.field)

    @property
    def J(self) -> np.ndarray:  # noqa: N802
        return self.dense().J

    @property
    def h(self) -> np.ndarray:
        return np.full(self.size, self.field)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """H(x) [...] from the magnetisation M = sum_i x_i: -(J/N)(M^2 - N)/2 - h M."""
        if x.shape[-1] != self.size:
            raise ArnnGenError(f"expected configurations [..., {self.size}], got {tuple(x.shape)}")
        if not bool(((x == 1) | (x == -1)).all()):
            raise ArnnGenError("spin configurations must contain only -1 and +1")
        M = x.sum(dim=-1)  # noqa: N806
        return -(self.coupling / self.size) * (M * M - self.size) / 2 - self.field * M

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CurieWeiss | Hamiltonian):
            return other.kind == "cw" and other.signature() == self.signature()
        return NotImplemented

    def __hash__(self) -> int:
        return int(self.signature()[:16], 16)

    def save(self, path: PathLike) -> None:
        save(self.dense(), path)


@functools.lru_cache(maxsize=4)
def _dense_curie_weiss(N: int, J: float, h: float) -> Hamiltonian:  # noqa: N803
    return curie_weiss(N, J, h)


def as_hamiltonian(system: Hamiltonian | CurieWeiss) -> Hamiltonian:
    """The dense :class:`Hamiltonian` of a system (a :class:`CurieWeiss` is built densely)."""
    if isinstance(system, CurieWeiss):
        return system.dense()
    if not isinstance(system, Hamiltonian):
        raise ArnnGenError(f"expected a Hamiltonian, got {type(system).__name__}")
    return system


def _check_provenance(
    kind: str, provenance: Mapping[str, float | int], couplings: np.ndarray, fields: np.ndarray
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
    field_value = float(provenance["h"])
    if not np.allclose(fields, field_value, rtol=_PROVENANCE_RTOL, atol=0.0):
        raise ArnnGenError(
            f"a {kind!r} system has uniform fields h_i = h = {field_value!r}, "
            f"but the fields range over [{float(fields.min())!r}, {float(fields.max())!r}]"
        )
    if kind == "cw":
        n_spins = couplings.shape[0]
        expected = float(provenance["J"]) / n_spins
        off_diagonal = couplings[~np.eye(n_spins, dtype=bool)]
        if not np.allclose(off_diagonal, expected, rtol=_PROVENANCE_RTOL, atol=0.0):
            low, high = float(off_diagonal.min()), float(off_diagonal.max())
            raise ArnnGenError(
                f"a 'cw' system has couplings J_ij = J/N = {expected!r} for i != j, "
                f"but they range over [{low!r}, {high!r}]"
            )
    if kind == "sk":
        seed = provenance["seed"]
        if not isinstance(seed, int) or seed < 0:
            raise ArnnGenError(f"an 'sk' system's seed must be an integer >= 0, got {seed!r}")
        if provenance["J"] < 0:
            raise ArnnGenError(f"SK coupling scale J must be >= 0, got {provenance['J']!r}")


# --------------------------------------------------------------------------------------
# Constructors
# --------------------------------------------------------------------------------------


def curie_weiss(N: int, J: float = 1.0, h: float = 0.0) -> Hamiltonian:  # noqa: N803
    """The Curie-Weiss model: J_ij = J/N for every i != j, h_i = h (docs/physics.md section 1).

    The couplings are stored densely (``[N, N]``); for the exact thermodynamics of very
    large N use :func:`arnn_gen.exact.curie_weiss_exact`, which needs no matrix.
    """
    n_spins = check_dense(_check_n(N), "the dense Curie-Weiss couplings")
    coupling = _finite_float("Curie-Weiss coupling J", J)
    field_value = _finite_float("Curie-Weiss field h", h)
    couplings = np.full((n_spins, n_spins), coupling / n_spins)  # [N, N]
    np.fill_diagonal(couplings, 0.0)
    fields = np.full(n_spins, field_value)  # [N]
    return Hamiltonian(couplings, fields, "cw", {"J": coupling, "h": field_value})


def sherrington_kirkpatrick(
    N: int,  # noqa: N803
    J: float = 1.0,  # noqa: N803
    h: float = 0.0,
    seed: int = 0,
) -> Hamiltonian:
    """One Sherrington-Kirkpatrick instance: J_ij ~ Normal(0, J^2/N) i.i.d. for i < j, h_i = h.

    The instance is a pure function of ``(N, J, h, seed)``, reproducible on any machine:
    ``rng = numpy.random.default_rng(seed)`` draws
    ``rng.normal(0.0, J / sqrt(N), size=N * (N - 1) // 2)``, which fill the strict upper
    triangle in row-major order (``numpy.triu_indices(N, 1)``: J_01, J_02, ..., J_0(N-1),
    J_12, ...); the lower triangle is its mirror image (docs/physics.md section 1).

    Args:
        N: number of spins, >= 1.
        J: coupling scale (standard deviation times sqrt(N)), finite and >= 0.
        h: uniform field.
        seed: integer >= 0 for :func:`numpy.random.default_rng`.
    """
    n_spins = check_dense(_check_n(N), "the couplings of an SK instance")
    scale = _finite_float("SK coupling scale J", J)
    if scale < 0:
        raise ArnnGenError(f"SK coupling scale J must be >= 0, got {scale!r}")
    field_value = _finite_float("SK field h", h)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ArnnGenError(f"SK seed must be an integer >= 0, got {seed!r}")
    seed = int(seed)
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, scale / math.sqrt(n_spins), size=n_spins * (n_spins - 1) // 2)
    couplings = np.zeros((n_spins, n_spins))  # [N, N]
    couplings[np.triu_indices(n_spins, 1)] = values
    couplings = couplings + couplings.T  # exactly symmetric, zero diagonal
    fields = np.full(n_spins, field_value)  # [N]
    return Hamiltonian(couplings, fields, "sk", {"J": scale, "h": field_value, "seed": seed})


def from_couplings(
    J: Any,  # noqa: N803
    h: Any = None,
    *,
    kind: str = "general",
    provenance: Mapping[str, float | int] | None = None,
) -> Hamiltonian:
    """A system from explicit couplings ``J`` (``[N, N]``) and fields ``h``.

    Args:
        J: ``[N, N]`` array-like or tensor, symmetric with zero diagonal.
        h: ``[N]`` fields; ``None`` means zero fields and a scalar is broadcast to ``[N]``.
        kind: one of :data:`KINDS` (a ``"cw"`` or ``"sk"`` kind needs matching provenance).
        provenance: numbers that generated the system (see :class:`Hamiltonian`).
    """
    couplings = _as_float_array("the coupling matrix J", J)
    n_spins = couplings.shape[0] if couplings.ndim >= 1 else 0
    if h is None:
        fields: Any = np.zeros(n_spins)
    elif np.ndim(h) == 0 and not isinstance(h, (str, bytes)):
        fields = np.full(n_spins, _finite_float("field h", h))
    else:
        fields = h
    return Hamiltonian(couplings, fields, kind, provenance or {})


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def _is_npz(path: Path) -> bool:
    return path.suffix.lower() == ".npz"


def load(path: PathLike, *, max_n: int | None = None, purpose: str = "") -> Hamiltonian:
    """Read a system written by :func:`save` (or by hand); the format follows the suffix.

    ``.npz``: arrays ``J`` (required) and ``h`` (optional: an archive without ``h`` means
    zero fields), and optional 0-d string arrays ``kind`` and ``provenance`` (JSON). Any
    other suffix: a text edge list (see the module docstring); it loads as a ``"general"``
    system.

    The number of spins (an .npz array header, a text file's ``N n`` line or its largest
    index) is checked against ``max_n`` (default and at most :data:`~arnn_gen.checks.MAX_DENSE_N`)
    before J is built; ``purpose`` names the operation in that error ("exact enumeration").
    """
    path = Path(path)
    if not path.exists():
        raise ArnnGenError(f"couplings file {path} does not exist")
    if path.is_dir():
        raise ArnnGenError(f"couplings file {path} is a directory")
    limit = MAX_DENSE_N if max_n is None else min(int(max_n), MAX_DENSE_N)
    try:
        if _is_npz(path):
            return _load_npz(path, limit, purpose)
        return _load_edges(path, limit, purpose)
    except ArnnGenError as err:
        message = str(err)
        if str(path) in message:
            raise
        raise ArnnGenError(f"couplings file {path}: {message}") from None


def _check_loaded_n(path: Path, n_spins: int, limit: int, purpose: str) -> None:
    """Refuse a file's size before anything [N, N] is allocated."""
    if n_spins > limit:
        what = purpose or "a dense system"
        raise ArnnGenError(
            f"couplings file {path} has N = {n_spins} spins; {what} is limited to N <= {limit}"
        )


def _npz_shape(archive: zipfile.ZipFile, member: str) -> tuple[int, ...]:
    """The shape in the header of ``member`` of an .npz archive, without reading its data."""
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(stream)
    return tuple(shape)


def _load_npz(path: Path, limit: int = MAX_DENSE_N, purpose: str = "") -> Hamiltonian:
    # NotImplementedError: a compression method or zip version zipfile lacks; RuntimeError:
    # an encrypted member.
    unreadable = (
        OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError,
        RuntimeError,
    )  # fmt: skip
    try:
        with zipfile.ZipFile(path) as archive:
            if "J.npy" in archive.namelist():
                shape = _npz_shape(archive, "J.npy")
                if len(shape) == 2 and shape[0] == shape[1]:
                    _check_loaded_n(path, shape[0], limit, purpose)
                elif len(shape) != 2 or shape[0] != shape[1]:
                    raise ArnnGenError(
                        f"couplings file {path}: J must be a square 2-D array, got shape {shape}"
                    )
    except ArnnGenError:
        raise
    except unreadable as err:
        raise ArnnGenError(f"cannot read couplings file {path}: {err}") from None
    try:
        # Open the file ourselves: numpy.load leaks its handle when the archive is corrupt.
        with open(path, "rb") as handle:
            archive = np.load(handle, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ArnnGenError(f"cannot read couplings file {path}: not an .npz archive")
            with archive:
                names = set(archive.files)
                if "J" not in names:
                    raise ArnnGenError(
                        f"couplings file {path} has no array 'J' (found {sorted(names)})"
                    )
                couplings = _npz_array(path, archive, "J")
                fields = _npz_array(path, archive, "h") if "h" in names else None
                kind = _npz_string(path, archive, "kind") if "kind" in names else "general"
                provenance_json = (
                    _npz_string(path, archive, "provenance") if "provenance" in names else "{}"
                )
                recorded = _npz_string(path, archive, "signature") if "signature" in names else None
    except ArnnGenError:
        raise
    except unreadable as err:
        raise ArnnGenError(f"cannot read couplings file {path}: {err}") from None
    try:
        provenance = json.loads(provenance_json)
    except json.JSONDecodeError as err:
        raise ArnnGenError(f"couplings file {path}: provenance is not valid JSON: {err}") from None
    if not isinstance(provenance, dict):
        raise ArnnGenError(
            f"couplings file {path}: provenance must be a JSON object, got {provenance_json!r}"
        )
    if fields is None:
        fields = np.zeros(couplings.shape[0] if couplings.ndim >= 1 else 0)
    # The Hamiltonian itself (not from_couplings) so that a stored h must have shape [N].
    hamiltonian = Hamiltonian(couplings, fields, kind, provenance)
    if recorded is not None and recorded != hamiltonian.signature():
        raise ArnnGenError(
            f"couplings file {path} is damaged: its arrays do not have the signature it records"
        )
    return hamiltonian


def _npz_array(path: Path, archive: Any, name: str) -> np.ndarray:
    value = archive[name]
    if not isinstance(value, np.ndarray):  # a member without the .npy suffix: raw bytes
        raise ArnnGenError(f"couplings file {path}: {name!r} is not a .npy array")
    return value


def _npz_string(path: Path, archive: Any, name: str) -> str:
    value = _npz_array(path, archive, name)
    if value.ndim != 0 or value.dtype.kind != "U":
        raise ArnnGenError(
            f"couplings file {path}: array {name!r} must be a 0-d string, "
            f"got dtype {value.dtype} and shape {value.shape}"
        )
    return str(value[()])


_MALFORMED = "expected 'i j J_ij', 'h i value' or 'N n'"


def _load_edges(path: Path, limit: int = MAX_DENSE_N, purpose: str = "") -> Hamiltonian:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ArnnGenError(f"cannot read couplings file {path}: {err}") from None

    declared_n: int | None = None
    declared_line = 0
    edges: dict[tuple[int, int], tuple[float, int]] = {}  # (i, j), i < j -> (J_ij, line)
    fields: dict[int, tuple[float, int]] = {}  # i -> (h_i, line)
    index_lines: list[tuple[int, int]] = []  # (largest index on the line, line)

    for line_no, raw in enumerate(text.splitlines(), start=1):
        content = raw.split("#", 1)[0].strip()
        if not content:
            continue
        where = f"{path} line {line_no}"
        tokens = content.split()
        try:
            if tokens[0] == "N" and len(tokens) == 2:
                n_value = int(tokens[1])
                if n_value < 1:
                    raise ArnnGenError(f"{where}: the number of spins must be >= 1, got {n_value}")
                if declared_n is not None and n_value != declared_n:
                    raise ArnnGenError(
                        f"{where}: N {n_value} conflicts with N {declared_n} "
                        f"on line {declared_line}"
                    )
                declared_n, declared_line = n_value, line_no
            elif tokens[0] == "h" and len(tokens) == 3:
                i, value = int(tokens[1]), float(tokens[2])
                _check_line_values(where, (i,), value)
                previous = fields.get(i)
                if previous is not None and previous[0] != value:
                    raise ArnnGenError(
                        f"{where}: field h_{i} = {value!r} conflicts with "
                        f"h_{i} = {previous[0]!r} on line {previous[1]}"
                    )
                fields[i] = (value, line_no)
                index_lines.append((i, line_no))
            elif len(tokens) == 3:
                i, j, value = int(tokens[0]), int(tokens[1]), float(tokens[2])
                _check_line_values(where, (i, j), value)
                index_lines.append((max(i, j), line_no))
                if i == j:
                    if value != 0.0:
                        raise ArnnGenError(
                            f"{where}: self-coupling J_{i}{i} = {value!r} is not allowed "
                            f"(the diagonal of J must be zero)"
                        )
                    continue
                pair = (min(i, j), max(i, j))
                previous = edges.get(pair)
                if previous is not None and previous[0] != value:
                    raise ArnnGenError(
                        f"{where}: coupling J_{pair[0]},{pair[1]} = {value!r} conflicts with "
                        f"{previous[0]!r} on line {previous[1]}"
                    )
                edges[pair] = (value, line_no)
            else:
                raise ArnnGenError(f"{where}: {_MALFORMED}, got {content!r}")
        except ArnnGenError:
            raise
        except ValueError:  # int() or float() of a malformed token
            raise ArnnGenError(f"{where}: {_MALFORMED}, got {content!r}") from None

    if declared_n is None and not index_lines:
        raise ArnnGenError(
            f"couplings file {path} defines no spins (no 'N n' line, couplings or fields)"
        )
    if declared_n is not None:
        for index, line_no in index_lines:
            if index >= declared_n:
                raise ArnnGenError(
                    f"{path} line {line_no}: spin index {index} is out of range "
                    f"for N={declared_n} (declared on line {declared_line})"
                )
        n_spins = declared_n
    else:
        n_spins = 1 + max(index for index, _ in index_lines)
    _check_loaded_n(path, n_spins, limit, purpose)

    couplings = np.zeros((n_spins, n_spins))  # [N, N]
    for (i, j), (value, _) in edges.items():
        couplings[i, j] = couplings[j, i] = value
    field_values = np.zeros(n_spins)  # [N]
    for i, (value, _) in fields.items():
        field_values[i] = value
    return from_couplings(couplings, field_values)


def _check_line_values(where: str, indices: Sequence[int], value: float) -> None:
    for index in indices:
        if index < 0:
            raise ArnnGenError(f"{where}: spin indices are 0-based and >= 0, got {index}")
    if not math.isfinite(value):
        raise ArnnGenError(f"{where}: values must be finite, got {value!r}")


def save(hamiltonian: Hamiltonian, path: PathLike) -> None:
    """Write ``hamiltonian`` to ``path`` atomically; ``.npz`` or a text edge list by suffix.

    The file is written to a temporary file in the same directory and renamed over
    ``path``, so an interrupted save never leaves a half-written file. Both formats
    round-trip the arrays exactly (text files use ``repr`` of each float); only ``.npz``
    keeps ``kind`` and ``provenance``.
    """
    if not isinstance(hamiltonian, Hamiltonian):
        raise ArnnGenError(f"save() needs a Hamiltonian, got {type(hamiltonian).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ArnnGenError(f"cannot write couplings file {path}: {path.parent} is not a directory")
    try:
        with _atomic_writer(path) as handle:
            if _is_npz(path):
                write_npz(hamiltonian, handle)
            else:
                handle.write(_edge_list_text(hamiltonian).encode("utf-8"))
    except OSError as err:
        raise ArnnGenError(f"cannot write couplings file {path}: {err}") from None


def write_npz(hamiltonian: Hamiltonian, handle: IO[bytes]) -> None:
    """Deterministic .npz: fixed member order and timestamps, no pickles."""
    members = {
        "J": hamiltonian.J.astype("<f8"),
        "h": hamiltonian.h.astype("<f8"),
        "kind": np.array(hamiltonian.kind),
        "provenance": np.array(json.dumps(dict(hamiltonian.provenance), sort_keys=True)),
        "signature": np.array(hamiltonian.signature()),
    }
    write_npz_archive(members, handle)


def _edge_list_text(hamiltonian: Hamiltonian) -> str:
    """Text edge list: 'N n', a kind comment, 'i j J_ij' for i < j, then 'h i value'."""
    rows, cols = np.nonzero(np.triu(hamiltonian.J, 1))
    couplings = (
        (i, j, hamiltonian.J[i, j]) for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
    )
    return edge_list_text(
        hamiltonian.N, hamiltonian.kind, hamiltonian.provenance, couplings, hamiltonian.h
    )
