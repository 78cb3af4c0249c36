"""Closed-form references: the 2D Ising torus (Kaufman, Onsager) and the annealed SK model.

docs/physics.md section 8.

* :func:`kaufman_log_z` / :func:`kaufman_exact`: Kaufman's (1949) exact log Z of the
  nearest-neighbour ferromagnet (h = 0) on an L x W torus, any finite L, W; with K = beta J,

      Z = 1/2 (2 sinh 2K)^{LW/2} (Z_1 + Z_2 + Z_3 + Z_4),
      Z_1 = prod_{r=0}^{W-1} 2 cosh(L gamma_{2r+1} / 2),  Z_2 = prod_r 2 sinh(L gamma_{2r+1} / 2),
      Z_3 = prod_{r=0}^{W-1} 2 cosh(L gamma_{2r} / 2),    Z_4 = prod_r 2 sinh(L gamma_{2r} / 2),
      cosh gamma_k = cosh 2K coth 2K - cos(pi k / W)  (k >= 1),   gamma_0 = 2K + ln tanh K.

  gamma_0 is negative above beta_c, so Z_4 changes sign there; the four products are summed
  in log space with their signs. The torus is symmetric under L <-> W, and so is the result.
  For L or W = 2 the torus has each bond of that direction twice (coupling 2J between the
  two rows), for L or W = 1 a bond of each site to itself (a constant e^K per site): the
  formula holds for those multigraphs. An antiferromagnet (J < 0) on a torus with L and W
  even is the ferromagnet after flipping one sublattice; odd sizes are frustrated and refused.
* :func:`onsager_free_energy`: Onsager's N -> infinity free energy per spin, by quadrature.
* :func:`sk_annealed_log_z`, :func:`sk_annealed_free_energy`: the annealed SK bound and
  its beta J < 1 limit: a bound and a limit, not the value of any instance.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from arnn_gen.checks import check_beta, check_int, check_real, check_spins
from arnn_gen.errors import ArnnGenError
from arnn_gen.exact.enumeration import ExactResult

__all__ = [
    "BETA_C",
    "kaufman_log_z",
    "kaufman_exact",
    "onsager_free_energy",
    "sk_annealed_log_z",
    "sk_annealed_free_energy",
]

BETA_C = math.log(1.0 + math.sqrt(2.0)) / 2.0
"""Critical inverse temperature of the square-lattice ferromagnet with J = 1."""

# sinh(2K) overflows float64 for 2|K| > 710.
_MAX_K = 350.0
_DTYPE = torch.float64


def _check_torus(L: int, W: int, beta: float, J: float) -> tuple[int, int, float, float]:  # noqa: N803
    side_l = check_int("the torus side L", L, 1)
    side_w = check_int("the torus side W", W, 1)
    check_spins(side_l * side_w, "the number of spins L W")
    beta = check_beta(beta)
    coupling = check_real("the coupling J", J)
    if coupling < 0.0 and (side_l % 2 or side_w % 2):
        raise ArnnGenError(
            f"Kaufman's formula covers J < 0 only on tori with L and W even (the "
            f"antiferromagnet is frustrated otherwise), got L={side_l}, W={side_w}"
        )
    if abs(beta * coupling) > _MAX_K:
        raise ArnnGenError(
            f"beta |J| = {abs(beta * coupling):.6g} overflows Kaufman's formula in float64; "
            f"the limit is {_MAX_K}"
        )
    return side_l, side_w, beta, coupling


def _log_2cosh(a: torch.Tensor) -> torch.Tensor:
    """log(2 cosh a), elementwise, without overflow."""
    a = a.abs()
    return a + torch.log1p(torch.exp(-2.0 * a))


def _log_2sinh(a: torch.Tensor) -> torch.Tensor:
    """log(2 sinh a) for a > 0, elementwise, without overflow."""
    return a + torch.log(-torch.expm1(-2.0 * a))


def _kaufman_log_z(L: int, W: int, K: torch.Tensor) -> torch.Tensor:  # noqa: N803
    """Kaufman's log Z at K = beta J > 0, as a differentiable float64 function of K."""
    s = torch.sinh(2.0 * K)
    k = torch.arange(1, 2 * W, dtype=_DTYPE)  # [2W - 1], k >= 1 (gamma_0 below)
    # cosh gamma_k = s + 1/s - cos(pi k / W) = 1 + u_k, u_k >= 0 written without cancellation
    # (cosh 2K coth 2K = (1 + s^2)/s). gamma = acosh(1 + u) = log1p(u + sqrt(u (u + 2))).
    u = (s - 1.0) ** 2 / s + 2.0 * torch.sin(math.pi * k / (2 * W)) ** 2  # [2W - 1], > 0
    gamma = torch.log1p(u + torch.sqrt(u) * torch.sqrt(u + 2.0))  # [2W - 1], gamma_1..
    gamma_0 = 2.0 * K + torch.log(torch.tanh(K))  # signed: negative above beta_c
    odd = 0.5 * L * gamma[0::2]  # [W], k = 1, 3, ..., 2W - 1
    even = 0.5 * L * gamma[1::2]  # [W - 1], k = 2, 4, ..., 2W - 2
    a_0 = 0.5 * L * gamma_0
    a_0_value = float(a_0.detach())
    log_z1 = _log_2cosh(odd).sum()
    log_z2 = _log_2sinh(odd).sum()
    log_z3 = _log_2cosh(even).sum() + _log_2cosh(a_0)
    log_r4 = _log_2sinh(even).sum()  # Z_4 = 2 sinh(a_0) exp(log_r4)
    # |Z_4| <= Z_3: the largest of log Z_1..3 bounds every term.
    shift = torch.maximum(torch.maximum(log_z1, log_z2), log_z3).detach()
    total = torch.exp(log_z1 - shift) + torch.exp(log_z2 - shift) + torch.exp(log_z3 - shift)
    if abs(a_0_value) < 20.0:
        # 2 sinh(a_0) directly: smooth through a_0 = 0 (K = K_c), where Z_4 vanishes.
        total = total + 2.0 * torch.sinh(a_0) * torch.exp(log_r4 - shift)
    else:
        sign = 1.0 if a_0_value > 0 else -1.0
        total = total + sign * torch.exp(_log_2sinh(a_0.abs()) + log_r4 - shift)
    n_spins = L * W
    return -math.log(2.0) + 0.5 * n_spins * torch.log(2.0 * s) + shift + torch.log(total)


def kaufman_log_z(L: int, W: int, beta: float, J: float = 1.0) -> float:  # noqa: N803
    """Kaufman's exact log Z of the L x W Ising torus with coupling J and h = 0.

    H = -J sum_{<ij>} x_i x_j over the 2 L W nearest-neighbour bonds of the torus (module
    docstring for L or W <= 2). J = 0 gives L W ln 2; J < 0 needs L and W even.
    """
    side_l, side_w, beta, coupling = _check_torus(L, W, beta, J)
    if coupling == 0.0:
        return side_l * side_w * math.log(2.0)
    K = torch.tensor(beta * abs(coupling), dtype=_DTYPE)  # noqa: N806
    return float(_kaufman_log_z(side_l, side_w, K))


def kaufman_exact(L: int, W: int, beta: float, J: float = 1.0) -> ExactResult:  # noqa: N803
    """Exact thermodynamics of the L x W Ising torus (h = 0) from Kaufman's formula.

    log Z from :func:`kaufman_log_z`; e = <H>/N = -(J/N) d log Z / dK by float64 autograd
    of the formula (exact to rounding; the gauge map of J < 0 leaves <H> unchanged); the
    magnetisations <x_i> are 0 by the x -> -x symmetry; <|M|> is not given by the formula
    (``magnetization_abs=None``).

    Returns:
        :class:`ExactResult` with ``method="kaufman"``, sites numbered row-major (all alike).
    """
    side_l, side_w, beta, coupling = _check_torus(L, W, beta, J)
    n_spins = side_l * side_w
    if coupling == 0.0:
        log_z, mean_energy = n_spins * math.log(2.0), 0.0
    else:
        K = torch.tensor(beta * abs(coupling), dtype=_DTYPE, requires_grad=True)  # noqa: N806
        value = _kaufman_log_z(side_l, side_w, K)
        (derivative,) = torch.autograd.grad(value, K)
        log_z = float(value.detach())
        mean_energy = -abs(coupling) * float(derivative)
    return ExactResult(
        N=n_spins,
        beta=beta,
        log_z=log_z,
        free_energy=-log_z / (beta * n_spins),
        energy=mean_energy / n_spins,
        entropy=(beta * mean_energy + log_z) / n_spins,
        magnetization_abs=None,
        magnetizations=np.zeros(n_spins),
        method="kaufman",
    )


# --------------------------------------------------------------------------------------
# Onsager
# --------------------------------------------------------------------------------------


def _onsager_integrand(t: np.ndarray, K: float) -> np.ndarray:  # noqa: N803
    """ln(1 + r(t)), r = sqrt(s^4 + 1 - 2 s^2 cos t) / cosh^2 2K with s = sinh 2K.

    Written as r = sqrt((tanh^2 - sech^2)^2 + (2 tanh sech sin(t/2))^2) (of 2K): bounded for
    every K, with no cancellation in s^4 + 1 - 2 s^2 cos t near beta_c and small t.
    """
    tanh = math.tanh(2.0 * K)
    sech = 1.0 / math.cosh(2.0 * K)
    r = np.hypot((tanh - sech) * (tanh + sech), 2.0 * tanh * sech * np.sin(0.5 * t))
    return np.log1p(r)


def _onsager_integral(K: float, order: int = 24, levels: int = 48) -> float:  # noqa: N803
    """int_0^pi ln(1 + r(t)) dt by Gauss-Legendre on intervals graded geometrically to t = 0.

    The integrand is analytic on (0, pi]; near beta_c it bends sharply within t ~ |s^2 - 1|/s
    of 0 (a kink at t = 0 exactly at beta_c), which the intervals [pi 2^-(j+1), pi 2^-j]
    resolve at every scale.
    """
    nodes, weights = np.polynomial.legendre.leggauss(order)
    edges = [0.0] + [math.pi * 2.0 ** (-j) for j in range(levels, -1, -1)]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        t = 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo)
        total += 0.5 * (hi - lo) * float(np.dot(weights, _onsager_integrand(t, K)))
    return total


def onsager_free_energy(beta: float, J: float = 1.0) -> float:  # noqa: N803
    """Onsager's free energy per spin f of the square-lattice Ising model, N -> infinity, h = 0.

    -beta f = ln 2 / 2 + (1/2pi) int_0^pi ln[cosh^2 2K + sqrt(sinh^4 2K + 1 - 2 sinh^2 2K cos t)] dt
            = ln 2 / 2 + ln cosh 2K + (1/2pi) int_0^pi ln(1 + r(t)) dt,   K = beta |J|
    (the antiferromagnet has the same f on the bipartite square lattice). The integral is
    done by Gauss-Legendre rules on intervals graded toward t = 0 (numpy only, deterministic;
    it agrees with adaptive quadrature to about 1e-15 at every beta, beta_c included).
    At beta_c, -beta f = ln 2 / 2 + 2G/pi (G: Catalan's constant).
    """
    beta = check_beta(beta)
    coupling = check_real("the coupling J", J)
    K = beta * abs(coupling)  # noqa: N806
    if K > _MAX_K:
        raise ArnnGenError(f"beta |J| = {K:.6g} is too large for float64; the limit is {_MAX_K}")
    log_cosh = 2.0 * K + math.log1p(math.exp(-4.0 * K)) - math.log(2.0)
    minus_beta_f = 0.5 * math.log(2.0) + log_cosh + _onsager_integral(K) / (2.0 * math.pi)
    return -minus_beta_f / beta


# --------------------------------------------------------------------------------------
# Annealed Sherrington-Kirkpatrick
# --------------------------------------------------------------------------------------


def sk_annealed_log_z(N: int, beta: float, J: float = 1.0) -> float:  # noqa: N803
    """ln E[Z_N] = N ln 2 + beta^2 J^2 (N - 1) / 4 for SK couplings J_ij ~ Normal(0, J^2/N).

    Exact for every N (each E exp(beta J_ij x_i x_j) = exp(beta^2 J^2 / 2N), over the
    N (N - 1)/2 pairs), but it is the log of the *average* partition function, not the
    partition function of any instance: by Jensen's inequality E[ln Z_N] <= ln E[Z_N], so it
    is an upper bound on the quenched average of log Z (equal to it in the limit N -> infinity
    only for beta |J| < 1).
    """
    n_spins = check_spins(N)
    beta = check_beta(beta)
    coupling = check_real("the SK coupling scale J", J)
    return n_spins * math.log(2.0) + 0.25 * (beta * coupling) ** 2 * (n_spins - 1)


def sk_annealed_free_energy(beta: float, J: float = 1.0) -> float:  # noqa: N803
    """The annealed SK free energy per spin in the limit N -> infinity: -ln 2/beta - beta J^2/4.

    The limit of -ln E[Z_N] / (beta N) (:func:`sk_annealed_log_z`). For beta |J| < 1 it is
    also the limit of the quenched free energy -E[ln Z_N] / (beta N) (the paramagnetic
    phase); for beta |J| > 1 it is only a lower bound on it (Jensen). A limit and a bound, not
    the free energy of an instance of finite N.
    """
    beta = check_beta(beta)
    coupling = check_real("the SK coupling scale J", J)
    return -math.log(2.0) / beta - 0.25 * beta * coupling**2
