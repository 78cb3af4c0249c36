"""What an architecture family is: its template, the (system, variant) pairs it serves, how
it reads its parameters and formulas off a reduction, its default dtype, and its print
options. One module per family in this package; :mod:`arnn_gen.codegen.families` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

from arnn_gen.codegen.families.symbols import PHI, PHI_LATER, SPIN
from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import SYMBOLS, cavity_increment, site_energy
from arnn_gen.symbolic.nn_functions import LogSumExp, logsigmoid, sigmoid, to_elementary
from arnn_gen.symbolic.simplify import RSYM

__all__ = ["Family", "is_indexed", "without_log_rho", "logit_assembly", "log_conditional",
           "first_layer_formulas"]  # fmt: skip


@dataclass(frozen=True)
class Family:
    """One architecture family.

    ``serves``: (system, variant) pairs, system None for every system; ``parts(reduction)``
    returns (parameter specs, named formulas); ``embedded``: the module embeds its system's
    numbers (no sidecar); ``fused_multiply_add``: formulas printed with torch.addcmul;
    ``in_place``: (printed name, formula, symbols it may overwrite) of the in-place forms; a
    printed name equal to the formula's replaces its plain form (a formula used in place
    only); ``layout``: the reductions it serves, over every later site ("dense") or over
    the frontier of a sparse system ("frontier", docs/physics.md section 7); ``instances``:
    it holds a stack of disorder instances (arnn_gen.systems.instances); ``backends``:
    the kernels it can emit (``emit --backend``).
    """

    name: str
    template: str
    serves: tuple[tuple[str | None, str], ...]
    parts: Callable
    dtype: str
    embedded: bool
    fused_multiply_add: tuple[str, ...] = ()
    in_place: tuple[tuple[str, str, tuple[sp.Symbol, ...]], ...] = ()
    layout: str = "dense"  # the Reduction.layout it serves: "dense" or "frontier"
    instances: bool = False  # a module of several instances with a leading instance axis
    #: The kernel backends its template can emit: "torch" always; "triton" where the
    #: template has Triton kernels (arnn_gen.codegen.triton_printing).
    backends: tuple[str, ...] = ("torch",)


def is_indexed(*bases):
    """A predicate: an element of one of the IndexedBase ``bases``."""
    return lambda e: isinstance(e, sp.Indexed) and e.base in bases


def without_log_rho(logit: sp.Expr) -> sp.Expr:
    """The residual part of a logit: every LogSumExp / Sum over later sites removed."""
    return logit.replace(lambda e: isinstance(e, (sp.Sum, LogSumExp)), lambda e: sp.S.Zero)


def logit_assembly(reduction, log_rho_plus: sp.Symbol, log_rho_minus: sp.Symbol) -> sp.Expr:
    """The reduced logit with log rho^+ and log rho^- as the stand-ins given: what a template
    adds up once it has computed the two (residual + log rho^+ - log rho^-)."""
    sign = RSYM.sign
    return reduction.logit.xreplace(
        {reduction.log_rho.subs(sign, 1): log_rho_plus,
         reduction.log_rho.subs(sign, -1): log_rho_minus}
    )  # fmt: skip


def log_conditional(spin: sp.Symbol, logit: sp.Symbol) -> sp.Expr:
    """log P(x_i | x_<i) of a spin x_i = +-1 whose P(x_i = +1 | x_<i) is sigmoid(logit):
    logsigmoid(x_i logit), one stable function for both values of the spin. SymPy checks it
    against log sigmoid(logit) at x_i = +1 and log(1 - sigmoid(logit)) at x_i = -1."""
    form = logsigmoid(spin * logit)
    for value, probability in ((1, sigmoid(logit)), (-1, 1 - sigmoid(logit))):
        # compared as probabilities, exp(form) against P, in elementary functions
        difference = sp.exp(to_elementary(form.subs(spin, value))) - to_elementary(probability)
        if sp.simplify(difference) != 0:
            raise ArnnGenError(f"{form} is not log P(x_i = {value}) at x_i = {value}")
    return form


def first_layer_formulas(reduction) -> tuple[tuple[str, sp.Expr], ...]:
    """The formulas of the dense families' first layer, the cavity fields (docs/physics.md
    section 2), from the derivation: ``site_energy`` -x_i phi_{i,i}, whose sum over the
    sites is H(x), and ``cavity_update`` phi_{i,l} + J_{i,l} x_i, the later fields once x_i
    is drawn (in x_i, phi_site, phi_later and coupling)."""
    S = SYMBOLS
    derivation = reduction.derivation
    energy = site_energy(derivation).xreplace({S.x[S.i]: SPIN, S.phi[S.i, S.i]: PHI})
    increment = cavity_increment(derivation).xreplace({S.x[S.i]: SPIN})
    increment = increment.replace(is_indexed(S.J), lambda e: RSYM.coupling)
    return (("site_energy", energy), ("cavity_update", PHI_LATER + increment))
