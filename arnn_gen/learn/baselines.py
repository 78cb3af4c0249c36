"""The comparison architectures of the paper: 1P, 1L and MADE_dw (docs/physics.md section 6).

Biazzo (2023) compares the derived networks with the variational autoregressive networks of
Wu, Wang and Zhang (2019). These baselines know nothing of the couplings; each gives the
logits of P(x_i = +1 | x_<i) from the earlier spins alone:

``1P`` (:class:`OneParameter`)
    logit_i = w M_<i, M_<i = sum_{s<i} x_s: one trainable scalar w.
``1L`` (:class:`OneLayer`)
    logit = x (W * mask)^T + b, mask strictly lower triangular: N^2 + N parameters, of which
    N (N - 1) / 2 + N are used.
``MADE_dw`` (:class:`MADE`)
    d hidden masked layers of width w N (Germain et al. 2015, natural ordering).

Every baseline has the interface of an emitted module, so that the same trainer and
observables serve all: ``N``, ``beta`` (settable), ``hamiltonian``, ``forward(x)`` (logits
``[B, N]`` in one pass), ``log_prob(x)`` (``[B]``), ``sample(batch_size, generator=None)``
(``[B, N]`` of +-1 by ancestral sampling: N sequential steps), ``energy(x)`` (``[B]``) and
``reset_parameters(init)``. ``x`` is always a float tensor ``[B, N]`` of +-1.

:func:`make_baseline` builds one by its short name (:data:`BASELINES` lists the paper's).
Bad constructor input raises :class:`~arnn_gen.errors.ArnnGenError`.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)

from arnn_gen.checks import check_beta
from arnn_gen.errors import ArnnGenError
from arnn_gen.systems import Hamiltonian

__all__ = [
    "ACTIVATIONS",
    "BASELINES",
    "INITS",
    "MADE",
    "OneLayer",
    "OneParameter",
    "made_degrees",
    "make_baseline",
]

BASELINES: tuple[str, ...] = ("1P", "1L", "MADE_21", "MADE_22")
"""Short names of the baselines of the paper's comparison (docs/physics.md section 6)."""

INITS: tuple[str, ...] = ("random", "zero")
"""Initialisations every baseline accepts: small random values, or every parameter 0
(Q uniform, log Q(x) = -N log 2)."""

ACTIVATIONS: tuple[str, ...] = ("relu", "tanh")
"""Hidden-layer nonlinearities of :class:`MADE`."""

_ACTIVATION_FUNCTIONS = {"relu": torch.relu, "tanh": torch.tanh}
# "MADE_dw" with one digit each for the depth d and the width factor w (e.g. MADE_21).
_MADE_NAME = re.compile(r"MADE_([1-9])([1-9])", re.IGNORECASE)


# --------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArnnGenError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _check_init(init: Any) -> str:
    if init not in INITS:
        raise ArnnGenError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    return init


# --------------------------------------------------------------------------------------
# The common interface
# --------------------------------------------------------------------------------------


class _Baseline(torch.nn.Module):
    """The interface shared with emitted modules; subclasses give ``forward`` and
    ``_logit_at`` (the logit of one site, used by the sampler)."""

    name: str = ""

    def __init__(
        self,
        hamiltonian: Hamiltonian,
        beta: float,
        device: torch.device | str | None,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        from arnn_gen.systems import CurieWeiss

        if isinstance(hamiltonian, CurieWeiss):
            hamiltonian = hamiltonian.dense()
        if not isinstance(hamiltonian, Hamiltonian):
            raise ArnnGenError(
                f"hamiltonian must be an arnn_gen.systems.Hamiltonian, "
                f"got {type(hamiltonian).__name__}"
            )
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise ArnnGenError(f"dtype must be a real floating torch dtype, got {dtype!r}")
        if device is not None:
            try:
                device = torch.device(device)
            except (RuntimeError, TypeError) as err:
                message = str(err).splitlines()[0] if str(err) else repr(device)
                raise ArnnGenError(f"invalid device {device!r}: {message}") from None
        self._hamiltonian = hamiltonian
        self._beta = check_beta(beta)
        # Per (device, dtype) copies of J [N, N] and h [N], filled by energy().
        self._energy_tensors: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, ...]]
        self._energy_tensors = {}

    # -- views ---------------------------------------------------------------------------

    @property
    def N(self) -> int:  # noqa: N802 (physics name)
        """Number of spins."""
        return self._hamiltonian.N

    @property
    def hamiltonian(self) -> Hamiltonian:
        """The system the model was built for (its energy is :meth:`energy`)."""
        return self._hamiltonian

    @property
    def beta(self) -> float:
        """Inverse temperature. No baseline parameter depends on it: the trainer reads it."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = check_beta(value)

    def _reference(self) -> torch.Tensor:
        """A parameter, whose device and dtype are the model's."""
        return next(self.parameters())

    def extra_repr(self) -> str:
        return f"name={self.name!r}, N={self.N}, beta={self._beta!r}"

    # -- the distribution ----------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Logits ``[B, N]`` of P(x_i = +1 | x_<i) for x ``[B, N]``, in one pass."""
        raise NotImplementedError

    def _logit_at(self, x: torch.Tensor, i: int) -> torch.Tensor:  # pragma: no cover
        """Logit ``[B]`` of site i; x ``[B, N]`` with x_<i set (the rest is ignored)."""
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log Q(x) ``[B]`` = sum_i log P(x_i | x_<i), with P(x_i) = sigmoid(x_i logit_i)."""
        x = x.to(self._reference().dtype)
        return F.logsigmoid(x * self.forward(x)).sum(-1)

    @torch.no_grad()
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x ``[B, N]`` of +-1 (model dtype) by ancestral sampling, one site per step.

        The spins not yet drawn are 0, so that no uninitialised value (possibly NaN, and
        NaN * 0 = NaN) reaches the masked weights.
        """
        reference = self._reference()
        device, dtype = reference.device, reference.dtype
        x = torch.zeros(batch_size, self.N, device=device, dtype=dtype)  # [B, N]
        for i in range(self.N):
            logit = self._logit_at(x, i)  # [B]
            u = torch.rand(batch_size, generator=generator, device=device, dtype=dtype)
            x[:, i] = torch.where(u < torch.sigmoid(logit), 1.0, -1.0).to(dtype)
        return x

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """H(x) ``[B]`` = -sum_{i<j} J_ij x_i x_j - sum_i h_i x_i (docs/physics.md section 1).

        Computed on x's device in x's dtype (integer or bool x: the model dtype), with J and
        h cached per (device, dtype). Unlike :meth:`Hamiltonian.energy` it does not check
        that x holds only +-1 (no device synchronisation in the training loop).
        """
        if not x.is_floating_point():
            x = x.to(self._reference().dtype)
        key = (x.device, x.dtype)
        if key not in self._energy_tensors:
            self._energy_tensors[key] = (
                torch.tensor(self._hamiltonian.J, device=x.device, dtype=x.dtype),
                torch.tensor(self._hamiltonian.h, device=x.device, dtype=x.dtype),
            )
        couplings, fields = self._energy_tensors[key]  # [N, N], [N]
        # sum_{i<j} J_ij x_i x_j = (1/2) x^T J x: J is symmetric with zero diagonal.
        return -0.5 * ((x @ couplings) * x).sum(-1) - x @ fields


# --------------------------------------------------------------------------------------
# 1P
# --------------------------------------------------------------------------------------


class OneParameter(_Baseline):
    """1P: logit_i = w M_<i with M_<i = sum_{s<i} x_s and a single trainable scalar w.

    The exact Curie-Weiss conditional at high temperature is of this form with
    w = 2 beta J / N (docs/physics.md section 3, the rho terms dropped).

    Parameters (1 in all): ``w`` (scalar). The constructor's default ``init="zero"`` starts
    from w = 0 (Q uniform); ``init="random"``: w ~ Normal(0, 1/N^2) (std 1/N).
    """

    name = "1P"

    @staticmethod
    def parameter_count(N: int) -> int:  # noqa: N803
        """Number of trainable parameters: 1."""
        return 1

    def __init__(
        self,
        hamiltonian: Hamiltonian,
        beta: float = 1.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        init: str = "zero",
    ) -> None:
        super().__init__(hamiltonian, beta, device, dtype)
        _check_init(init)
        self.w = torch.nn.Parameter(torch.zeros((), device=device, dtype=dtype))
        self.reset_parameters(init)

    @torch.no_grad()
    def reset_parameters(self, init: str = "random") -> None:
        """init="random": w ~ Normal(0, std 1/N); init="zero": w = 0."""
        if _check_init(init) == "zero":
            self.w.zero_()
        else:
            self.w.normal_(0.0, 1.0 / self.N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, N]``: w M_<i, the exclusive cumulative sum of the spins."""
        x = x.to(self.w.dtype)
        magnetization = F.pad(x[:, :-1].cumsum(-1), (1, 0))  # [B, N] M_<i
        return self.w * magnetization

    def _logit_at(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return self.w * x[:, :i].sum(-1)  # [B]


# --------------------------------------------------------------------------------------
# 1L
# --------------------------------------------------------------------------------------


class OneLayer(_Baseline):
    """1L: one masked linear layer, logit = x (W * mask)^T + b (Wu, Wang, Zhang 2019).

    The mask is strictly lower triangular (output i sees inputs s < i), so logit_0 = b_0.

    Parameters (N^2 + N in all): ``weight`` W ``[N, N]`` and ``bias`` b ``[N]``; only the
    N (N - 1) / 2 entries of W below the diagonal are used (the others get zero gradient and
    are set to 0 by :meth:`reset_parameters`). ``init="random"`` (default): used weights and
    biases ~ Normal(0, std 1/N), the paper's small random start.
    """

    name = "1L"

    @staticmethod
    def parameter_count(N: int) -> int:  # noqa: N803
        """Number of trainable parameters: N^2 + N (N (N - 1) / 2 + N effective)."""
        return N * N + N

    def __init__(
        self,
        hamiltonian: Hamiltonian,
        beta: float = 1.0,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        init: str = "random",
    ) -> None:
        super().__init__(hamiltonian, beta, device, dtype)
        _check_init(init)
        N = self.N
        self.weight = torch.nn.Parameter(torch.zeros(N, N, device=device, dtype=dtype))
        self.bias = torch.nn.Parameter(torch.zeros(N, device=device, dtype=dtype))
        mask = torch.ones(N, N, device=device, dtype=dtype).tril(-1)  # [N, N] s < i
        self.register_buffer("mask", mask)
        self.reset_parameters(init)

    @torch.no_grad()
    def reset_parameters(self, init: str = "random") -> None:
        """init="random": W (below the diagonal) and b ~ Normal(0, std 1/N); "zero": all 0."""
        if _check_init(init) == "zero":
            self.weight.zero_()
            self.bias.zero_()
            return
        self.weight.normal_(0.0, 1.0 / self.N).masked_fill_(self.mask == 0, 0.0)
        self.bias.normal_(0.0, 1.0 / self.N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, N]`` = x (W * mask)^T + b."""
        x = x.to(self.weight.dtype)
        return F.linear(x, self.weight * self.mask, self.bias)

    def _logit_at(self, x: torch.Tensor, i: int) -> torch.Tensor:
        # Row i of the masked layer: O(B i) per step, O(B N^2) per sample like one forward.
        return x[:, :i] @ self.weight[i, :i] + self.bias[i]  # [B]


# --------------------------------------------------------------------------------------
# MADE_dw
# --------------------------------------------------------------------------------------


def made_degrees(N: int, width: int) -> torch.Tensor:  # noqa: N803
    """Degrees ``[width]`` of a hidden layer: 1, 2, ..., N - 1, 1, 2, ... (deterministic).

    A hidden unit of degree m sees the inputs x_s with s + 1 <= m (inputs have degrees
    1..N) and feeds the outputs i with i >= m, so that output i depends only on x_<i
    (Germain et al. 2015, natural ordering). For N = 1 every degree is 1 (no output sees it).
    """
    return torch.arange(width) % max(N - 1, 1) + 1


class MADE(_Baseline):
    """MADE_dw: d hidden masked layers of width w N with ReLU or tanh (Germain et al. 2015).

    Input s has degree s + 1, hidden units have the degrees of :func:`made_degrees`; a
    connection from a unit of degree m' to a hidden unit of degree m exists when m >= m',
    from a hidden unit of degree m to output i when i >= m (strictly: output i has degree
    i + 1 > m). Hence logit_i depends only on x_<i and logit_0 is the output bias. No direct
    input-to-output connection.

    Parameters, with H = w N (all stored entries counted, masked ones included):
    N H + H (input layer) + (d - 1) (H^2 + H) (hidden layers) + H N + N (output layer).
    ``init="random"`` (default): PyTorch's default ``nn.Linear`` initialisation (uniform in
    +-1/sqrt(fan_in), fan_in counting masked inputs), masked weights then set to 0;
    ``init="zero"``: every parameter 0 (Q uniform, but then only the output bias learns).
    """

    @staticmethod
    def parameter_count(N: int, depth: int = 2, width: int = 1) -> int:  # noqa: N803
        """Number of trainable parameters (formula in the class docstring)."""
        hidden = width * N
        return N * hidden + hidden + (depth - 1) * (hidden * hidden + hidden) + hidden * N + N

    def __init__(
        self,
        hamiltonian: Hamiltonian,
        beta: float = 1.0,
        *,
        depth: int = 2,
        width: int = 1,
        activation: str = "relu",
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        init: str = "random",
    ) -> None:
        super().__init__(hamiltonian, beta, device, dtype)
        self.depth = _check_positive_int("MADE depth", depth)
        self.width = _check_positive_int("MADE width", width)
        if activation not in ACTIVATIONS:
            raise ArnnGenError(
                f"MADE activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}"
            )
        self.activation = activation
        _check_init(init)
        N = self.N
        hidden = self.width * N
        inputs = torch.arange(1, N + 1)  # [N] degrees of x_0..x_{N-1}
        degrees = made_degrees(N, hidden)  # [H]
        outputs = torch.arange(N)  # [N] output i sees hidden degree m <= i
        masks = [degrees[:, None] >= inputs[None, :]]  # [H, N]
        masks += [degrees[:, None] >= degrees[None, :]] * (depth - 1)  # [H, H]
        masks.append(outputs[:, None] >= degrees[None, :])  # [N, H]
        self.layers = torch.nn.ModuleList()
        for k, mask in enumerate(masks):
            rows, columns = mask.shape
            self.layers.append(torch.nn.Linear(columns, rows, device=device, dtype=dtype))
            self.register_buffer(f"mask{k}", mask.to(device=device, dtype=dtype))
        self.reset_parameters(init)

    @property
    def name(self) -> str:  # type: ignore[override]
        """``MADE_dw``, e.g. ``MADE_21`` for depth 2 and width 1 (N hidden units per layer)."""
        return f"MADE_{self.depth}{self.width}"

    def _masks(self) -> list[torch.Tensor]:
        return [getattr(self, f"mask{k}") for k in range(len(self.layers))]

    @torch.no_grad()
    def reset_parameters(self, init: str = "random") -> None:
        """init="random": nn.Linear's default, masked weights zeroed; "zero": all 0."""
        zero = _check_init(init) == "zero"
        for layer, mask in zip(self.layers, self._masks(), strict=True):
            if zero:
                layer.weight.zero_()
                layer.bias.zero_()
            else:
                layer.reset_parameters()
                layer.weight.masked_fill_(mask == 0, 0.0)

    def _hidden(self, x: torch.Tensor) -> torch.Tensor:
        """Activations ``[B, H]`` of the last hidden layer for x ``[B, N]``."""
        activate = _ACTIVATION_FUNCTIONS[self.activation]
        z = x
        for layer, mask in zip(self.layers[:-1], self._masks()[:-1], strict=True):
            z = activate(F.linear(z, layer.weight * mask, layer.bias))  # [B, H]
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, N]``: the masked hidden layers, then the masked output layer."""
        x = x.to(self.layers[0].weight.dtype)
        output, mask = self.layers[-1], self._masks()[-1]
        return F.linear(self._hidden(x), output.weight * mask, output.bias)

    def _logit_at(self, x: torch.Tensor, i: int) -> torch.Tensor:
        # The hidden layers in full (they mix all sites), then only output row i.
        output, mask = self.layers[-1], self._masks()[-1]
        return self._hidden(x) @ (output.weight[i] * mask[i]) + output.bias[i]  # [B]


# --------------------------------------------------------------------------------------
# Factory
# --------------------------------------------------------------------------------------

_COMMON_OPTIONS = ("device", "dtype", "init")


def make_baseline(
    name: str, hamiltonian: Hamiltonian, beta: float = 1.0, **options: Any
) -> OneParameter | OneLayer | MADE:
    """The baseline called ``name`` ("1P", "1L" or "MADE_dw", d and w one digit each, e.g.
    "MADE_21": depth 2, width N) for ``hamiltonian`` at inverse temperature ``beta``.

    ``options``: ``device``, ``dtype``, ``init``, and for MADE ``activation`` (the depth and
    width come from the name). Unknown names and options raise ArnnGenError.
    """
    if not isinstance(name, str):
        raise ArnnGenError(f"baseline name must be a string, got {name!r}")
    key = name.strip().upper()
    made = _MADE_NAME.fullmatch(key)
    allowed = _COMMON_OPTIONS + (("activation",) if made else ())
    if key not in ("1P", "1L") and made is None:
        raise ArnnGenError(
            f"unknown baseline {name!r}: choose 1P, 1L or MADE_dw (one digit each for depth "
            f"d and width w, e.g. {', '.join(BASELINES[2:])})"
        )
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ArnnGenError(
            f"unknown option(s) {', '.join(unknown)} for baseline {name!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    if key == "1P":
        return OneParameter(hamiltonian, beta, **options)
    if key == "1L":
        return OneLayer(hamiltonian, beta, **options)
    assert made is not None
    depth, width = int(made.group(1)), int(made.group(2))
    return MADE(hamiltonian, beta, depth=depth, width=width, **options)
