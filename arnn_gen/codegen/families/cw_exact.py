"""CW_N, the exact network of the Curie-Weiss model (docs/physics.md section 3): fixed
weights and biases analytic in beta, tabulated by the template over (i, M_<i) with the
binomial recursion (:func:`~arnn_gen.symbolic.simplify.cw_n_recursion`)."""

from __future__ import annotations

import sympy as sp

from arnn_gen.codegen.families.base import Family, logit_assembly, without_log_rho
from arnn_gen.codegen.families.symbols import (
    HALF,
    LOG_RHO_MINUS,
    LOG_RHO_PLUS,
    LOG_Z,
    LOG_Z_DOWN,
    LOG_Z_PEAK,
    LOG_Z_UP,
    MINUS,
    PLUS,
    RESIDUAL,
    B,
    W,
)
from arnn_gen.codegen.ir import ParamSpec
from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.simplify import RSYM, Reduction, cw_n_recursion


def parts(reduction: Reduction):
    """CW_N: the fixed b^{+-}_{i,k}, w_{i,k} (in eta, n, k, beta, J, h, N) and the
    residual (in M_<i): the template tabulates the conditionals from them."""
    bias, weight = (p.initial for p in reduction.parameters)
    parameters = (
        ParamSpec(
            name="bias",
            role="fixed",
            shape=("sign", "site", "k"),
            initial=bias,
            description="b^{+-}_{i,k} of CW_N, analytic in beta",
        ),
        ParamSpec(
            name="weight",
            role="fixed",
            shape=("site", "k"),
            initial=weight,
            description="w_{i,k} of CW_N, analytic in beta",
        ),
    )
    residual = sp.expand(without_log_rho(reduction.logit))
    logit = logit_assembly(reduction, LOG_RHO_PLUS, LOG_RHO_MINUS)
    if sp.expand(logit - (residual + LOG_RHO_PLUS - LOG_RHO_MINUS)) != 0:
        raise ArnnGenError(f"unexpected CW_N logit: {logit}")
    logit = RESIDUAL + LOG_RHO_PLUS - LOG_RHO_MINUS  # the template evaluates the residual first
    # b^{+-}_{i,k} + w_{i,k} M_<i, the term of configuration k in log rho^{+-}_i
    pre_activation = B + W * RSYM.M
    if sp.expand(reduction.log_rho.function - pre_activation.xreplace({B: bias, W: weight})):
        raise ArnnGenError(f"unexpected CW_N log rho: {reduction.log_rho}")
    formulas = (
        ("bias", bias),
        ("weight", weight),
        ("pre_activation", pre_activation),
        ("residual", residual),
        ("logit", logit),
    )
    return parameters, (*formulas, *recursion_formulas(reduction), ("energy", reduction.energy))


def recursion_formulas(reduction: Reduction) -> tuple[tuple[str, sp.Expr], ...]:
    """The binomial recursion that tabulates the logits (Note [Binomial recursion] of the
    template), derived and checked by SymPy, in the template's stand-ins: half_residual
    (r(M) / 2 over the range of mu), the terms of the first later spin branch_plus and
    branch_minus, their difference recursion_logit, next_log_z = F_{n+1}, and the shift
    that keeps the largest F_n at 0 (shifted_log_z)."""
    recursion = cw_n_recursion(reduction)
    inputs = {recursion.r: 2 * HALF, recursion.log_z_up: LOG_Z_UP, recursion.log_z_down: LOG_Z_DOWN}
    branches = {recursion.branch_plus: PLUS, recursion.branch_minus: MINUS}
    formulas = (
        ("half_residual", recursion.residual.xreplace({recursion.mu: RSYM.M}) / 2),
        ("branch_plus", recursion.plus.xreplace(inputs)),
        ("branch_minus", recursion.minus.xreplace(inputs)),
        ("recursion_logit", recursion.logit.xreplace(branches)),
        ("next_log_z", recursion.next_log_z.xreplace(branches)),
        # F_n up to a constant, its largest value 0 (cw_n_recursion checks that a constant
        # shift of F_n cancels in the logit and carries over to F_{n+1})
        ("shifted_log_z", LOG_Z - LOG_Z_PEAK),
    )
    allowed = {HALF, LOG_Z_UP, LOG_Z_DOWN, PLUS, MINUS, LOG_Z, LOG_Z_PEAK}
    for name, expr in formulas[1:]:
        if not expr.free_symbols <= allowed:
            raise ArnnGenError(f"CW_N's {name} is not in the template's variables: {expr}")
    return formulas


FAMILY = Family(
    name="cw_exact",
    template="cw_exact.py.j2",
    serves=(("cw", "exact"),),
    parts=parts,
    dtype="float64",
    embedded=True,
)
