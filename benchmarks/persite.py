"""Per-site baselines: straightforward ports of the paper's formulas, one module per site.

This is how the networks of Biazzo (2023) are written when the formulas of docs/physics.md are
ported as they read: one small ``torch.nn.Module`` per conditional P(x_i = +1 | x_<i),
held in an ``nn.ModuleList`` and evaluated in a Python loop over the sites. Each
conditional computes its own first layer from the earlier spins, in ``log_prob`` and in
``sample`` alike:

``PerSiteReplica`` (SK_RS, SK_kRSB, docs/physics.md section 4)
    phi_{i,l} = h_l + sum_{s<i} J_{s,l} x_s for l >= i: the product x[:, :i] @ J[:i, i:],
    O(B i (N - i)) per site, then the k + 1 logsigmoid layers on the pairs l > i.
``PerSiteCWN`` (CW_N, docs/physics.md section 3)
    M_<i = x[:, :i].sum(1), O(B i) per site, then the two logsumexp over k = 0..n of
    b^{+-}_{i,k} + w_{i,k} M_<i, O(B n) per site; b and w computed from (beta, J, h, N).
``PerSiteCWInf`` (CW_inf, docs/physics.md section 3)
    M_<i recomputed per site, logit 2 beta h + (2 beta J / N) M_<i + omega_i sgn(M_<i).

The emitted modules (generated/) instead evaluate every conditional in one pass and
update the fields incrementally while sampling; benchmarks/harness.py times both. Build a
baseline from an emitted model with ``from_model(model)``: it copies (or, for CW_N,
recomputes) the same parameters, so that both give the same log Q(x) (tests/test_bench.py).
Every baseline has ``N``, ``beta``, ``log_prob(x)`` ``[B]``, ``sample(batch_size,
generator=None)`` ``[B, N]`` (the random numbers are drawn as the emitted samplers draw
them), ``energy(x)`` ``[B]`` and ``parameters()`` (trainable ones usable with Adam).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)

__all__ = [
    "PerSiteCWInf",
    "PerSiteCWN",
    "PerSiteReplica",
    "ReplicaConditional",
    "CWNConditional",
    "CWInfConditional",
]


def _draw(logit: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Spins [B] of +-1 with P(+1) = sigmoid(logit [B]), as the emitted samplers draw them."""
    u = torch.rand(logit.shape[0], generator=generator, device=logit.device, dtype=logit.dtype)
    return torch.where(u < torch.sigmoid(logit), 1.0, -1.0).to(logit.dtype)


# --------------------------------------------------------------------------------------
# SK_RS and SK_kRSB
# --------------------------------------------------------------------------------------


class ReplicaConditional(torch.nn.Module):
    """Conditional of site i of SK_kRSB (k = 0: SK_RS), docs/physics.md section 4.

    Parameters per sign eta (index 0: +, 1: -) and later site l > i: ``a0`` ... ``a{k+1}``
    and ``b1`` ... ``b{k+1}``, each ``[2, n]`` with n = N - 1 - i, plus the scalar residual
    weight and bias on phi_{i,i}.
    """

    def __init__(self, site: int, N: int, depth: int, *, device=None, dtype=None):  # noqa: N803
        super().__init__()
        self.site, self.depth = site, depth
        later = N - 1 - site
        options = {"device": device, "dtype": dtype}
        self.a0 = torch.nn.Parameter(torch.zeros(2, later, **options))
        for layer in range(1, depth + 2):
            setattr(self, f"a{layer}", torch.nn.Parameter(torch.zeros(2, later, **options)))
            setattr(self, f"b{layer}", torch.nn.Parameter(torch.zeros(2, later, **options)))
        self.residual_weight = torch.nn.Parameter(torch.zeros((), **options))
        self.residual_bias = torch.nn.Parameter(torch.zeros((), **options))

    def forward(self, x_before: torch.Tensor, J: torch.Tensor, h: torch.Tensor) -> torch.Tensor:  # noqa: N803
        """Logit [B] of P(x_i = +1 | x_<i) from x_before = x_<i [B, i], J [N, N], h [N]."""
        i = self.site
        phi = h[i:] + x_before @ J[:i, i:]  # [B, N - i] phi_{i,l}, l >= i: the first layer
        log_rho = []  # log rho^+_i, log rho^-_i: one chain of layers per sign, as written
        for sign in (0, 1):
            z = phi[:, 1:]  # [B, n] phi_{i,l}, l > i
            for layer in range(self.depth + 1, 0, -1):  # innermost a_{k+1}, b_{k+1} first
                a = getattr(self, f"a{layer}")[sign]  # [n]
                b = getattr(self, f"b{layer}")[sign]
                z = F.logsigmoid(b + a * z)  # [B, n]
            log_rho.append((self.a0[sign] * z).sum(-1))  # [B]
        residual = self.residual_weight * phi[:, 0] + self.residual_bias  # [B]
        return residual + log_rho[0] - log_rho[1]


class PerSiteReplica(torch.nn.Module):
    """SK_RS / SK_kRSB as N per-site modules evaluated in a Python loop.

    J [N, N] and h [N] (the first layer) are fixed buffers shared by the conditionals;
    ``couplings`` and ``fields`` are the Hamiltonian's (for ``energy``).
    """

    def __init__(
        self,
        J: torch.Tensor,  # noqa: N803
        h: torch.Tensor,
        depth: int,
        *,
        beta: float = 1.0,
        couplings: torch.Tensor | None = None,
        fields: torch.Tensor | None = None,
    ):
        super().__init__()
        N = J.shape[0]  # noqa: N806
        self.N, self.depth, self.beta = N, depth, float(beta)
        self.register_buffer("J", J.detach().clone())  # [N, N]
        self.register_buffer("h", h.detach().clone())  # [N]
        self.register_buffer("couplings", (J if couplings is None else couplings).detach().clone())
        self.register_buffer("fields", (h if fields is None else fields).detach().clone())
        options = {"device": J.device, "dtype": J.dtype}
        self.conditionals = torch.nn.ModuleList(
            ReplicaConditional(i, N, depth, **options) for i in range(N)
        )

    @classmethod
    def from_model(cls, model: torch.nn.Module) -> PerSiteReplica:
        """The per-site port of an emitted SK_RS / SK_kRSB model, with its parameters:
        row i of each [2, N, N] tensor restricted to l > i, and the residual of site i."""
        depth = 0
        while hasattr(model, f"a{depth + 2}"):
            depth += 1
        port = cls(
            model.J,
            model.h,
            depth,
            beta=model.beta,
            couplings=getattr(model, "couplings", None),
            fields=getattr(model, "fields", None),
        )
        names = ["a0"] + [f"{p}{layer}" for layer in range(1, depth + 2) for p in "ab"]
        with torch.no_grad():
            for i, conditional in enumerate(port.conditionals):
                for name in names:
                    getattr(conditional, name).copy_(getattr(model, name)[:, i, i + 1 :])
                conditional.residual_weight.copy_(model.residual_weight[i])
                conditional.residual_bias.copy_(model.residual_bias[i])
        return port

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, N], one conditional after the other."""
        x = x.to(self.J.dtype)
        logits = [cond(x[:, :i], self.J, self.h) for i, cond in enumerate(self.conditionals)]
        return torch.stack(logits, dim=1)  # [B, N]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log Q(x) [B] = sum_i log sigmoid(x_i logit_i)."""
        x = x.to(self.J.dtype)
        return F.logsigmoid(x * self.forward(x)).sum(-1)

    @torch.no_grad()
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x [B, N] by ancestral sampling; conditional i recomputes its fields from x_<i."""
        x = torch.zeros(batch_size, self.N, device=self.J.device, dtype=self.J.dtype)
        for i, conditional in enumerate(self.conditionals):
            x[:, i] = _draw(conditional(x[:, :i], self.J, self.h), generator)
        return x

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """H(x) [B] = -sum_{i<j} J_ij x_i x_j - sum_i h_i x_i (docs/physics.md section 1)."""
        x = x.to(self.couplings.dtype)
        return -0.5 * ((x @ self.couplings) * x).sum(-1) - x @ self.fields


# --------------------------------------------------------------------------------------
# CW_N and CW_inf
# --------------------------------------------------------------------------------------


class CWNConditional(torch.nn.Module):
    """Conditional of site i of CW_N (docs/physics.md section 3), n = N - 1 - i later spins:

        logit = 2 beta h + (2 beta J / N) M_<i + logsumexp_k(b+_{i,k} + w_{i,k} M_<i)
                - logsumexp_k(b-_{i,k} + w_{i,k} M_<i),   k = 0..n,
        b+-_{i,k} = log binomial(n, k) + beta (J (n - 2k)^2 - J n) / 2N
                    + (n - 2k) (beta h +- beta J / N),
        w_{i,k} = (beta J / N) (n - 2k).

    (The term -beta J n / 2N, the diagonal of the later spins' energy, is the same in b+ and
    b- and cancels; it is kept as SymPy prints it.) Fixed buffers, computed in float64.
    """

    def __init__(self, site, N, beta, J, h, *, device=None, dtype=None):  # noqa: N803
        super().__init__()
        self.site = site
        n = N - 1 - site
        k = torch.arange(n + 1, dtype=torch.float64)  # [n + 1]
        later = n - 2 * k  # [n + 1] magnetisation of the later spins
        log_binomial = math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)
        common = log_binomial + beta * (J * (later**2 - n) / (2 * N) + h * later)
        bias = torch.stack([common + beta * J * later / N, common - beta * J * later / N])
        options = {"device": device, "dtype": dtype}
        self.register_buffer("bias", bias.to(**options))  # [2, n + 1] b^{+-}_{i,k}
        self.register_buffer("weight", (beta * J * later / N).to(**options))  # [n + 1]
        self.slope = 2 * beta * J / N  # residual: slope M_<i + offset
        self.offset = 2 * beta * h

    def forward(self, x_before: torch.Tensor) -> torch.Tensor:
        """Logit [B] of P(x_i = +1 | x_<i) from x_before = x_<i [B, i]."""
        M = x_before.sum(1)  # [B] M_<i: the first layer  # noqa: N806
        terms = self.bias[:, None, :] + self.weight * M[:, None]  # [2, B, n + 1]
        log_rho = torch.logsumexp(terms, dim=-1)  # [2, B]
        return self.slope * M + self.offset + log_rho[0] - log_rho[1]


class CWInfConditional(torch.nn.Module):
    """Conditional of site i of CW_inf (docs/physics.md section 3):
    logit = 2 beta h + (2 beta J / N) M_<i + omega_i sgn(M_<i), omega_i trainable."""

    def __init__(self, site, N, beta, J, h, *, device=None, dtype=None):  # noqa: N803
        super().__init__()
        self.site = site
        self.omega = torch.nn.Parameter(torch.zeros((), device=device, dtype=dtype))
        self.slope = 2 * beta * J / N
        self.offset = 2 * beta * h

    def forward(self, x_before: torch.Tensor) -> torch.Tensor:
        """Logit [B] from x_before = x_<i [B, i]."""
        M = x_before.sum(1)  # [B] M_<i  # noqa: N806
        return self.slope * M + self.offset + self.omega * torch.sign(M)


class _PerSiteCurieWeiss(torch.nn.Module):
    """N Curie-Weiss conditionals in a Python loop (each recomputes M_<i from x_<i)."""

    conditional_type: type[torch.nn.Module] = CWNConditional

    def __init__(self, N, *, beta=1.0, J=1.0, h=0.0, device=None, dtype=torch.float64):  # noqa: N803
        super().__init__()
        self.N, self.beta, self.J, self.h = int(N), float(beta), float(J), float(h)
        self.dtype, self.device = dtype, device
        options = {"device": device, "dtype": dtype}
        self.conditionals = torch.nn.ModuleList(
            self.conditional_type(i, self.N, self.beta, self.J, self.h, **options)
            for i in range(self.N)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, N], one conditional after the other."""
        x = x.to(self.dtype)
        return torch.stack([cond(x[:, :i]) for i, cond in enumerate(self.conditionals)], dim=1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log Q(x) [B] = sum_i log sigmoid(x_i logit_i)."""
        x = x.to(self.dtype)
        return F.logsigmoid(x * self.forward(x)).sum(-1)

    @torch.no_grad()
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x [B, N] by ancestral sampling; conditional i recomputes M_<i from x_<i."""
        x = torch.zeros(batch_size, self.N, device=self.device, dtype=self.dtype)
        for i, conditional in enumerate(self.conditionals):
            x[:, i] = _draw(conditional(x[:, :i]), generator)
        return x

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """H(x) [B] = -(J / 2N) (M^2 - N) - h M, M = sum_i x_i (docs/physics.md section 3)."""
        M = x.to(self.dtype).sum(-1)  # [B]  # noqa: N806
        return -(self.J / (2 * self.N)) * (M**2 - self.N) - self.h * M

    @staticmethod
    def _options(model: torch.nn.Module) -> dict:
        tensors = list(model.buffers()) + list(model.parameters())
        reference = next(t for t in tensors if t.is_floating_point())
        return {"device": reference.device, "dtype": reference.dtype}


class PerSiteCWN(_PerSiteCurieWeiss):
    """CW_N as N per-site modules; no trainable parameter (all are analytic)."""

    conditional_type = CWNConditional

    @classmethod
    def from_model(cls, model: torch.nn.Module) -> PerSiteCWN:
        """The per-site port of an emitted CW_N model: same N, beta, J, h, device and dtype;
        b and w recomputed from them with the formulas of docs/physics.md section 3."""
        options = cls._options(model)
        return cls(model.N, beta=model.beta, J=model.J, h=model.h, **options)


class PerSiteCWInf(_PerSiteCurieWeiss):
    """CW_inf as N per-site modules, each with its trainable omega_i."""

    conditional_type = CWInfConditional

    @classmethod
    def from_model(cls, model: torch.nn.Module) -> PerSiteCWInf:
        """The per-site port of an emitted CW_inf model, omega_i copied."""
        port = cls(
            model.N,
            beta=model.beta,
            J=model.J,
            h=model.h,
            device=model.omega.device,
            dtype=model.omega.dtype,
        )
        with torch.no_grad():
            for i, conditional in enumerate(port.conditionals):
                conditional.omega.copy_(model.omega[i])
        return port
