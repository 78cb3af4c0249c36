"""CW_N, the exact network of the Curie-Weiss model (docs/physics.md section 3): fixed
weights and biases analytic in beta, tabulated by the template over (i, M_<i)."""

from __future__ import annotations

import sympy as sp

from arnn_gen.codegen.families.base import Family, logit_assembly, without_log_rho
from arnn_gen.codegen.families.symbols import LOG_RHO_MINUS, LOG_RHO_PLUS, RESIDUAL
from arnn_gen.codegen.ir import ParamSpec
from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.simplify import Reduction


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
    formulas = (("bias", bias), ("weight", weight), ("residual", residual), ("logit", logit))
    return parameters, (*formulas, ("energy", reduction.energy))


FAMILY = Family(
    name="cw_exact",
    template="cw_exact.py.j2",
    serves=(("cw", "exact"),),
    parts=parts,
    dtype="float64",
    embedded=True,
)
