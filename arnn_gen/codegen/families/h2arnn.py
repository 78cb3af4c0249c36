"""H2ARNN, the exact network of any pairwise system (docs/physics.md section 2): a table of
the 2^(N-1-i) configurations of the later spins of each site."""

from __future__ import annotations

from arnn_gen.codegen.families.base import (
    Family,
    first_layer_formulas,
    is_indexed,
    logit_assembly,
)
from arnn_gen.codegen.families.symbols import (
    LATER_PAIRS,
    LOG_RHO_MINUS,
    LOG_RHO_PLUS,
    PHI,
    PHI_LATER,
    TO_SITE,
    XI,
)
from arnn_gen.codegen.ir import ParamSpec
from arnn_gen.symbolic.derive import SYMBOLS
from arnn_gen.symbolic.simplify import RSYM, Reduction, h2arnn_bias_contracted


def parts(reduction: Reduction):
    """H2ARNN: b^{+-}_{i,c} and w_{c,l} = beta xi^c_l (fixed), printed from their formulas:
    b in the two contractions of w with the couplings that the template computes
    (``h2arnn_bias_contracted``), w in the configuration table xi."""
    R = RSYM
    bias, weight = (p.initial for p in reduction.parameters)
    parameters = (
        ParamSpec(
            name="bias",
            role="fixed",
            shape=("sign", "config"),
            initial=bias,
            description="b^{+-}_{i,c} of H2ARNN",
        ),
        ParamSpec(
            name="weight",
            role="fixed",
            shape=("config", "later"),
            initial=weight,
            description="w_{c,l} = beta xi^c_l",
        ),
    )
    logit = logit_assembly(reduction, LOG_RHO_PLUS, LOG_RHO_MINUS)
    logit = logit.xreplace({SYMBOLS.phi[SYMBOLS.i, SYMBOLS.i]: PHI})
    formulas = (
        ("weight", weight.replace(is_indexed(R.spin_table), lambda e: XI)),
        ("bias", h2arnn_bias_contracted(reduction, TO_SITE, LATER_PAIRS)),
        ("logit", logit),
        *first_layer_formulas(reduction),
    )
    return parameters, formulas


FAMILY = Family(
    name="h2arnn",
    template="h2arnn.py.j2",
    serves=((None, "exact"),),
    parts=parts,
    dtype="float64",
    embedded=False,
    in_place=(("cavity_update", "cavity_update", (PHI_LATER,)),),
)
