"""Markov-chain Monte Carlo samplers: the classical reference and the neural correction.

* :func:`metropolis` / :func:`metropolis_samples`: vectorised single-spin-flip Metropolis for
  a pairwise :class:`~arnn_gen.systems.Hamiltonian` (docs/physics.md section 1), many independent
  chains at once. It provides the training data of the inverse problem (docs/physics.md
  section 5) and an independent check of the networks at sizes enumeration cannot reach.
* :func:`neural_metropolis`: Metropolis-Hastings with an autoregressive model Q as the
  independent proposal. Its stationary distribution is exactly the Boltzmann P whatever Q
  (provided Q covers P), so it removes the residual bias of an imperfect network; for an
  exact network every proposal is accepted.

Single-spin flip: with the local fields f_i = sum_j J_ij x_j + h_i, flipping x_i changes the
energy by dE_i = 2 x_i f_i (J_ii = 0), and after an accepted flip f_l += 2 x_i^new J_il.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from arnn_gen.checks import check_beta, check_int
from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.observables import _check_model
from arnn_gen.systems import Hamiltonian, as_hamiltonian

__all__ = [
    "NeuralMCMCResult",
    "metropolis",
    "metropolis_samples",
    "neural_metropolis",
]


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def _check_dtype(dtype: Any) -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ArnnGenError(f"dtype must be a floating torch dtype, got {dtype!r}")
    return dtype


def _initial_state(
    x0: Any,
    chains: int,
    n_spins: int,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device | str | None,
) -> torch.Tensor:
    """``[chains, N]`` starting spins: a copy of x0, or uniform +-1 from the generator."""
    if x0 is None:
        bits = torch.rand(chains, n_spins, generator=generator, device=device) < 0.5
        return torch.where(bits, 1.0, -1.0).to(dtype)  # [C, N]
    if not isinstance(x0, torch.Tensor):
        try:
            x0 = torch.as_tensor(np.asarray(x0))
        except (TypeError, ValueError, RuntimeError):
            raise ArnnGenError(f"x0 must be a tensor, got {type(x0).__name__}") from None
    if tuple(x0.shape) != (chains, n_spins):
        raise ArnnGenError(f"x0 must have shape [{chains}, {n_spins}], got {list(x0.shape)}")
    if x0.is_complex():
        raise ArnnGenError(f"x0 must contain only -1 and +1, got dtype {x0.dtype}")
    is_spin = (x0 == 1) | (x0 == -1)
    if not bool(is_spin.all()):
        bad = x0[~is_spin][0].item()
        raise ArnnGenError(f"x0 must contain only -1 and +1, found {bad!r}")
    return x0.detach().to(device=device, dtype=dtype).clone()


# --------------------------------------------------------------------------------------
# Single-spin-flip Metropolis
# --------------------------------------------------------------------------------------


def _metropolis(
    hamiltonian: Any,
    beta: Any,
    *,
    chains: Any,
    sweeps: Any,
    generator: torch.Generator | None = None,
    x0: Any = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`metropolis`, also returning the incrementally updated local fields ``[C, N]``
    (tests compare them with a recomputation x @ J + h)."""
    hamiltonian = as_hamiltonian(hamiltonian)
    beta = check_beta(beta)
    chains = check_int("chains", chains, 1)
    sweeps = check_int("sweeps", sweeps, 0)
    dtype = _check_dtype(dtype)
    if device is None and isinstance(x0, torch.Tensor):
        device = x0.device
    n_spins = hamiltonian.N
    couplings = torch.tensor(hamiltonian.J, dtype=dtype, device=device)  # [N, N]
    fields = torch.tensor(hamiltonian.h, dtype=dtype, device=device)  # [N]

    x = _initial_state(x0, chains, n_spins, generator, dtype, couplings.device)  # [C, N]
    # Site-major layout [N, C]: the spins and fields of one site are a contiguous row, which
    # makes the per-site updates about ten times faster than on [C, N].
    spins = x.T.contiguous()  # [N, C]
    local = couplings @ spins + fields[:, None]  # [N, C] f_i = sum_j J_ij x_j + h_i
    for _ in range(sweeps):
        # Accept if u < exp(-beta dE_i) with dE_i = 2 x_i f_i, i.e. x_i f_i < -log(u) / (2 beta)
        # (always when dE_i <= 0, as u < 1). One uniform per (site, chain) for the sweep.
        u = torch.rand(n_spins, chains, generator=generator, device=spins.device, dtype=dtype)
        threshold = torch.log(u).mul_(-0.5 / beta)  # [N, C]
        for i in range(n_spins):
            spin = spins[i]  # [C] a view: updated in place
            flip = spin * local[i] < threshold[i]  # [C]
            change = torch.where(flip, -2.0 * spin, 0.0)  # [C] x_i^new - x_i = 2 x_i^new or 0
            spin.add_(change)
            # f_l += 2 x_i^new J_il on the chains that flipped (a rank-one update).
            local.addr_(couplings[i], change)
    return spins.T.contiguous(), local.T.contiguous()


@torch.no_grad()
def metropolis(
    hamiltonian: Hamiltonian,
    beta: float,
    *,
    chains: int,
    sweeps: int,
    generator: torch.Generator | None = None,
    x0: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Run ``chains`` independent single-spin-flip Metropolis chains for ``sweeps`` sweeps.

    One sweep visits the sites 0..N-1 in order; at site i the flip is accepted with
    probability min(1, exp(-beta dE_i)), dE_i = 2 x_i f_i, and the local fields
    f = x @ J + h (``[chains, N]``) are updated incrementally after each accepted flip, so a
    sweep costs O(chains N^2). The chains are vectorised: one tensor operation per site.

    Args:
        hamiltonian: the system.
        beta: inverse temperature, finite and > 0.
        chains: number of independent chains, >= 1.
        sweeps: number of sweeps, >= 0 (0 returns the starting states).
        generator: torch generator on ``device``, for reproducible chains.
        x0: ``[chains, N]`` starting spins of +-1; None draws them uniformly from the
            generator (infinite-temperature start).
        dtype: floating dtype of the states and fields (float64 keeps the incremental
            fields equal to a recomputation to about 1e-13).
        device: where the chains run; None means x0's device, or the CPU.

    Returns:
        ``[chains, N]`` final states of +-1 in ``dtype``.
    """
    x, _ = _metropolis(
        hamiltonian,
        beta,
        chains=chains,
        sweeps=sweeps,
        generator=generator,
        x0=x0,
        dtype=dtype,
        device=device,
    )
    return x


@torch.no_grad()
def metropolis_samples(
    hamiltonian: Hamiltonian,
    beta: float,
    *,
    count: int,
    sweeps: int,
    burn_in: int | None = None,
    chains: int | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``count`` Metropolis samples of the Boltzmann distribution of ``hamiltonian``.

    Default (``chains`` None): ``count`` independent chains from random starts each run
    ``burn_in + sweeps`` sweeps and their final states are returned. The samples are
    independent by construction, and distributed as P once the number of sweeps is much
    larger than the autocorrelation (equilibration) time.

    With ``chains`` < ``count``: ``chains`` chains run ``burn_in`` sweeps, then their states
    are recorded every ``sweeps`` sweeps (``sweeps`` >= 1) until ``count`` are gathered;
    samples of one chain are correlated unless ``sweeps`` exceeds the autocorrelation time.

    Args:
        count: number of samples, >= 1.
        sweeps: sweeps before each recorded state, >= 0.
        burn_in: extra sweeps before the first record, >= 0; None means 0.
        chains: number of chains, 1 <= chains <= count; None means count.
        generator, dtype, device: as in :func:`metropolis`.

    Returns:
        ``[count, N]`` samples of +-1 in ``dtype``, ordered by record, then by chain.
    """
    count = check_int("count", count, 1)
    sweeps = check_int("sweeps", sweeps, 0)
    burn_in = 0 if burn_in is None else check_int("burn_in", burn_in, 0)
    chains = count if chains is None else check_int("chains", chains, 1)
    if chains > count:
        raise ArnnGenError(f"chains must be <= count = {count}, got {chains}")
    if chains < count and sweeps < 1:
        raise ArnnGenError("sweeps must be >= 1 when a chain records several samples")
    options = {"generator": generator, "dtype": dtype, "device": device}
    x = metropolis(hamiltonian, beta, chains=chains, sweeps=burn_in + sweeps, **options)
    records = [x.clone()]  # [C, N] each
    while len(records) * chains < count:
        x = metropolis(hamiltonian, beta, chains=chains, sweeps=sweeps, x0=x, **options)
        records.append(x.clone())
    return torch.cat(records)[:count]  # [count, N]


# --------------------------------------------------------------------------------------
# Neural Metropolis-Hastings
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NeuralMCMCResult:
    """Outcome of :func:`neural_metropolis`.

    Attributes:
        samples: ``[chains, N]`` final states of the chains (the model's dtype and device).
        acceptance_rate: accepted proposals / (chains * steps); NaN when steps = 0.
        steps: number of Metropolis-Hastings steps run.
    """

    samples: torch.Tensor  # [C, N]
    acceptance_rate: float
    steps: int


def _propose(model: Any, chains: int, n_spins: int, generator: torch.Generator | None) -> tuple:
    """Proposals y ~ Q ``[C, N]`` with log Q(y) and H(y) ``[C]`` (float64)."""
    y = model.sample(chains, generator=generator)  # [C, N]
    if tuple(y.shape) != (chains, n_spins):
        raise ArnnGenError(
            f"model.sample({chains}) returned shape {list(y.shape)}, expected [{chains}, {n_spins}]"
        )
    return y, model.log_prob(y).to(torch.float64), model.energy(y).to(torch.float64)


@torch.no_grad()
def neural_metropolis(
    model: Any,
    *,
    beta: float | None = None,
    chains: int,
    steps: int,
    generator: torch.Generator | None = None,
) -> NeuralMCMCResult:
    """Metropolis-Hastings with the model Q as independent proposal (neural MCMC).

    The chains start from samples of Q. At each step every chain proposes y ~ Q (one batch
    of ``chains`` samples) and accepts it with probability

        min(1, exp(-beta (H(y) - H(x)) + log Q(x) - log Q(y))),

    which leaves the Boltzmann distribution P invariant, so the chains converge to P and
    not to Q: this corrects the residual bias of an imperfect network. For an exact network
    (Q = P) the exponent is 0 and every proposal is accepted.

    Args:
        model: anything with N, beta, sample, log_prob and energy (see
            :mod:`arnn_gen.learn.observables`).
        beta: the target's inverse temperature; None means ``model.beta``.
        chains: number of independent chains, >= 1.
        steps: number of steps, >= 0.
        generator: torch generator on the model's device (used for proposals and for the
            acceptance tests).

    Returns:
        :class:`NeuralMCMCResult` with the final states and the acceptance rate over all
        steps and chains.
    """
    n_spins = _check_model(model)
    beta = check_beta(model.beta if beta is None else beta)
    chains = check_int("chains", chains, 1)
    steps = check_int("steps", steps, 0)

    x, log_q_x, energy_x = _propose(model, chains, n_spins, generator)  # [C, N], [C], [C]
    accepted = 0
    for _ in range(steps):
        y, log_q_y, energy_y = _propose(model, chains, n_spins, generator)
        log_ratio = -beta * (energy_y - energy_x) + log_q_x - log_q_y  # [C]
        u = torch.rand(chains, generator=generator, device=x.device, dtype=torch.float64)
        accept = torch.log(u) < log_ratio.to(u.device)  # [C]
        x = torch.where(accept[:, None], y, x)
        log_q_x = torch.where(accept, log_q_y, log_q_x)
        energy_x = torch.where(accept, energy_y, energy_x)
        accepted += int(accept.sum())
    rate = accepted / (chains * steps) if steps > 0 else math.nan
    return NeuralMCMCResult(samples=x, acceptance_rate=rate, steps=steps)
