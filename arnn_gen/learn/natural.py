"""Natural-gradient steps for autoregressive models whose sites own their parameters.

The variational objective's gradient is g = E_Q[(L - E L) grad log Q], L = log Q + beta H
(docs/physics.md section 5). The natural gradient preconditions it with the Fisher matrix of Q,
S = E_Q[(grad log Q - E grad log Q)(grad log Q - E grad log Q)^T], and steps along
-(S + lambda 1)^-1 g: the steepest descent of the objective measured in the KL distance
between distributions rather than in the parameters (Amari; for variational autoregressive
networks ng-VAN, arXiv:2409.20029).

For an autoregressive model log Q = sum_i log q_i(x_i | x_<i) in which the parameters theta_i
of site i enter q_i only (the replica forms: every a, b of the pairs (i, l) and the residual
of site i), the Fisher matrix is block-diagonal over the sites: for i < j,
E[grad_i log q_i grad_j log q_j^T] = E_{x<j}[grad_i log q_i E_{x_j | x<j}[grad_j log q_j]^T]
= 0, because the score of a normalised conditional has mean zero. So the exact
preconditioner is N independent blocks of the size of one site's parameters, P = O(k N),
each estimated from the batch: O(B N P^2) to build and O(N P^3) to solve, against
O(B^2 N P) for a solve in sample space of the whole matrix. The blocks and g come from the
model's per-sample, per-site gradients ``site_log_prob_grads(x)`` [B, N, P].
"""

from __future__ import annotations

import torch

from arnn_gen.errors import ArnnGenError

__all__ = ["SiteNaturalGradient", "NATURAL_LR", "NATURAL_DAMPING", "MAX_SITE_GRAD_NUMBERS"]

#: Default step size of the natural gradient (the trainer's lr for optimizer "natural").
NATURAL_LR = 0.2
#: Default damping lambda added to the diagonal of each Fisher block.
NATURAL_DAMPING = 1e-3
#: Largest B N P of the per-sample gradients one step may hold (2^28 numbers: 1 GiB in
#: float32); above it the step is refused before anything of that size is allocated.
MAX_SITE_GRAD_NUMBERS = 2**28


class SiteNaturalGradient:
    """Natural-gradient steps with the exact block-diagonal structure of the Fisher matrix
    of an autoregressive model over its sites (module docstring).

    ``model`` must offer ``site_log_prob_grads(x) -> [B, N, P]`` and ``_trained()`` in the
    layout that method documents (the emitted replica modules). ``param_groups[0]["lr"]``
    is the step size, so the trainer's learning-rate schedule applies unchanged; the
    optimizer keeps no state between steps (its state_dict is empty).
    """

    def __init__(self, model, *, lr: float = NATURAL_LR, damping: float = NATURAL_DAMPING):
        if not hasattr(model, "site_log_prob_grads"):
            raise ArnnGenError(
                "the natural-gradient optimizer needs a model with per-site gradients "
                "(site_log_prob_grads: the replica modules SK_RS and SK_kRSB)"
            )
        if not damping > 0:
            raise ArnnGenError(f"damping must be > 0, got {damping}")
        self.model = model
        self.damping = float(damping)
        self.param_groups = [{"lr": float(lr)}]

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore: each step uses its own batch only."""

    def check_size(self, batch: int) -> None:
        """Refuse a batch whose per-sample gradients would exceed MAX_SITE_GRAD_NUMBERS."""
        N = self.model.N  # noqa: N806
        per_site = 2 * N * (len(self.model._trained()) - 2) + 2  # P (site_log_prob_grads)
        numbers = batch * N * per_site
        if numbers > MAX_SITE_GRAD_NUMBERS:
            raise ArnnGenError(
                f"the natural gradient of batch {batch} at N = {N} needs {numbers} numbers "
                f"of per-sample gradients, more than {MAX_SITE_GRAD_NUMBERS}: use a smaller "
                "batch or Adam"
            )

    @torch.no_grad()
    def direction(self, x: torch.Tensor, L: torch.Tensor) -> torch.Tensor:  # noqa: N803
        """(S_i + lambda 1)^-1 g_i for every site i, [N, P], from samples x [B, N] ~ Q and
        their L = log Q + beta H [B] (module docstring)."""
        scores = self.model.site_log_prob_grads(x)  # [B, N, P]
        batch = scores.shape[0]
        scores = scores - scores.mean(0)  # centred: the covariance, not the second moment
        excess = (L.to(scores.dtype) - L.to(scores.dtype).mean()) / batch  # [B]
        gradient = torch.einsum("bnp,b->np", scores, excess)  # [N, P]
        fisher = torch.einsum("bnp,bnq->npq", scores, scores) / batch  # [N, P, P]
        fisher.diagonal(dim1=-2, dim2=-1).add_(self.damping)
        return torch.linalg.solve(fisher, gradient)  # [N, P]

    @torch.no_grad()
    def step(self, x: torch.Tensor, L: torch.Tensor) -> None:  # noqa: N803
        """theta_i -= lr (S_i + lambda 1)^-1 g_i for every site, in place."""
        direction = self.direction(x, L) * self.param_groups[0]["lr"]  # [N, P]
        trained = self.model._trained()
        hidden, (weight, bias) = trained[:-2], trained[-2:]
        N = self.model.N  # noqa: N806
        pairs = direction[:, :-2].reshape(N, len(hidden), 2, N)  # [i, tensor, sign, l]
        for index, parameter in enumerate(hidden):  # [sign, i, l]
            parameter.sub_(pairs[:, index].transpose(0, 1).to(parameter.dtype))
        weight.sub_(direction[:, -2].to(weight.dtype))
        bias.sub_(direction[:, -1].to(bias.dtype))
