"""Exact thermodynamics: the references every numerical test of arnn-gen compares against.

Two routes to the partition function Z = sum_x exp(-beta H(x)) (docs/physics.md section 1):

* enumeration of all 2^N configurations (:func:`enumerate_exact`), streamed in chunks with
  a running log-sum-exp, in float64 torch; limited to N <= :data:`MAX_ENUMERATION_N`;
* the binomial formula of the Curie-Weiss model (:func:`curie_weiss_exact`, docs/physics.md
  section 3), exact at any N (tested up to N = 10^6), and its N -> infinity limit
  (:func:`curie_weiss_mean_field`, the saddle point m = tanh(beta (J m + h))).

:func:`arnn_gen.exact.exact` picks the route (:mod:`arnn_gen.exact.dispatch`).
:func:`exact_conditionals` and :func:`log_boltzmann` give the exact autoregressive
conditionals P(x_i = +1 | x_<i) and log P(x) that the derived networks must reproduce
(docs/physics.md section 2).

All per-spin quantities follow one convention: f = -log Z / (beta N), e = <H> / N,
s = beta (e - f), |m| = <|sum_i x_i|> / N.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from arnn_gen.checks import check_beta, check_int, check_real
from arnn_gen.errors import ArnnGenError
from arnn_gen.systems import Hamiltonian, as_hamiltonian

__all__ = [
    "MAX_ENUMERATION_N",
    "ExactResult",
    "MeanField",
    "enumerate_configurations",
    "enumerate_exact",
    "log_boltzmann",
    "exact_conditionals",
    "curie_weiss_exact",
    "curie_weiss_mean_field",
    "solve_magnetization",
]

MAX_ENUMERATION_N = 24
"""Largest N whose 2^N configurations the enumerating references will visit."""

# Largest N for which enumerate_configurations can index configurations with int64.
_MAX_BITS = 62
_DEFAULT_CHUNK = 2**16


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ExactResult:
    """Exact thermodynamics of one system at one inverse temperature, per spin.

    Attributes:
        N: number of spins.
        beta: inverse temperature.
        log_z: log Z.
        free_energy: f = -log Z / (beta N).
        energy: e = <H> / N.
        entropy: s = beta (e - f).
        magnetization_abs: <|sum_i x_i|> / N, or None where the route does not give it:
            Kaufman's formula (the distribution of M is not in it) and frontier elimination
            beyond its work bound (MAX_MAGNETIZATION_WORK, about N^2 2^w). Never NaN: a missing
            value is None, written as JSON null by :meth:`to_dict`.
        magnetizations: ``[N]`` float64 (read-only), <x_i>.
        method: ``"enumeration"``, ``"curie-weiss formula"``, ``"frontier elimination"`` or
            ``"kaufman"``.
    """

    N: int
    beta: float
    log_z: float
    free_energy: float
    energy: float
    entropy: float
    magnetization_abs: float | None
    magnetizations: np.ndarray  # [N]
    method: str

    def __post_init__(self) -> None:
        magnetizations = np.array(self.magnetizations, dtype=np.float64)
        if magnetizations.shape != (self.N,):
            raise ArnnGenError(
                f"magnetizations must have shape ({self.N},), got {magnetizations.shape}"
            )
        scalars = ("log_z", "free_energy", "energy", "entropy", "magnetization_abs")
        # magnetization_abs alone may be missing (None).
        missing = ("magnetization_abs",) if self.magnetization_abs is None else ()
        present = [name for name in scalars if name not in missing]
        overflow = [name for name in present if not math.isfinite(getattr(self, name))]
        if overflow or not np.isfinite(magnetizations).all():
            raise ArnnGenError(
                f"the exact {(overflow or ['magnetizations'])[0]} at beta = {self.beta} "
                f"(N = {self.N}) is not finite in float64: beta times the energies overflows; "
                "lower beta or the couplings"
            )
        magnetizations.flags.writeable = False
        object.__setattr__(self, "magnetizations", magnetizations)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: N, beta, method, the per-spin scalars (magnetization_abs may be
        None), magnetizations as a list."""
        return {
            "N": int(self.N),
            "beta": float(self.beta),
            "method": self.method,
            "log_z": float(self.log_z),
            "free_energy": float(self.free_energy),
            "energy": float(self.energy),
            "entropy": float(self.entropy),
            "magnetization_abs": (
                None if self.magnetization_abs is None else float(self.magnetization_abs)
            ),
            "magnetizations": [float(m) for m in self.magnetizations],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ExactResult):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        scalars = tuple(v for k, v in self.to_dict().items() if k != "magnetizations")
        return hash((scalars, self.magnetizations.tobytes()))


@dataclass(frozen=True)
class MeanField:
    """Curie-Weiss thermodynamics for N -> infinity (saddle point, docs/physics.md section 3).

    Attributes:
        beta, J, h: the parameters.
        magnetization: m, the solution of m = tanh(beta (J m + h)) of lowest free energy;
            m >= 0 for h >= 0 (the positive branch when h = 0 and beta J > 1), m < 0 for h < 0.
        free_energy: f = J m^2 / 2 - (1/beta) log(2 cosh(beta (J m + h))), per spin.
        energy: e = -J m^2 / 2 - h m, per spin.
        entropy: s = beta (e - f), per spin.
    """

    beta: float
    J: float
    h: float
    magnetization: float
    free_energy: float
    energy: float
    entropy: float

    def to_dict(self) -> dict[str, float]:
        """JSON-able dict of all fields."""
        return {
            "beta": self.beta,
            "J": self.J,
            "h": self.h,
            "magnetization": self.magnetization,
            "free_energy": self.free_energy,
            "energy": self.energy,
            "entropy": self.entropy,
        }


def _check_enumerable(n_spins: int) -> None:
    if n_spins > MAX_ENUMERATION_N:
        raise ArnnGenError(
            f"exact enumeration is limited to N <= {MAX_ENUMERATION_N} spins "
            f"(got N={n_spins}); the Curie-Weiss formula covers any N"
        )


# --------------------------------------------------------------------------------------
# Enumeration
# --------------------------------------------------------------------------------------


def enumerate_configurations(
    N: int,  # noqa: N803
    *,
    start: int = 0,
    stop: int | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Spin configurations number ``start`` to ``stop - 1`` of N spins, in a fixed order.

    Configuration c has x_i = +1 if bit (N - 1 - i) of c is 0 and x_i = -1 otherwise:
    x_0 is the most significant bit, c = 0 is all +1 and c = 2^N - 1 is all -1. This is the
    order of ``itertools.product((1, -1), repeat=N)``, and the configurations with
    x_0 = +1 are exactly the first half.

    Args:
        N: number of spins, 0 <= N <= 62 (N = 0 gives the single empty configuration).
        start, stop: the half-open range of configuration numbers, 0 <= start <= stop <= 2^N;
            ``stop=None`` means 2^N and is refused for N > MAX_ENUMERATION_N (too large).
        dtype, device: of the returned tensor.

    Returns:
        ``[stop - start, N]`` tensor of +-1.
    """
    n_spins = check_int("the number of spins N", N, 0)
    if n_spins > _MAX_BITS:
        raise ArnnGenError(f"enumerate_configurations supports N <= {_MAX_BITS}, got N={N}")
    total = 2**n_spins
    if stop is None:
        _check_enumerable(n_spins)
        stop = total
    start = check_int("start", start, 0)
    stop = check_int("stop", stop, 0)
    if not start <= stop <= total:
        raise ArnnGenError(
            f"configuration range must satisfy 0 <= start <= stop <= 2^N = {total}, "
            f"got start={start}, stop={stop}"
        )
    numbers = torch.arange(start, stop, dtype=torch.int64, device=device)  # [C]
    shifts = torch.arange(n_spins - 1, -1, -1, dtype=torch.int64, device=device)  # [N]
    bits = (numbers[:, None] >> shifts[None, :]) & 1  # [C, N]
    return (1 - 2 * bits).to(dtype)


def _chunk_ranges(total: int, chunk_size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + chunk_size, total)) for lo in range(0, total, chunk_size)]


def enumerate_exact(
    hamiltonian: Hamiltonian, beta: float, *, chunk_size: int = _DEFAULT_CHUNK
) -> ExactResult:
    """Exact thermodynamics by enumerating all 2^N configurations (N <= 24).

    Configurations are visited ``chunk_size`` at a time; the Boltzmann weights
    exp(-beta H(x)) are accumulated relative to a running maximum of -beta H (a streaming
    log-sum-exp), so memory stays O(chunk_size * N) and nothing overflows.

    Returns:
        :class:`ExactResult` with ``method="enumeration"``.
    """
    hamiltonian = as_hamiltonian(hamiltonian)
    beta = check_beta(beta)
    chunk_size = check_int("chunk_size", chunk_size, 1)
    n_spins = hamiltonian.N
    _check_enumerable(n_spins)

    dtype = torch.float64
    # Sums of w = exp(-beta H - shift), of w H, of w |M| and of w x, all scaled by
    # exp(-shift) where shift is the largest -beta H seen so far.
    shift = -math.inf
    sum_w = torch.zeros((), dtype=dtype)
    sum_w_energy = torch.zeros((), dtype=dtype)
    sum_w_abs_m = torch.zeros((), dtype=dtype)
    sum_w_x = torch.zeros(n_spins, dtype=dtype)  # [N]
    for lo, hi in _chunk_ranges(2**n_spins, chunk_size):
        x = enumerate_configurations(n_spins, start=lo, stop=hi, dtype=dtype)  # [C, N]
        energy = hamiltonian.energy(x)  # [C]
        log_w = -beta * energy  # [C]
        new_shift = max(shift, float(log_w.max()))
        rescale = math.exp(shift - new_shift)  # 0.0 on the first chunk
        w = torch.exp(log_w - new_shift)  # [C]
        sum_w = sum_w * rescale + w.sum()
        sum_w_energy = sum_w_energy * rescale + (w * energy).sum()
        sum_w_abs_m = sum_w_abs_m * rescale + (w * x.sum(dim=1).abs()).sum()
        sum_w_x = sum_w_x * rescale + w @ x  # [N]
        shift = new_shift

    log_z = shift + math.log(float(sum_w))
    mean_energy = float(sum_w_energy / sum_w)
    return ExactResult(
        N=n_spins,
        beta=beta,
        log_z=log_z,
        free_energy=-log_z / (beta * n_spins),
        energy=mean_energy / n_spins,
        entropy=(beta * mean_energy + log_z) / n_spins,
        magnetization_abs=float(sum_w_abs_m / sum_w) / n_spins,
        magnetizations=(sum_w_x / sum_w).numpy(),
        method="enumeration",
    )


def log_boltzmann(hamiltonian: Hamiltonian, beta: float, x: torch.Tensor) -> torch.Tensor:
    """Exact log P(x) = -beta H(x) - log Z of the Boltzmann distribution.

    log Z comes from :func:`arnn_gen.exact.exact`: enumeration (N <= 24), the binomial
    formula of a Curie-Weiss system (any N), or frontier elimination (N > 24 of small
    elimination width).

    Args:
        x: ``[B, N]`` (or ``[N]``) configurations of +-1, any device.

    Returns:
        ``[B]`` (or 0-d) float64 on x's device.
    """
    hamiltonian = as_hamiltonian(hamiltonian)
    beta = check_beta(beta)
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    from arnn_gen.exact.dispatch import exact  # the dispatcher imports this module

    log_z = exact(hamiltonian, beta).log_z
    return -beta * hamiltonian.energy(x.to(torch.float64)) - log_z


def _as_prefix(index: int, prefix: Any, n_spins: int) -> torch.Tensor:
    """Validate one prefix x_<i and return it as a float64 CPU tensor ``[i]``."""
    if isinstance(prefix, torch.Tensor):
        tensor = prefix.detach().to(device="cpu", dtype=torch.float64)
    else:
        try:
            tensor = torch.as_tensor(np.asarray(prefix, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise ArnnGenError(f"prefix {index} is not a numeric array: {err}") from None
    if tensor.ndim != 1 or tensor.shape[0] >= n_spins:
        raise ArnnGenError(
            f"prefix {index} must be 1-D with length 0..{n_spins - 1} (N={n_spins}), "
            f"got shape {list(tensor.shape)}"
        )
    if not bool(torch.all((tensor == 1.0) | (tensor == -1.0))):
        raise ArnnGenError(f"prefix {index} must contain only -1 and +1, got {tensor.tolist()}")
    return tensor


def _log_sum_completions(
    hamiltonian: Hamiltonian,
    beta: float,
    prefixes: torch.Tensor,
    start: int,
    stop: int,
    rows_per_chunk: int,
) -> torch.Tensor:
    """log sum_c exp(-beta H(prefix, c)) over completions c numbered start..stop-1.

    Args:
        prefixes: ``[P, i]`` prefixes x_<i sharing one length i; the completions are the
            configurations x_>=i of N - i spins in :func:`enumerate_configurations` order.

    Returns:
        ``[P]`` float64.
    """
    n_prefix, length = prefixes.shape
    n_free = hamiltonian.N - length
    result = torch.full((n_prefix,), -math.inf, dtype=torch.float64)  # [P]
    for lo, hi in _chunk_ranges(stop - start, rows_per_chunk):
        completions = enumerate_configurations(n_free, start=start + lo, stop=start + hi)
        n_rows = completions.shape[0]
        x = torch.cat(
            (
                prefixes[:, None, :].expand(n_prefix, n_rows, length),
                completions[None, :, :].expand(n_prefix, n_rows, n_free),
            ),
            dim=2,
        )  # [P, C, N]
        log_w = -beta * hamiltonian.energy(x)  # [P, C]
        result = torch.logaddexp(result, torch.logsumexp(log_w, dim=1))
    return result


def exact_conditionals(
    hamiltonian: Hamiltonian,
    beta: float,
    prefixes: Sequence[Any],
    *,
    chunk_size: int = _DEFAULT_CHUNK,
) -> torch.Tensor:
    """Exact autoregressive conditionals P(x_i = +1 | x_<i) by brute-force marginal sums.

    For a prefix of length i (fixing x_0..x_{i-1}), the 2^(N-i) completions x_>=i are
    enumerated and

        P(x_i = +1 | x_<i) = sigmoid(log Z_+ - log Z_-),
        Z_+- = sum_{x_>i} exp(-beta H(x_<i, x_i = +-1, x_>i))

    (docs/physics.md section 2). Prefixes of equal length are processed together, and at most
    about ``chunk_size`` full configurations are held at once.

    Args:
        prefixes: sequence of 1-D +-1 arrays or tensors of lengths 0..N-1 (a ``[P, i]``
            tensor also works); the length selects the site i.
        chunk_size: configurations per chunk.

    Returns:
        ``[len(prefixes)]`` float64 CPU tensor.
    """
    hamiltonian = as_hamiltonian(hamiltonian)
    beta = check_beta(beta)
    chunk_size = check_int("chunk_size", chunk_size, 1)
    n_spins = hamiltonian.N
    _check_enumerable(n_spins)
    tensors = [_as_prefix(k, prefix, n_spins) for k, prefix in enumerate(prefixes)]

    by_length: dict[int, list[int]] = {}
    for k, tensor in enumerate(tensors):
        by_length.setdefault(tensor.shape[0], []).append(k)

    result = torch.empty(len(tensors), dtype=torch.float64)  # [len(prefixes)]
    for length, indices in sorted(by_length.items()):
        n_free = n_spins - length
        half = 2 ** (n_free - 1)  # completions with x_i = +1 come first
        batch = max(1, chunk_size // (2 * half))  # prefixes per pass
        for p0 in range(0, len(indices), batch):
            chosen = indices[p0 : p0 + batch]
            group = torch.stack([tensors[k] for k in chosen]).reshape(len(chosen), length)
            rows = max(1, chunk_size // len(chosen))
            log_z_plus = _log_sum_completions(hamiltonian, beta, group, 0, half, rows)
            log_z_minus = _log_sum_completions(hamiltonian, beta, group, half, 2 * half, rows)
            result[chosen] = torch.sigmoid(log_z_plus - log_z_minus)
    return result


# --------------------------------------------------------------------------------------
# Curie-Weiss
# --------------------------------------------------------------------------------------


def curie_weiss_exact(N: int, beta: float, J: float = 1.0, h: float = 0.0) -> ExactResult:  # noqa: N803
    """Exact finite-N Curie-Weiss thermodynamics from the binomial formula.

    docs/physics.md section 3: with M = N - 2k the magnetisation of the configurations having k
    spins down,

        Z = sum_{k=0}^{N} binom(N, k) exp(beta h M + (beta J / 2N) (M^2 - N)),

    evaluated as a float64 log-sum-exp over k with log binom(N, k) from ``torch.lgamma``:
    vectorised over k, stable up to N = 10^6 and beyond. <H>, <|M|> and <M> come from the
    same weights (H = -(J / 2N)(M^2 - N) - h M); every site has <x_i> = <M> / N.

    Returns:
        :class:`ExactResult` with ``method="curie-weiss formula"``.
    """
    n_spins = check_int("the number of spins N", N, 1)
    beta = check_beta(beta)
    coupling = check_real("Curie-Weiss coupling J", J)
    field_value = check_real("Curie-Weiss field h", h)

    dtype = torch.float64
    k = torch.arange(n_spins + 1, dtype=dtype)  # [N + 1]
    n = torch.tensor(float(n_spins), dtype=dtype)
    magnetization = n - 2.0 * k  # [N + 1], M = sum_i x_i
    log_binomial = torch.lgamma(n + 1.0) - torch.lgamma(k + 1.0) - torch.lgamma(n - k + 1.0)
    # Energy of any configuration with magnetisation M: the pair sum is (M^2 - N) / 2.
    energy = -(coupling / (2.0 * n_spins)) * (magnetization**2 - n_spins) - field_value * (
        magnetization
    )  # [N + 1]
    log_w = log_binomial - beta * energy  # [N + 1]
    log_z = float(torch.logsumexp(log_w, dim=0))
    p = torch.softmax(log_w, dim=0)  # [N + 1], P(M = N - 2k)
    mean_energy = float(p @ energy)
    mean_m = float(p @ magnetization) / n_spins
    return ExactResult(
        N=n_spins,
        beta=beta,
        log_z=log_z,
        free_energy=-log_z / (beta * n_spins),
        energy=mean_energy / n_spins,
        entropy=(beta * mean_energy + log_z) / n_spins,
        magnetization_abs=float(p @ magnetization.abs()) / n_spins,
        magnetizations=np.full(n_spins, mean_m),
        method="curie-weiss formula",
    )


def _log_2cosh(u: float) -> float:
    """log(2 cosh u), without overflow for large |u|."""
    a = abs(u)
    return a + math.log1p(math.exp(-2.0 * a))


def _mean_field_free_energy(m: float, beta: float, coupling: float, field_value: float) -> float:
    """Landau free energy f(m) = J m^2 / 2 - (1/beta) log 2 cosh(beta (J m + h))."""
    return 0.5 * coupling * m * m - _log_2cosh(beta * (coupling * m + field_value)) / beta


def _bisect_root(g: Any, lo: float, hi: float) -> float | None:
    """A root of g in [lo, hi] if g changes sign there (g(lo) <= 0 <= g(hi) or reverse)."""
    g_lo, g_hi = g(lo), g(hi)
    if g_lo == 0.0:
        return lo
    if g_hi == 0.0:
        return hi
    if (g_lo < 0.0) == (g_hi < 0.0):
        return None
    increasing = g_lo < 0.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi) or hi - lo <= 1e-16:
            break
        g_mid = g(mid)
        if g_mid == 0.0:
            return mid
        if (g_mid < 0.0) == increasing:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def solve_magnetization(beta: float, J: float = 1.0, h: float = 0.0) -> float:  # noqa: N803
    """Solve m = tanh(beta (J m + h)) and return the solution of lowest free energy.

    g(m) = m - tanh(beta (J m + h)) has g(-1) <= 0 <= g(1). For J <= 0 or beta J <= 1 it is
    monotone, with one root. Otherwise g' = 1 - beta J sech^2(beta (J m + h)) vanishes at
    m_+- = (+-arccosh(sqrt(beta J)) / beta - h) / J, which split [-1, 1] into at most three
    monotone pieces; each piece holds at most one root, found by bisection to machine
    precision (well below 1e-14). Among the roots the one minimising the Landau free energy
    f(m) = J m^2 / 2 - (1/beta) log 2 cosh(beta (J m + h)) is returned; at h = 0 the two
    symmetric minima tie and the positive one is returned (docs/physics.md section 3).
    """
    beta = check_beta(beta)
    coupling = check_real("coupling J", J)
    field_value = check_real("field h", h)
    if coupling == 0.0:
        return math.tanh(beta * field_value)

    def g(m: float) -> float:
        return m - math.tanh(beta * (coupling * m + field_value))

    if coupling < 0.0 or beta * coupling <= 1.0:
        root = _bisect_root(g, -1.0, 1.0)
        assert root is not None  # g(-1) <= 0 <= g(1)
        return root

    u0 = math.acosh(math.sqrt(beta * coupling))  # beta (J m + h) at the turning points
    turning = sorted(
        min(1.0, max(-1.0, (s * u0 / beta - field_value) / coupling)) for s in (-1.0, 1.0)
    )
    edges = [-1.0, *turning, 1.0]
    roots = [
        root
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        if lo < hi and (root := _bisect_root(g, lo, hi)) is not None
    ]
    if field_value == 0.0:
        return abs(max(roots))  # symmetric minima: the positive branch (0 if it is the only)
    return min(roots, key=lambda m: _mean_field_free_energy(m, beta, coupling, field_value))


def curie_weiss_mean_field(beta: float, J: float = 1.0, h: float = 0.0) -> MeanField:  # noqa: N803
    """Curie-Weiss thermodynamics per spin in the limit N -> infinity (saddle point).

    m = :func:`solve_magnetization` (beta, J, h);
    f = J m^2 / 2 - (1/beta) log(2 cosh(beta (J m + h))), e = -J m^2 / 2 - h m,
    s = beta (e - f) (docs/physics.md section 3).
    """
    beta = check_beta(beta)
    coupling = check_real("Curie-Weiss coupling J", J)
    field_value = check_real("Curie-Weiss field h", h)
    m = solve_magnetization(beta, coupling, field_value)
    free_energy = _mean_field_free_energy(m, beta, coupling, field_value)
    energy = -0.5 * coupling * m * m - field_value * m
    return MeanField(
        beta=beta,
        J=coupling,
        h=field_value,
        magnetization=m,
        free_energy=free_energy,
        energy=energy,
        entropy=beta * (energy - free_energy),
    )
