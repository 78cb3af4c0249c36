"""The reduced forms' common vocabulary: the scalar symbols of the reductions (RSYM), a
parameter group (:class:`Parameter`) and a reduced conditional (:class:`Reduction`), with
the helpers the forms share. The forms themselves live in :mod:`~arnn_gen.symbolic.h2arnn`,
:mod:`~arnn_gen.symbolic.curie_weiss` and :mod:`~arnn_gen.symbolic.replica`;
:mod:`~arnn_gen.symbolic.simplify` picks one for a (system, variant).
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from arnn_gen.symbolic.derive import SYMBOLS, Derivation
from arnn_gen.symbolic.nn_functions import Equation, latex, sigmoid

__all__ = ["ReducedSymbols", "RSYM", "MAX_RSB_DEPTH", "Parameter", "Reduction"]


@dataclass(frozen=True)
class ReducedSymbols:
    """Scalar symbols of the reduced forms (shared with the IR and the emitter)."""

    J: sp.Symbol  # CW / SK coupling scale
    h: sp.Symbol  # uniform field
    M: sp.Symbol  # M_<i = sum_{s<i} x_s
    M_later: sp.Symbol  # M_>i = sum_{l>i} x_l
    n: sp.Symbol  # number of later spins, N - 1 - i
    k: sp.Symbol  # later spins at -1 (CW) / RSB depth
    c: sp.Symbol  # configuration of the later spins (H2ARNN)
    sign: sp.Symbol  # eta: +1 for rho^+, -1 for rho^-
    m: sp.Symbol  # mean-field magnetisation m_beta
    coupling: sp.Symbol  # J_{i,l} as a scalar (initial values of the replica forms)
    omega: sp.IndexedBase  # CW_inf unit per site
    a: tuple[sp.IndexedBase, ...]  # replica weights a_0, a_1, ... (index [sign, i, l])
    b: tuple[sp.IndexedBase, ...]  # replica biases b_1, b_2, ... (b[0] unused)
    residual_weight: sp.IndexedBase
    residual_bias: sp.IndexedBase
    spin_table: sp.IndexedBase  # x^c_l of the H2ARNN


_MAX_LAYERS = 16
#: The deepest replica-symmetry breaking the layer symbols allow (k + 2 layers).
MAX_RSB_DEPTH = _MAX_LAYERS - 2
RSYM = ReducedSymbols(
    J=sp.Symbol("J", real=True),
    h=sp.Symbol("h", real=True),
    M=sp.Symbol("M_{<i}", integer=True),
    M_later=sp.Symbol("M_{>i}", integer=True),
    n=sp.Symbol("n", integer=True, nonnegative=True),
    k=sp.Symbol("k", integer=True, nonnegative=True),
    c=sp.Symbol("c", integer=True, nonnegative=True),
    sign=sp.Symbol("eta", integer=True, nonzero=True),
    m=sp.Symbol("m_beta", real=True),
    coupling=sp.Symbol("J_il", real=True),
    omega=sp.IndexedBase("omega"),
    a=tuple(sp.IndexedBase(sp.Symbol(f"a^{{({r})}}")) for r in range(_MAX_LAYERS)),
    b=tuple(sp.IndexedBase(sp.Symbol(f"b^{{({r})}}")) for r in range(_MAX_LAYERS)),
    residual_weight=sp.IndexedBase(sp.Symbol("w^{res}")),
    residual_bias=sp.IndexedBase(sp.Symbol("b^{res}")),
    spin_table=sp.IndexedBase("xi"),
)


@dataclass(frozen=True)
class Parameter:
    """One parameter group of a reduced architecture.

    role: "fixed" (analytic in beta and the couplings, never trained), "trainable".
    indices: names of its indices, e.g. ("sign", "i", "l"), ("i", "k"), ("i",).
    initial: its (initial) value as a SymPy expression in beta, the index symbols
    (RSYM.sign for the sign, SYMBOLS.i / SYMBOLS.l / RSYM.k), RSYM.coupling for J_{i,l}
    and the system's scalars.
    """

    name: str
    symbol: sp.Basic
    indices: tuple[str, ...]
    role: str
    initial: sp.Expr
    description: str


@dataclass(frozen=True)
class Reduction:
    """A reduced conditional: logit = residual + log rho^+ - log rho^-, with parameters."""

    system: str
    variant: str
    k: int | None
    derivation: Derivation
    log_rho: sp.Expr  # log rho_i^{sign} in terms of RSYM.sign (sign = +1 / -1)
    logit: sp.Expr
    parameters: tuple[Parameter, ...]
    definitions: tuple[tuple[sp.Expr, sp.Expr], ...]  # (symbol, expression) to display
    display_logit: sp.Expr | None = None  # compact logit for display (default: logit)
    constants: tuple[tuple[sp.Symbol, sp.Expr], ...] = ()  # named numbers of the form
    energy: sp.Expr | None = None  # H(x) where the form knows it in closed form (CW: of M)
    #: "dense": terms over every later site l > i; "frontier": over the frontier F^+_i of a
    #: sparse system only (docs/physics.md section 7).
    layout: str = "dense"
    extra_equations: tuple[Equation, ...] = ()  # displayed after the definitions

    def __post_init__(self) -> None:
        if self.layout not in ("dense", "frontier"):
            raise ValueError(f"layout must be 'dense' or 'frontier', got {self.layout!r}")

    def sympy(self) -> sp.Expr:
        """P(x_i = +1 | x_<i) in the reduced form."""
        return sigmoid(self.logit)

    def log_rho_of(self, sign: int) -> sp.Expr:
        return self.log_rho.subs(RSYM.sign, sign)

    def equations(self, N: int | None = None) -> tuple[Equation, ...]:
        """The reduced conditional and its definitions (N substituted if given)."""
        i = SYMBOLS.i
        size = {SYMBOLS.N: N} if N is not None else {}
        shown = sigmoid(self.logit if self.display_logit is None else self.display_logit)
        lines = [
            Equation.of(
                r"P(x_{%s} = +1 \mid x_{<%s})" % (latex(i), latex(i)),
                shown.subs(size),
                lhs_text=f"P(x_{i} = +1 | x_<{i})",
            )
        ]
        lines += [
            Equation.of(lhs, sp.sympify(rhs).subs(size), lhs_text=_plain(lhs))
            for lhs, rhs in self.definitions
        ]
        if any(sp.sympify(rhs).has(RSYM.sign) for _, rhs in self.definitions):
            lines.append(
                Equation(
                    r"\eta",
                    r"\pm 1 \;(+1: \rho^{+},\; -1: \rho^{-})",
                    "eta",
                    "+1 (rho+), -1 (rho-)",
                )
            )
        lines += self.extra_equations
        return tuple(lines)

    def latex_lines(self, N: int | None = None) -> tuple[str, ...]:
        return tuple(eq.latex() for eq in self.equations(N))

    def latex(self) -> str:
        return r" \\ ".join(self.latex_lines())

    def title(self) -> str:
        names = {
            "exact": "H2ARNN" if self.system != "cw" else "CW_N",
            "inf": "CW_inf",
            "rs": "SK_RS",
            "krsb": f"SK_{self.k}RSB",
        }
        return names[self.variant]


def _plain(lhs: sp.Basic) -> str:
    """Plain-text name of a displayed left-hand side (LaTeX markup stripped)."""
    text = sp.sstr(lhs)
    for markup in ("\\", "{", "}"):
        text = text.replace(markup, "")
    return text


#: log rho^+_i and log rho^-_i as symbols, for the compact displayed logits.
_LOG_RHO = sp.log(sp.Symbol("rho^+_i")) - sp.log(sp.Symbol("rho^-_i"))


def _is(base):
    return lambda e: isinstance(e, sp.Indexed) and e.base == base


def _uniform(expr: sp.Expr) -> sp.Expr:
    """Substitute the Curie-Weiss couplings J_{ab} = J / N and fields h_a = h."""
    S = SYMBOLS
    expr = expr.replace(_is(S.J), lambda e: RSYM.J / S.N)
    return sp.factor_terms(expr.replace(_is(S.h), lambda e: RSYM.h))
