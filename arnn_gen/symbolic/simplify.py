"""Stage 3: mean-field reductions of the exact conditional into compact architectures.

Input: the generic :class:`~arnn_gen.symbolic.derive.Derivation`. Output: a :class:`Reduction`, the
reduced log-partition functions log rho_i^{+-} and logit of P(x_i = +1 | x_<i), with the
parameters the architecture needs (fixed analytic ones and trainable ones with their
initial values) as SymPy expressions. docs/physics.md sections 2-4.

The forms live in their own modules (:mod:`~arnn_gen.symbolic.h2arnn`,
:mod:`~arnn_gen.symbolic.curie_weiss`, :mod:`~arnn_gen.symbolic.replica`, on the vocabulary
of :mod:`~arnn_gen.symbolic.reduction`); this module picks one for a (system, variant) and
gathers their names.

Variants:
    exact (H2ARNN)  log rho^{+-} as a logsumexp over the 2^(N-1-i) configurations of x_>i
    cw_exact (CW_N) uniform couplings: SymPy collapses the sum over x_>i onto the later
                    magnetisation, a binomial sum over k = number of later spins at -1
    cw_inf (CW_inf) saddle point of the same sum: one trainable unit per site
    rs / krsb       replica forms: k + 1 nested logsigmoid layers per later site

Index conventions: sites are 0-based, so the number of later spins of site i is
n = N - 1 - i (docs/physics.md's N - i with 1-based i).
"""

from __future__ import annotations

from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.curie_weiss import (
    MAGNETIZATION,
    BinomialRecursion,
    check_cw_n_recursion,
    curie_weiss_energy,
    cw_inf_form,
    cw_n_form,
    cw_n_recursion,
)
from arnn_gen.symbolic.derive import Derivation, derive_conditional
from arnn_gen.symbolic.frontier import frontier_replica_form
from arnn_gen.symbolic.frontier_exact import frontier_exact_form
from arnn_gen.symbolic.h2arnn import h2arnn_bias_contracted, h2arnn_form
from arnn_gen.symbolic.reduction import MAX_RSB_DEPTH, RSYM, Parameter, ReducedSymbols, Reduction
from arnn_gen.symbolic.replica import OFFSET, OUTER_OFFSET, outer_layer_offset, replica_form
from arnn_gen.variants import VARIANTS

__all__ = [
    "VARIANTS",
    "Parameter",
    "Reduction",
    "ReducedSymbols",
    "RSYM",
    "MAX_RSB_DEPTH",
    "reduce_conditional",
    "resolve_variant",
    "cw_n_form",
    "BinomialRecursion",
    "cw_n_recursion",
    "check_cw_n_recursion",
    "cw_inf_form",
    "replica_form",
    "frontier_replica_form",
    "h2arnn_form",
    "h2arnn_bias_contracted",
    "OUTER_OFFSET",
    "outer_layer_offset",
    "OFFSET",
    "MAGNETIZATION",
    "curie_weiss_energy",
]


def resolve_variant(system: str, variant: str | None) -> str:
    """``variant`` checked against DESIGN.md's table for ``system`` (None: the default)."""
    if system not in VARIANTS:
        raise ArnnGenError(
            f"unknown system {system!r}; choose one of {', '.join(sorted(VARIANTS))}"
        )
    variant = VARIANTS[system][0] if variant is None else variant
    if variant not in VARIANTS[system]:
        raise ArnnGenError(
            f"unknown variant {variant!r} for system {system!r}; "
            f"choose one of {', '.join(VARIANTS[system])}"
        )
    return variant


def reduce_conditional(
    system: str,
    variant: str | None = None,
    *,
    k: int = 1,
    derivation: Derivation | None = None,
    layout: str = "dense",
) -> Reduction:
    """The reduced form of ``variant`` for ``system`` (DESIGN.md's table; None: default);
    ``layout`` "frontier": the forms over the frontier of a sparse system (docs/physics.md
    section 7), the sparse H2ARNN for ``exact`` and the replica forms otherwise."""
    variant = resolve_variant(system, variant)
    d = derivation or derive_conditional()
    if layout == "frontier":
        if variant == "exact":  # the sparse H2ARNN (docs/physics.md section 7)
            return frontier_exact_form(d, system=system)
        if variant not in ("rs", "krsb"):
            raise ArnnGenError(
                f"the frontier layout has the exact and replica variants, not {variant!r}"
            )
        return frontier_replica_form(0 if variant == "rs" else k, d, system=system)
    if variant == "exact":
        return cw_n_form(d) if system == "cw" else h2arnn_form(d, system=system)
    if variant == "inf":
        return cw_inf_form(d)
    return replica_form(0 if variant == "rs" else k, d, system=system)
