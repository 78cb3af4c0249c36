"""CW_inf, the N -> infinity saddle point of CW_N (docs/physics.md section 3): one trainable
omega_i per site."""

from __future__ import annotations

import sympy as sp

from arnn_gen.codegen.families.base import Family, is_indexed, without_log_rho  # noqa: F401
from arnn_gen.codegen.families.symbols import OMEGA
from arnn_gen.codegen.ir import ParamSpec
from arnn_gen.symbolic.simplify import RSYM, Reduction


def parts(reduction: Reduction):
    """CW_inf: omega_i's initial value, the logit, and the mean-field equation whose root
    m_beta enters omega_i."""
    (omega,) = reduction.parameters
    R = RSYM
    parameters = (
        ParamSpec(
            name="omega",
            role="trainable",
            shape=("site",),
            initial=omega.initial,
            description="omega_i, initially 2 beta J (n/N) m_beta",
        ),
    )
    # The whole logit, omega_i as a plain symbol: the template binds it to omega [N] (forward)
    # or to a column of it (the table of sample), broadcast against M_<i.
    logit = sp.expand(reduction.logit.replace(is_indexed(R.omega), lambda e: OMEGA))
    equation = dict((sp.sstr(lhs), rhs) for lhs, rhs in reduction.definitions)["m_beta"]
    formulas = (
        ("omega", omega.initial),
        ("logit", logit),
        ("magnetization_equation", R.m - equation),
        ("energy", reduction.energy),
    )
    return parameters, formulas


FAMILY = Family(
    name="cw_inf",
    template="cw_inf.py.j2",
    serves=(("cw", "inf"),),
    parts=parts,
    dtype="float32",
    embedded=True,
)
