"""The exact network of a sparse system (sparse H2ARNN, docs/physics.md sections 2 and 7):
H2ARNN's logsumexp over the 2^|F_i| configurations of the frontier of each site, its biases
tabulated by one backward frontier elimination (Note [Backward elimination] in
arnn_gen/symbolic/frontier_exact.py) that the module runs itself whenever beta is set."""

from __future__ import annotations

import sympy as sp

from arnn_gen.codegen.families.base import (
    Family,
    first_layer_formulas,
    is_indexed,
    logit_assembly,
)
from arnn_gen.codegen.families.frontier_replica import SPARSE_SYSTEMS
from arnn_gen.codegen.families.symbols import (
    LOG_RHO_MINUS,
    LOG_RHO_PLUS,
    PHI,
    PHI_LATER,
    TO_SITE,
    XI,
)
from arnn_gen.codegen.ir import ParamSpec
from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import SYMBOLS
from arnn_gen.symbolic.frontier_exact import frontier_elimination
from arnn_gen.symbolic.simplify import RSYM, Reduction

#: Stand-ins of the elimination's tensors (printed by name, they are the template's locals):
#: T_{i+1} over the configurations y of S_{i+1}, the fields of the spins leaving the frontier
#: (sum_{l in D_i} w_{y,l} h_l), and b^+_i, b^-_i of a site summed out.
TABLE, JOINED = sp.symbols("table joined")
BIAS_PLUS, BIAS_MINUS = sp.symbols("bias_plus bias_minus")


def parts(reduction: Reduction):
    """The sparse H2ARNN: b^{+-}_{i,c} and w_{c,l} = beta c_l (fixed); the weight printed on
    the configuration table xi, the elimination's step (T_{i+1} + joined + eta to_site, the
    contractions of w with the fields and couplings made by the template) and its close
    (logaddexp of b^{+-} + beta x_i phi_{i,i}), the logit, the site energy, and the cavity
    field's increment J_{i,l} x_i that sampling adds at the neighbours of the drawn site."""
    if reduction.layout != "frontier" or reduction.variant != "exact":
        raise ArnnGenError("the frontier exact family needs the exact reduction over the frontier")
    bias, weight = (p.initial for p in reduction.parameters)
    parameters = (
        ParamSpec(
            name="bias",
            role="fixed",
            shape=("sign", "config"),
            initial=bias,
            description="b^{+-}_{i,c}, log partition function of the later spins off F_i",
        ),
        ParamSpec(
            name="weight",
            role="fixed",
            shape=("config", "frontier"),
            initial=weight,
            description="w_{c,l} = beta c_l, l in F_i",
        ),
    )
    step, close = frontier_elimination(
        reduction,
        table=TABLE,
        joined=JOINED,
        to_site=TO_SITE,
        bias_plus=BIAS_PLUS,
        bias_minus=BIAS_MINUS,
        phi_site=PHI,
    )
    logit = logit_assembly(reduction, LOG_RHO_PLUS, LOG_RHO_MINUS)
    logit = logit.xreplace({SYMBOLS.phi[SYMBOLS.i, SYMBOLS.i]: PHI})
    if logit.has(sp.Sum) or sp.expand(logit - (2 * SYMBOLS.beta * PHI + LOG_RHO_PLUS
                                               - LOG_RHO_MINUS)) != 0:  # fmt: skip
        raise ArnnGenError(f"unexpected logit of the sparse H2ARNN: {logit}")
    layer = dict(first_layer_formulas(reduction))
    increment = layer["cavity_update"] - PHI_LATER
    if increment.has(PHI_LATER):
        raise ArnnGenError(f"unexpected cavity update: {layer['cavity_update']}")
    formulas = (
        ("weight", weight.replace(is_indexed(RSYM.spin_table), lambda e: XI)),
        ("elimination", step),
        ("close", close),
        ("logit", logit),
        ("site_energy", layer["site_energy"]),
        ("cavity_increment", increment),
    )
    return parameters, formulas


FAMILY = Family(
    name="frontier_exact",
    template="frontier_exact.py.j2",
    serves=tuple((system, "exact") for system in SPARSE_SYSTEMS),
    parts=parts,
    dtype="float64",
    embedded=False,
    layout="frontier",
)
