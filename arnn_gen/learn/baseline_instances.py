"""The paper's baselines (1P, 1L, MADE_dw) of K instances trained as one module.

:class:`InstanceBaselines` holds K baselines of one architecture, one per system of an
:class:`~arnn_gen.systems.instances.InstanceStack`, with their parameters stacked along a
leading instance dimension and evaluated together (``torch.func.vmap`` over the
instances of the single baseline's own forward pass): it has the interface of an emitted
module of several instances (``INSTANCES``, ``sample`` -> ``[K, B, N]``, ``log_prob`` ->
``[K, B]``, ``instance_state_dict``), so that :func:`arnn_gen.learn.instances.train_instances`
trains it. Instance k starts as ``make_baseline(name, system_k)`` after
``torch.manual_seed(seeds[k])`` (by default its label when the labels are SK seeds, else k:
the start a single run of it draws, as a sweep seeds it) and draws its samples
from the k-th of K generators in the order the single baseline draws them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)

from arnn_gen.checks import check_beta
from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.baselines import make_baseline
from arnn_gen.systems.instances import InstanceStack

__all__ = ["InstanceBaselines", "make_instance_baselines"]


def _key(name: str) -> str:
    return name.replace(".", "__")


class InstanceBaselines(torch.nn.Module):
    """K baselines of one architecture (see the module docstring)."""

    def __init__(self, name: str, stack: InstanceStack, beta: float = 1.0, *,
                 seeds=None, **options) -> None:  # fmt: skip
        super().__init__()
        if not isinstance(stack, InstanceStack):
            raise ArnnGenError("InstanceBaselines needs an InstanceStack of systems")
        if seeds is None:  # the SK seeds of the labels, else the instances' indices
            labels = stack.labels
            numeric = all(label.isdigit() for label in labels)
            seeds = [int(label) for label in labels] if numeric else list(range(stack.count))
        seeds = list(seeds)
        if len(seeds) != stack.count:
            raise ArnnGenError(f"expected {stack.count} seeds, got {len(seeds)}")
        members = []
        for seed, system in zip(seeds, stack.members, strict=True):
            torch.manual_seed(seed)  # the random start a single run of this instance draws
            members.append(make_baseline(name, system, beta=beta, **options))
        self._base = [members[0]]  # the architecture, called with each instance's tensors
        self._names = [n for n, _ in members[0].named_parameters()]
        self._buffer_names = [n for n, _ in members[0].named_buffers()]
        parameters, buffers = torch.func.stack_module_state(members)
        for key, value in parameters.items():
            self.register_parameter(_key(key), torch.nn.Parameter(value))
        for key, value in buffers.items():
            self.register_buffer(_key(key), value)
        reference = parameters[self._names[0]]
        self.register_buffer("J", torch.as_tensor(stack.couplings, dtype=reference.dtype,
                                                  device=reference.device))  # fmt: skip
        self.register_buffer("h", torch.as_tensor(stack.fields, dtype=reference.dtype,
                                                  device=reference.device))  # fmt: skip
        self.TITLE = members[0].name
        self.N = stack.N
        self.INSTANCES = stack.count
        self.INSTANCE_LABELS = tuple(stack.labels)
        self.INSTANCE_SIGNATURES = tuple(member.signature() for member in stack.members)
        self._stack = stack
        self._beta = check_beta(beta)

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = check_beta(value)

    def system_arrays(self):
        """(J [K, N, N], h [K, N]) in float64 on the CPU."""
        stack = self._stack
        return torch.from_numpy(stack.couplings), torch.from_numpy(stack.fields)

    def _state(self):
        parameters = {n: getattr(self, _key(n)) for n in self._names}
        buffers = {n: getattr(self, _key(n)) for n in self._buffer_names}
        return parameters, buffers

    def forward(self, x: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
        """Logits [K, B, N]: each instance's baseline forward pass with its own tensors,
        vectorised over the instances."""
        x = self._checked(x, validate)
        base = self._base[0]

        def one(parameters, buffers, x_k):
            return torch.func.functional_call(base, (parameters, buffers), (x_k,), strict=True)

        parameters, buffers = self._state()
        return torch.vmap(one)(parameters, buffers, x)

    def log_prob(self, x: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
        """log Q(x) [K, B]."""
        x = self._checked(x, validate)
        return F.logsigmoid(x * self.forward(x, validate=False)).sum(-1)

    def energy(self, x: torch.Tensor, *, validate: bool = True) -> torch.Tensor:
        """H(x) [K, B] of each instance's spins."""
        x = self._checked(x, validate)
        return -0.5 * ((x @ self.J) * x).sum(-1) - (x @ self.h.unsqueeze(-1)).squeeze(-1)

    def _checked(self, x: torch.Tensor, validate: bool) -> torch.Tensor:
        dtype = self.J.dtype
        if validate and (not isinstance(x, torch.Tensor) or x.dim() != 3
                         or x.shape[0] != self.INSTANCES or x.shape[2] != self.N):  # fmt: skip
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a [{self.INSTANCES}, B, {self.N}] tensor of -1 and "
                             f"+1, got {shape}")  # fmt: skip
        if validate and not bool(((x == 1) | (x == -1)).all()):
            raise ValueError(f"x must be a [{self.INSTANCES}, B, {self.N}] tensor of -1 and "
                             "+1, got values other than -1 and +1")  # fmt: skip
        return x.to(dtype)

    @torch.no_grad()
    def sample(self, batch_size: int, generator=None) -> torch.Tensor:
        """x [K, B, N] by ancestral sampling; ``generator``: one, or K (one per instance,
        each drawing the uniforms of its instance as the single baseline does)."""
        count, N, dtype, device = self.INSTANCES, self.N, self.J.dtype, self.J.device  # noqa: N806
        if generator is None or isinstance(generator, torch.Generator):
            uniforms = torch.rand(count, N, batch_size, generator=generator, device=device,
                                  dtype=dtype)  # fmt: skip
        else:
            streams = list(generator)
            if len(streams) != count:
                raise ValueError(f"expected one generator or {count}, got {len(streams)}")
            uniforms = torch.stack([torch.rand(N, batch_size, generator=s, device=device,
                                               dtype=dtype) for s in streams])  # fmt: skip
        # the spins not yet drawn are 0; logit_i reads only x_<i (autoregressive), so a whole
        # forward pass gives it (O(N) passes: the single baselines' per-site rows are cheaper)
        x = torch.zeros(count, batch_size, N, device=device, dtype=dtype)
        for i in range(N):
            logit = self.forward(x, validate=False)[:, :, i]  # [K, B]
            x[:, :, i] = torch.where(uniforms[:, i] < torch.sigmoid(logit), 1.0, -1.0)
        return x

    def sample_with_log_prob(self, batch_size: int, generator=None):
        x = self.sample(batch_size, generator)
        return x, self.log_prob(x, validate=False)

    def instance_state_dict(self, index: int) -> dict:
        """Instance ``index``'s state as the single baseline names it."""
        parameters, buffers = self._state()
        return {n: t[index].detach().clone() for n, t in {**parameters, **buffers}.items()}

    @torch.no_grad()
    def load_instance_state_dict(self, index: int, state: dict) -> None:
        parameters, _ = self._state()
        for name, tensor in parameters.items():
            tensor[index].copy_(state[name])


def make_instance_baselines(name: str, stack: InstanceStack, beta: float = 1.0, **options):
    """:class:`InstanceBaselines` of the baseline called ``name`` on the systems of
    ``stack`` (options as :func:`arnn_gen.learn.baselines.make_baseline`, and ``seeds``)."""
    return InstanceBaselines(name, stack, beta, **options)
