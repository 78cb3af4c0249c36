"""The architecture families, one module each, and :func:`build_ir`, which picks the family
of a reduction and fills the IR from it.

A family (:class:`~arnn_gen.codegen.families.base.Family`) owns its template, the
(system, variant) pairs it serves, how it reads parameters and formulas off the reduction,
its default dtype and its print options. Adding one is adding a module here with a
``FAMILY`` and its template, and listing it in :data:`FAMILIES`; nothing else branches on
families.
"""

from __future__ import annotations

import sympy as sp

from arnn_gen.codegen.families import (
    cw_exact,
    cw_inf,
    cw_inf_instances,
    frontier_exact,
    frontier_replica,
    h2arnn,
    replica,
    replica_instances,
)
from arnn_gen.codegen.families.base import Family, log_conditional
from arnn_gen.codegen.families.symbols import LOGIT, SPIN, SYMBOL_NAMES
from arnn_gen.codegen.ir import ArchitectureIR, Provenance, class_name, module_name
from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import SYMBOLS
from arnn_gen.symbolic.nn_functions import sigmoid
from arnn_gen.symbolic.simplify import RSYM, Reduction

__all__ = ["FAMILIES", "Family", "family_for", "build_ir", "beta_scaled", "instances_suffix"]

#: Every family; a (system, variant) pair goes to the first that names its system, else to
#: the first that serves the variant for every system.
FAMILIES: tuple[Family, ...] = (
    cw_exact.FAMILY,
    cw_inf.FAMILY,
    h2arnn.FAMILY,
    replica.FAMILY,
    frontier_replica.FAMILY,
    frontier_exact.FAMILY,
    replica_instances.FAMILY,
    cw_inf_instances.FAMILY,
)


def family_for(system: str, variant: str, layout: str = "dense", *,
               instances: bool = False) -> Family:  # fmt: skip
    """The family that serves ``variant`` of ``system`` with the reduction's ``layout``
    (``instances``: for a stack of disorder instances in one module)."""
    for wanted in (system, None):
        for family in FAMILIES:
            if (
                (wanted, variant) in family.serves
                and family.layout == layout
                and family.instances == instances
            ):
                return family
    several = " for several instances" if instances else ""
    raise ArnnGenError(
        f"no architecture family serves variant {variant!r} of {system!r} ({layout} layout)"
        f"{several}"
    )


def beta_scaled(parameters) -> tuple[str, ...]:
    """The trainable parameters whose initial value is beta times an expression free of
    beta (in the replica forms: the innermost layer and the residual at the paramagnetic
    start, docs/physics.md section 4). Annealing can carry them from beta to beta' by the
    factor beta' / beta, which maps the paramagnetic start at beta onto the one at beta'."""
    beta = SYMBOLS.beta
    depends_on_beta = (beta, RSYM.m)  # m_beta, the mean-field magnetisation, does too
    return tuple(
        p.name
        for p in parameters
        if p.role == "trainable"
        and p.initial.has(beta)
        and not sp.simplify(p.initial / beta).has(*depends_on_beta)
    )


def build_ir(
    hamiltonian,
    reduction: Reduction,
    *,
    beta: float,
    name: str | None = None,
    dtype: str | None = None,
    command: str,
    site_order: str = "",
    frontier_width: int = 0,
    backend: str = "torch",
) -> ArchitectureIR:
    """The IR of ``reduction`` for ``hamiltonian`` at emission temperature ``beta``;
    ``site_order``: how a frontier network's order was chosen, ``frontier_width`` the width
    max_i |F_i| it gives (docs/physics.md section 7); the IR records the sha256 of the order
    itself, which the module checks its sidecar's against. ``backend``: the kernels, "torch"
    or "triton" (families that have Triton kernels: ``Family.backends``)."""
    from arnn_gen.systems import CurieWeiss, Hamiltonian
    from arnn_gen.systems.instances import InstanceStack
    from arnn_gen.systems.sparse import SparseHamiltonian

    if not isinstance(hamiltonian, Hamiltonian | CurieWeiss | SparseHamiltonian | InstanceStack):
        raise ArnnGenError("build_ir needs a Hamiltonian")
    if (reduction.layout == "frontier") != isinstance(hamiltonian, SparseHamiltonian):
        raise ArnnGenError(f"a reduction of {reduction.layout} layout does not fit {hamiltonian!r}")
    system, variant, k = reduction.system, reduction.variant, reduction.k
    stacked = isinstance(hamiltonian, InstanceStack)
    family = family_for(system, variant, reduction.layout, instances=stacked)
    if backend not in family.backends:
        raise ArnnGenError(f"--backend {backend} is not available for {reduction.title()} "
                           f"({family.name} family: {', '.join(family.backends)})")  # fmt: skip
    N = hamiltonian.N  # noqa: N806
    stem = name or module_name(system, variant, N, k)
    if stacked and name is None:
        stem = f"{stem}_{instances_suffix(hamiltonian.labels, seeds=system == 'sk')}"
    scalars = tuple(sorted((key, value) for key, value in hamiltonian.provenance.items()))
    provenance = Provenance(
        kind=hamiltonian.kind,
        N=N,
        scalars=scalars,
        signature=hamiltonian.signature(),
        sidecar="" if family.embedded else f"{stem}.npz",
    )
    parameters, formulas = family.parts(reduction)
    formulas = (
        *formulas,
        ("log_conditional", log_conditional(SPIN, LOGIT)),
        ("probability_plus", sigmoid(LOGIT)),  # P(x_i = +1 | x_<i), what sampling draws
    )
    symbol_names = tuple(SYMBOL_NAMES.items())
    return ArchitectureIR(
        name=stem,
        class_name=class_name(system, reduction.title()),
        title=reduction.title(),
        system=system,
        variant=variant,
        family=family.name,
        template=family.template,
        N=N,
        k=k,
        beta=float(beta),
        dtype=dtype or family.dtype,
        provenance=provenance,
        parameters=parameters,
        formulas=formulas,
        symbol_names=symbol_names,
        fused_multiply_add=family.fused_multiply_add,
        in_place=family.in_place,
        beta_scaled=beta_scaled(parameters),
        constants=tuple((SYMBOL_NAMES[symbol], value) for symbol, value in reduction.constants),
        conditional_latex=reduction.derivation.latex_lines(),
        reduced_latex=reduction.latex_lines(),
        command=command,
        site_order=site_order,
        frontier_width=frontier_width,
        order_signature=_order_signature(hamiltonian, site_order),
        instances=tuple(hamiltonian.labels) if stacked else (),
        instance_signatures=tuple(m.signature() for m in hamiltonian.members) if stacked else (),
        instance_scalars=_instance_scalars(hamiltonian) if stacked and family.embedded else (),
        backend=backend,
    )


def instances_suffix(labels, *, seeds: bool) -> str:
    """The default module name's suffix of a stack of instances: ``s0_9`` for the SK seeds
    0 to 9 in order, ``i<K>`` otherwise (K instances: other seeds, or couplings files)."""
    if seeds and all(label.isdigit() for label in labels):
        seeds = [int(label) for label in labels]
        if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
            return f"s{seeds[0]}_{seeds[-1]}"
    return f"i{len(labels)}"


def _instance_scalars(stack) -> tuple:
    """The numbers that define each instance of a stack whose module embeds them (Curie-Weiss:
    J and h), as sorted (name, value) pairs."""
    return tuple(tuple(sorted(dict(member.provenance).items())) for member in stack.members)


def _order_signature(hamiltonian, site_order: str) -> str:
    """sha256 of the order ``site_order`` names for ``hamiltonian`` ("" for none)."""
    if not site_order:
        return ""
    from arnn_gen.systems.ordering import order_signature
    from arnn_gen.systems.ordering import site_order as order_of

    return order_signature(order_of(hamiltonian, site_order))
