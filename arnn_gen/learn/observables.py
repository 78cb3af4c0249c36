"""Estimators of thermodynamic observables from the samples of an autoregressive model.

A *model* is anything with ``N`` (int), ``beta`` (float), ``sample(batch_size,
generator=None) -> [B, N]`` (+-1 floats), ``log_prob(x) -> [B]`` (log Q(x)) and
``energy(x) -> [B]`` (H(x)): every emitted module's ``Model`` qualifies.

With L(x) = log Q(x) + beta H(x) and x ~ Q (docs/physics.md section 5):

* variational free energy F[Q] = E_Q[L] / beta >= F, with beta (F[Q] - F) = KL(Q || P);
  its per-spin estimate is the sample mean of L / (beta N), its "spread" the sample standard
  deviation of L / (beta N) (zero for an exact model, where L = -log Z for every x);
* importance-sampled free energy F_IS = -(1/beta) log mean exp(-L), consistent for any Q
  that covers P, with the effective sample size ESS = (sum w)^2 / sum w^2, w = exp(-L);
* energy <H>_Q / N, entropy -<log Q>_Q / N (so f[Q] = e - s / beta per spin), magnetisations,
  and the overlap q_ab = (1/N) sum_i a_i b_i of independent samples.

All arithmetic is float64, whatever the model's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from arnn_gen.checks import check_beta, check_int
from arnn_gen.errors import ArnnGenError

__all__ = [
    "Estimates",
    "estimates_from",
    "estimate",
    "effective_sample_size",
    "overlaps",
    "overlap_histogram",
]


@dataclass(frozen=True, eq=False)
class Estimates:
    """Sample estimates of one model's thermodynamics, all per spin.

    Attributes:
        beta: inverse temperature used in L = log Q + beta H.
        N: number of spins.
        samples: number of samples S.
        free_energy: mean of L / (beta N): the variational F[Q] / N, an upper bound of f.
        free_energy_std: sample standard deviation (ddof = 1; 0 when S = 1) of L / (beta N).
        free_energy_sem: free_energy_std / sqrt(S).
        free_energy_is: -(1 / (beta N)) log mean exp(-L), importance sampled.
        free_energy_is_sem: delta-method standard error of free_energy_is,
            std(w) / (mean(w) sqrt(S) beta N) with w = exp(-L) (ddof = 1; 0 when S = 1).
        ess: effective sample size (sum w)^2 / sum w^2, between 1 and S.
        energy: <H>_Q / N.
        entropy: -<log Q>_Q / N.
        magnetization_abs: <|sum_i x_i|>_Q / N.
        magnetizations: ``[N]`` float64 (read-only), <x_i>_Q.
    """

    beta: float
    N: int
    samples: int
    free_energy: float
    free_energy_std: float
    free_energy_sem: float
    free_energy_is: float
    free_energy_is_sem: float
    ess: float
    energy: float
    entropy: float
    magnetization_abs: float
    magnetizations: np.ndarray  # [N]

    def __post_init__(self) -> None:
        magnetizations = np.array(self.magnetizations, dtype=np.float64)  # [N]
        if magnetizations.shape != (self.N,):
            raise ArnnGenError(
                f"magnetizations must have shape ({self.N},), got {magnetizations.shape}"
            )
        magnetizations.flags.writeable = False
        object.__setattr__(self, "magnetizations", magnetizations)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict keyed by the field names (magnetizations as a list of floats)."""
        return {
            "beta": float(self.beta),
            "N": int(self.N),
            "samples": int(self.samples),
            "free_energy": float(self.free_energy),
            "free_energy_std": float(self.free_energy_std),
            "free_energy_sem": float(self.free_energy_sem),
            "free_energy_is": float(self.free_energy_is),
            "free_energy_is_sem": float(self.free_energy_is_sem),
            "ess": float(self.ess),
            "energy": float(self.energy),
            "entropy": float(self.entropy),
            "magnetization_abs": float(self.magnetization_abs),
            "magnetizations": [float(m) for m in self.magnetizations],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Estimates):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        scalars = tuple(v for k, v in self.to_dict().items() if k != "magnetizations")
        return hash((scalars, self.magnetizations.tobytes()))


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _as_tensor(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    else:
        try:
            tensor = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError, RuntimeError):
            raise ArnnGenError(f"{name} must be a tensor, got {type(value).__name__}") from None
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise ArnnGenError(f"{name} must be real numbers, got dtype {tensor.dtype}")
    return tensor.to(torch.float64)


def _check_spins(x: Any) -> torch.Tensor:
    """x as a float64 ``[S, N]`` tensor of +-1, S >= 1 and N >= 1."""
    x = _as_tensor("the samples x", x)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ArnnGenError(
            f"the samples x must have shape [S, N] with S, N >= 1, got {list(x.shape)}"
        )
    is_spin = (x == 1.0) | (x == -1.0)
    if not bool(is_spin.all()):
        bad = x[~is_spin][0].item()
        raise ArnnGenError(f"the samples x must contain only -1 and +1, found {bad!r}")
    return x


def _check_model(model: Any) -> int:
    """The model's N, after checking that it has the model interface."""
    missing = [
        name for name in ("N", "beta", "sample", "log_prob", "energy") if not hasattr(model, name)
    ]
    if missing:
        raise ArnnGenError(
            f"a model needs N, beta, sample, log_prob and energy; "
            f"{type(model).__name__} lacks {', '.join(missing)}"
        )
    return check_int("the model's N", model.N, 1)


def _sample_std(values: torch.Tensor) -> float:
    """Sample standard deviation (ddof = 1) of ``[S]`` values; 0 for S = 1."""
    if values.numel() < 2:
        return 0.0
    return float(values.std(correction=1))


# --------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------


def effective_sample_size(log_w: torch.Tensor) -> torch.Tensor:
    """ESS = (sum w)^2 / sum w^2 of importance weights w = exp(log_w) [S], by log-sum-exp
    (neither overflows nor underflows): a 0-d tensor on log_w's device, read when needed."""
    return torch.exp(2.0 * torch.logsumexp(log_w, 0) - torch.logsumexp(2.0 * log_w, 0))


def estimates_from(x: Any, log_q: Any, energy: Any, beta: Any) -> Estimates:
    """Estimates from S samples x ~ Q with their log Q(x) and H(x) (docs/physics.md section 5).

    Args:
        x: ``[S, N]`` samples of +-1.
        log_q: ``[S]`` log Q(x).
        energy: ``[S]`` H(x).
        beta: inverse temperature, finite and > 0.

    Returns:
        :class:`Estimates`, computed in float64; the log-weights -L are combined with
        log-sum-exp, so F_IS and the ESS neither overflow nor underflow.
    """
    beta = check_beta(beta)
    x = _check_spins(x)  # [S, N]
    n_samples, n_spins = x.shape
    log_q = _as_tensor("log_q", log_q)  # [S]
    energy = _as_tensor("energy", energy)  # [S]
    for name, values in (("log_q", log_q), ("energy", energy)):
        if values.shape != (n_samples,):
            raise ArnnGenError(
                f"{name} must have shape [{n_samples}] to match x {list(x.shape)}, "
                f"got {list(values.shape)}"
            )
        if not bool(torch.isfinite(values).all()):
            raise ArnnGenError(f"{name} must be finite, got a non-finite value")

    scale = beta * n_spins
    loss = log_q + beta * energy  # [S] L = log Q + beta H
    free = loss / scale  # [S] L / (beta N)
    free_std = _sample_std(free)

    # Importance sampling with w = exp(-L): log mean w = logsumexp(-L) - log S.
    log_w = -loss  # [S]
    log_sum_w = float(torch.logsumexp(log_w, dim=0))
    ess = float(effective_sample_size(log_w))
    # Delta method: var(log mean w) ~ var(w) / (S mean(w)^2); weights rescaled by max first.
    w = torch.exp(log_w - log_w.max())  # [S] in (0, 1]
    relative_spread = _sample_std(w) / float(w.mean())

    magnetization = x.sum(dim=1)  # [S] M = sum_i x_i
    return Estimates(
        beta=beta,
        N=n_spins,
        samples=n_samples,
        free_energy=float(free.mean()),
        free_energy_std=free_std,
        free_energy_sem=free_std / math.sqrt(n_samples),
        free_energy_is=-(log_sum_w - math.log(n_samples)) / scale,
        free_energy_is_sem=relative_spread / (math.sqrt(n_samples) * scale),
        ess=ess,
        energy=float(energy.mean()) / n_spins,
        entropy=-float(log_q.mean()) / n_spins,
        magnetization_abs=float(magnetization.abs().mean()) / n_spins,
        magnetizations=x.mean(dim=0).cpu().numpy(),
    )


@torch.no_grad()
def estimate(
    model: Any,
    *,
    beta: float | None = None,
    samples: int = 20000,
    batch_size: int = 2000,
    generator: torch.Generator | None = None,
) -> Estimates:
    """Draw ``samples`` configurations from the model, ``batch_size`` at a time, and estimate.

    Args:
        model: anything with N, beta, sample, log_prob and energy (module docstring).
        beta: the beta of L = log Q + beta H; None means ``model.beta``.
        samples: total number of samples S >= 1 (the paper uses 20,000).
        batch_size: samples per call of ``model.sample``, >= 1.
        generator: torch generator on the model's device, for reproducible sampling.

    Returns:
        :func:`estimates_from` of the concatenated ``[S, N]`` samples.
    """
    n_spins = _check_model(model)
    beta = check_beta(model.beta if beta is None else beta)
    samples = check_int("samples", samples, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    xs, log_qs, energies = [], [], []
    remaining = samples
    while remaining > 0:
        count = min(batch_size, remaining)
        x = model.sample(count, generator=generator)  # [B, N]
        if tuple(x.shape) != (count, n_spins):
            raise ArnnGenError(
                f"model.sample({count}) returned shape {list(x.shape)}, "
                f"expected [{count}, {n_spins}]"
            )
        xs.append(x.to(torch.float64))
        log_qs.append(model.log_prob(x).to(torch.float64))  # [B]
        energies.append(model.energy(x).to(torch.float64))  # [B]
        remaining -= count
    return estimates_from(torch.cat(xs), torch.cat(log_qs), torch.cat(energies), beta)


# --------------------------------------------------------------------------------------
# Overlaps
# --------------------------------------------------------------------------------------


def overlaps(x: Any) -> torch.Tensor:
    """Overlaps q_ab = (1/N) sum_i a_i b_i of independent pairs of samples (docs/physics.md 5).

    Sample a is row k of the first half of x and b row k of the second half,
    k = 0..S//2 - 1 (a last, odd row is unused), so independent samples give independent
    overlaps.

    Args:
        x: ``[S, N]`` samples of +-1, S >= 2.

    Returns:
        ``[S // 2]`` float64 on x's device; each value is in [-1, 1] and a multiple of 2/N
        offset from 1 (q = 1 - 2 d / N with d the Hamming distance).
    """
    x = _check_spins(x)  # [S, N]
    half = x.shape[0] // 2
    if half < 1:
        raise ArnnGenError(f"overlaps need at least 2 samples, got {x.shape[0]}")
    a, b = x[:half], x[half : 2 * half]  # [S//2, N] each
    return (a * b).sum(dim=1) / x.shape[1]  # [S//2]


#: Most bins of the default, lattice-aligned P(q) histogram.
OVERLAP_BINS = 41


def overlap_histogram(x: Any, *, bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Normalised histogram of :func:`overlaps`: an estimate of P(q).

    The overlap of N spins takes the N + 1 values q = -1, -1 + 2/N, ..., 1. By default
    (``bins=None``) every bin holds the same number m of these values, m the smallest that
    gives at most :data:`OVERLAP_BINS` bins, and the values sit at the bins' centres: the
    edges run from -1 - 1/N in steps of 2m/N (past 1 by up to (2m - 1)/N when m does not
    divide N + 1). With N = 20, that is 21 bins of width 0.1, one per value; a grid not
    aligned with the values would leave bins empty or doubled in turn.

    With an int ``bins``, the ``bins + 1`` edges are ``numpy.linspace(-1, 1, bins + 1)``; as
    in :func:`numpy.histogram`, every bin is half-open [left, right) except the last, which
    also holds q = 1.

    Args:
        x: ``[S, N]`` samples of +-1, S >= 2.
        bins: None (aligned with the values of q), or a number of bins >= 1 over [-1, 1].

    Returns:
        ``(edges [bins + 1], density [bins])`` float64 arrays; ``sum(density * diff(edges))``
        is 1.
    """
    q = overlaps(x).cpu().numpy()  # [S//2]
    if bins is None:
        n_spins = int(torch.as_tensor(x).shape[1])
        per_bin = -(-(n_spins + 1) // OVERLAP_BINS)  # ceil: values of q per bin
        count = -(-(n_spins + 1) // per_bin)
        edges = (-n_spins - 1 + 2 * per_bin * np.arange(count + 1)) / n_spins
    else:
        bins = check_int("bins", bins, 1)
        edges = np.linspace(-1.0, 1.0, bins + 1)  # [bins + 1]
    counts, _ = np.histogram(q, bins=edges)  # [bins]
    density = counts / (q.size * np.diff(edges))  # [bins]
    return edges, density
