"""Stage 3: mean-field reductions of the exact conditional into compact architectures.

Input: the generic :class:`~arnn_gen.symbolic.derive.Derivation`. Output: a :class:`Reduction`, the
reduced log-partition functions log rho_i^{+-} and logit of P(x_i = +1 | x_<i), with the
parameters the architecture needs (fixed analytic ones and trainable ones with their
initial values) as SymPy expressions. docs/physics.md sections 2-4.

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

from dataclasses import dataclass

import sympy as sp

from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import (
    SYMBOLS,
    Derivation,
    SpinSum,
    derive_conditional,
    expand_sums,
)
from arnn_gen.symbolic.nn_functions import (
    Equation,
    LogSumExp,
    latex,
    logaddexp,
    logsigmoid,
    sigmoid,
    to_elementary,
)
from arnn_gen.variants import VARIANTS

__all__ = [
    "VARIANTS",
    "Parameter",
    "Reduction",
    "ReducedSymbols",
    "RSYM",
    "reduce_conditional",
    "resolve_variant",
    "cw_n_form",
    "BinomialRecursion",
    "cw_n_recursion",
    "check_cw_n_recursion",
    "cw_inf_form",
    "replica_form",
    "h2arnn_form",
    "h2arnn_bias_contracted",
    "LINEAR_REGIME_OFFSET",
    "OFFSET",
    "MAGNETIZATION",
    "curie_weiss_energy",
]


#: Bias -c of the outer k-RSB layers at initialisation: logsigmoid(z - c) = z - c + O(e^(z-c))
#: for z <= 0, so those layers start near-linear (docs/physics.md section 4) with an error of at
#: most e^-c = 2.5e-3 per later spin, and a constant -c that cancels between rho^+ and rho^-.
#: A larger c starts closer to the paramagnetic solution but multiplies the effect of every
#: optimizer step on the outer weights by c: with Adam at lr 1e-2, c = 12 made SK_2RSB diverge
#: from its start within 20 steps (relative error 0.4 at N = 12), c = 6 trains like SK_1RSB.
LINEAR_REGIME_OFFSET = 6
#: The symbol of that offset in the reduced forms (its value rides in Reduction.constants).
OFFSET = sp.Symbol("c_lin", positive=True)


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


def _binomial_collapse(spin_sum: SpinSum, n: sp.Expr) -> sp.Expr:
    """Sum over x_>i of f(M_>i) as sum_k binomial(n, k) f(n - 2k).

    The summand must depend on the later spins only through M_>i = sum_l x_l and the pair
    sum sum_{l<l'} x_l x_l' = (M_>i^2 - n) / 2 (x_l^2 = 1); k counts the spins at -1,
    reached by binomial(n, k) configurations.
    """
    S = SYMBOLS
    ((_, lo, hi),) = spin_sum.limits
    later_magnetisation = sp.Sum(S.x[S.l], (S.l, lo, hi))
    pair_sum = sp.Sum(S.x[S.l] * S.x[S.lp], (S.lp, S.l + 1, hi), (S.l, lo, hi))
    body = sp.factor_terms(sp.expand(spin_sum.function, deep=True, mul=True, log=False))
    body = body.replace(lambda e: isinstance(e, sp.Sum), lambda e: sp.factor_terms(e.expand()))
    body = body.xreplace({pair_sum: (RSYM.M_later**2 - n) / 2})
    body = body.xreplace({later_magnetisation: RSYM.M_later})
    if body.has(S.x):
        raise ArnnGenError(f"the sum over later spins does not collapse: {body}")
    return sp.Sum(sp.binomial(n, RSYM.k) * body.subs(RSYM.M_later, n - 2 * RSYM.k), (RSYM.k, 0, n))


def cw_n_form(derivation: Derivation | None = None) -> Reduction:
    """CW_N (docs/physics.md section 3): the exact conditional of the Curie-Weiss model.

    Returns log rho^{sign} = logsumexp_k (b^{sign}_{i,k} + w_{i,k} M_<i) with
    b^{+-}_{i,k} = log binomial(n, k) + (beta J / 2N)((n - 2k)^2 - n) + (n - 2k)(beta h +- beta J/N)
    and w_{i,k} = (beta J / N)(n - 2k), all found by SymPy from the derivation. (docs/physics.md
    drops the constant -beta J n / 2N, common to b^+ and b^-; it is kept here so that
    rho^{+-} are the true partition functions of the later spins.)
    """
    S, R = SYMBOLS, RSYM
    d = derivation or derive_conditional()
    n = R.n  # = N - 1 - i, the number of later spins
    earlier_magnetisation = sp.Sum(S.x[S.s], (S.s, 0, S.i - 1))
    to_m = {earlier_magnetisation: R.M}
    phi = _uniform(d.cavity_field).xreplace(to_m)
    if phi.has(S.l):
        raise ArnnGenError("Curie-Weiss cavity fields should not depend on l")
    rho = SpinSum(
        sp.exp(
            S.beta * sp.Sum((phi + R.sign * _uniform(d.shift)) * S.x[S.l], (S.l, S.i + 1, S.N - 1))
            + S.beta * _uniform(d.later_later)
        ),
        (S.l, S.i + 1, S.N - 1),
    )
    collapsed = _binomial_collapse(rho, n)
    exponent = sp.expand_log(sp.log(sp.powsimp(collapsed.function)), force=True)
    weight = sp.factor(sp.diff(exponent, R.M))
    bias = exponent.subs(R.M, 0)
    if sp.expand(bias + weight * R.M - exponent) != 0:
        raise ArnnGenError("CW_N exponent is not affine in M_<i")
    b = sp.IndexedBase("b")
    w = sp.IndexedBase("w")
    log_rho = LogSumExp(bias + weight * R.M, (R.k, 0, n))
    phi_site = _uniform(d.phi_site).xreplace(to_m)
    residual = 2 * S.beta * phi_site
    logit = residual + log_rho.subs(R.sign, 1) - log_rho.subs(R.sign, -1)
    parameters = (
        Parameter("bias", b, ("sign", "i", "k"), "fixed", bias, "b^{+-}_{i,k}"),
        Parameter("weight", w, ("i", "k"), "fixed", weight, "w_{i,k}"),
    )
    compact = [
        LogSumExp(b[sg, S.i, R.k] + w[S.i, R.k] * R.M, (R.k, 0, n))
        for sg in (sp.Symbol("+"), sp.Symbol("-"))
    ]
    definitions = (
        (b[R.sign, S.i, R.k], bias),
        (w[S.i, R.k], weight),
        (R.M, earlier_magnetisation),
        (R.n, S.N - 1 - S.i),
    )
    display = sp.expand(residual) + compact[0] - compact[1]
    return Reduction(
        "cw", "exact", None, d, log_rho, logit, parameters, definitions, display,
        energy=curie_weiss_energy(),
    )  # fmt: skip


@dataclass(frozen=True)
class BinomialRecursion:
    """CW_N's recursion over the number of later spins (docs/physics.md section 3).

    F_n(mu) = log sum_k binomial(n, k) exp(-beta H_later(n - 2k) + beta (J / N) mu (n - 2k)) is
    the log partition function of n later spins after a magnetisation mu, so that
    log rho^{+-}_i = F_n(M_<i +- 1) with n = N - 1 - i. Summing first over the first later
    spin x = +-1, whose log-odds after mu are the residual r(mu), gives

        plus = r(mu) / 2 + F_n(mu + 1),   minus = -r(mu) / 2 + F_n(mu - 1),
        logit = plus - minus,             F_{n+1}(mu) = logaddexp(plus, minus).

    ``plus`` and ``minus`` are written in the symbols ``r``, ``log_z_up`` and ``log_z_down``
    (r(mu), F_n(mu + 1), F_n(mu - 1)); ``logit`` and ``next_log_z`` in ``branch_plus`` and
    ``branch_minus``, the symbols of the two terms, as a template evaluates them.
    """

    mu: sp.Symbol  # the magnetisation before the n later spins
    residual: sp.Expr  # r(mu), the residual of the CW_N logit at M_<i = mu
    log_z: sp.Expr  # F_n(mu), a LogSumExp over k = 0..n
    plus: sp.Expr
    minus: sp.Expr
    logit: sp.Expr
    next_log_z: sp.Expr
    r: sp.Symbol = sp.Symbol("r(mu)", real=True)
    log_z_up: sp.Symbol = sp.Symbol("F_n(mu+1)", real=True)
    log_z_down: sp.Symbol = sp.Symbol("F_n(mu-1)", real=True)
    branch_plus: sp.Symbol = sp.Symbol("t^+", real=True)
    branch_minus: sp.Symbol = sp.Symbol("t^-", real=True)


#: mu, the magnetisation a block of later spins sees before it (M_<i, or M_<i +- 1).
_MU = sp.Symbol("mu", integer=True)


def _with_expanded_sums(expr: sp.Expr) -> sp.Expr:
    """``expr`` with the function of every LogSumExp expanded: equal sums compare equal."""
    return expr.replace(
        lambda e: isinstance(e, LogSumExp), lambda e: LogSumExp(sp.expand(e.function), *e.limits)
    )


def cw_n_recursion(
    reduction: Reduction | None = None, *, check_up_to: int = 4
) -> BinomialRecursion:
    """The binomial recursion of CW_N (Note [Binomial recursion] of templates/cw_exact.py.j2),
    derived by SymPy from the CW_N reduction and checked by :func:`check_cw_n_recursion`.

    F_n(mu) is log rho^{eta} at M_<i = mu - eta: its biases depend on the sign only through
    M_<i + eta. Its k-th exponent E_{n,k}(mu) = b + w M - log binomial(n, k) gives the two
    branches of the first later spin: with x = +1 the other n spins keep k at -1, with
    x = -1 they have k - 1, and E_{n+1,k}(mu) - E_{n,k}(mu + 1) and
    E_{n+1,k}(mu) - E_{n,k-1}(mu - 1), free of n and k, are that spin's log-weights
    +-r(mu) / 2. With Pascal's rule binomial(n + 1, k) = binomial(n, k) + binomial(n, k - 1),
    exp F_{n+1}(mu) = exp(r / 2 + F_n(mu + 1)) + exp(-r / 2 + F_n(mu - 1)) for every n.
    """
    R, n, k, mu = RSYM, RSYM.n, RSYM.k, _MU
    reduction = reduction or cw_n_form()
    if (reduction.system, reduction.variant) != ("cw", "exact"):
        raise ArnnGenError(f"the binomial recursion is CW_N's, not {reduction.title()}'s")
    shifted = _with_expanded_sums(reduction.log_rho.subs(R.M, mu - R.sign))
    if shifted.has(R.sign) or not isinstance(shifted, LogSumExp):
        raise ArnnGenError(f"log rho^eta is not a function of M_<i + eta: {shifted}")
    log_z = shifted
    residual = sp.expand(reduction.logit - reduction.log_rho_of(1) + reduction.log_rho_of(-1))
    if residual.has(LogSumExp):
        raise ArnnGenError(f"the CW_N logit is not residual + log rho^+ - log rho^-: {residual}")
    residual = residual.subs(R.M, mu)
    weight = sp.log(sp.binomial(n, k))
    exponent = sp.expand(log_z.function - weight)
    if exponent.has(sp.binomial):
        raise ArnnGenError(f"the CW_N terms are not binomial(n, k) exp(...): {log_z}")

    def exponent_at(later: sp.Expr, down: sp.Expr, at: sp.Expr) -> sp.Expr:
        return exponent.xreplace({n: later, k: down, mu: at})

    r = BinomialRecursion.r
    branches = []
    for removed, step in ((0, 1), (1, -1)):  # x = +1 keeps k spins at -1, x = -1 takes one
        gain = sp.expand(exponent_at(n + 1, k, mu) - exponent_at(n, k - removed, mu + step))
        coefficient = sp.cancel(gain / residual)
        if gain.has(n, k) or not coefficient.is_Rational:
            raise ArnnGenError(f"the first later spin's log-weight is not a multiple of r: {gain}")
        branches.append(coefficient * r)
    pascal = sp.binomial(n + 1, k) - sp.binomial(n, k) - sp.binomial(n, k - 1)
    if sp.combsimp(pascal) != 0:
        raise ArnnGenError("Pascal's rule does not hold for the binomial weights")
    half_up, half_down = branches
    plus = half_up + BinomialRecursion.log_z_up
    minus = half_down + BinomialRecursion.log_z_down
    branch_plus, branch_minus = BinomialRecursion.branch_plus, BinomialRecursion.branch_minus
    recursion = BinomialRecursion(
        mu=mu,
        residual=residual,
        log_z=log_z,
        plus=plus,
        minus=minus,
        logit=branch_plus - branch_minus,
        next_log_z=logaddexp(branch_plus, branch_minus),
    )
    check_cw_n_recursion(recursion, reduction, up_to=check_up_to)
    return recursion


def _exponential_terms(expr: sp.Expr) -> dict[sp.Expr, sp.Expr]:
    """A sum of c exp(E) as {E expanded: c}, its canonical form (c free of exp)."""
    terms: dict[sp.Expr, sp.Expr] = {}
    for term in sp.Add.make_args(sp.expand(expr)):
        coefficient, exponent = sp.S.One, sp.S.Zero
        for factor in sp.Mul.make_args(sp.powsimp(term)):
            if isinstance(factor, sp.exp):
                exponent += factor.args[0]
            else:
                coefficient *= factor
        key = sp.expand(exponent)
        terms[key] = terms.get(key, sp.S.Zero) + coefficient
    return {key: value for key, value in terms.items() if value != 0}


def check_cw_n_recursion(
    recursion: BinomialRecursion, reduction: Reduction | None = None, *, up_to: int = 4
) -> None:
    """Raise :class:`ArnnGenError` unless ``recursion`` is CW_N's, in symbolic beta, J, h, N
    and mu:

    * its logit, plus - minus at mu = M_<i, is the CW_N logit of ``reduction``
      r(M) + log rho^+ - log rho^- (every site: n = N - 1 - i symbolic);
    * iterated from F_0 = 0 (checked: the sum over k of no spin), it gives
      exp F_n(mu) = sum_k binomial(n, k) exp(...) for n = 1 .. ``up_to``, compared as sums
      of exponentials;
    * a shift of F_n by a constant c leaves the logit unchanged and shifts F_{n+1} by c, so
      the emitted module may renormalise F_n at every step.
    """
    R, n, mu, rec = RSYM, RSYM.n, recursion.mu, recursion
    reduction = reduction or cw_n_form()
    branches = {rec.branch_plus: rec.plus, rec.branch_minus: rec.minus}
    logit = rec.logit.xreplace(branches)
    network = logit.xreplace(
        {
            rec.r: rec.residual.subs(mu, R.M),
            rec.log_z_up: rec.log_z.subs(mu, R.M + 1),
            rec.log_z_down: rec.log_z.subs(mu, R.M - 1),
        }
    )
    difference = _with_expanded_sums(network) - _with_expanded_sums(reduction.logit)
    if sp.expand(difference) != 0:
        raise ArnnGenError(f"the recursion's logit {logit} is not the CW_N logit")
    partition = sp.exp(to_elementary(rec.log_z))  # sum_k binomial(n, k) exp(E_{n,k}(mu))
    if partition.subs(n, 0).doit() != 1:
        raise ArnnGenError("F_0 is not 0: the sum over no later spin is not 1")
    step = sp.exp(to_elementary(rec.next_log_z.xreplace(branches)))
    iterated = sp.S.One  # exp F_0(mu)
    for later in range(1, up_to + 1):
        iterated = step.xreplace(
            {
                rec.r: rec.residual,
                rec.log_z_up: sp.log(iterated.subs(mu, mu + 1)),
                rec.log_z_down: sp.log(iterated.subs(mu, mu - 1)),
            }
        )
        if _exponential_terms(iterated) != _exponential_terms(partition.subs(n, later).doit()):
            raise ArnnGenError(f"the recursion does not give F_{later}, the sum over k")
    c = sp.Symbol("c", real=True)
    shift = {rec.log_z_up: rec.log_z_up + c, rec.log_z_down: rec.log_z_down + c}
    next_log_z = to_elementary(rec.next_log_z.xreplace(branches))
    shifted_next = sp.exp(next_log_z.xreplace(shift)) - sp.exp(c) * sp.exp(next_log_z)
    if sp.expand(logit.xreplace(shift) - logit) != 0 or sp.expand(shifted_next) != 0:
        raise ArnnGenError("a constant shift of F_n does not cancel in the recursion's logit")


#: M = sum_i x_i, the magnetisation of a whole configuration (the Curie-Weiss energy's variable).
MAGNETIZATION = sp.Symbol("M", integer=True)


def curie_weiss_energy(check_up_to: int = 6) -> sp.Expr:
    """H(x) of the Curie-Weiss model as a function of M = sum_i x_i (docs/physics.md
    section 1): with J_ij = J/N and h_i = h, H = -(J/N) sum_{i<j} x_i x_j - h M, and the pair
    sum is (M^2 - N)/2 because x_i^2 = 1. SymPy checks that identity by expanding the pair
    sum of N = 1 ... ``check_up_to`` symbolic spins and reducing every x_i^2 to 1."""
    S, R, M = SYMBOLS, RSYM, MAGNETIZATION
    pair_sum = (M**2 - S.N) / 2
    for n in range(1, check_up_to + 1):
        x = sp.symbols(f"x0:{n}")
        pairs = sum(x[a] * x[b] for a in range(n) for b in range(a + 1, n))
        reduced = sp.expand(pair_sum.subs({M: sum(x), S.N: n}) - pairs)
        if reduced.subs({xi**2: 1 for xi in x}) != 0:
            raise ArnnGenError(f"the Curie-Weiss pair sum is not (M^2 - N)/2 at N = {n}")
    return -(R.J / S.N) * pair_sum - R.h * M


def cw_inf_form(derivation: Derivation | None = None) -> Reduction:
    """CW_inf (docs/physics.md section 3): the saddle point of CW_N as N -> infinity.

    The shifts +-J/N of the cavity field vanish with N, so to first order
    log rho^+ - log rho^- = (2J/N) d log rho / d phi = (2 beta J / N) <M_>i>; SymPy takes
    that derivative of the CW_N biases b^{+-}_{i,k} with respect to the sign. At the saddle
    point the later spins carry the spontaneous magnetisation m_beta
    (m = tanh(beta (J m + h))) along the sign of M_<i: <M_>i> = n m_beta sgn(M_<i), hence
    logit = 2 beta h + (2 beta J / N) M_<i + omega_i sgn(M_<i) with omega_i trainable,
    initially 2 beta J (n / N) m_beta.
    """
    S, R = SYMBOLS, RSYM
    exact = cw_n_form(derivation)
    # log rho^eta = logsumexp_k b^eta_k(...): the sign eta enters b linearly, so to first
    # order log rho^+ - log rho^- = 2 <d b / d eta>, the average over the k-terms' weights.
    slope = sp.diff(exact.parameters[0].initial, R.sign)  # beta J (n - 2k) / N
    # n - 2k is the later magnetisation of the k-th term: its average is <M_>i>.
    mean_later = sp.Symbol(r"\langle M_{>i} \rangle")
    first_order = sp.simplify(2 * slope.subs(R.k, (R.n - mean_later) / 2))
    if first_order.has(R.k, R.n) or not first_order.has(mean_later):
        raise ArnnGenError(f"unexpected first-order CW term: {first_order}")
    omega_value = first_order.subs(mean_later, R.n * R.m)
    phi_site = _uniform(exact.derivation.phi_site).xreplace(
        {sp.Sum(S.x[S.s], (S.s, 0, S.i - 1)): R.M}
    )
    logit = 2 * S.beta * phi_site + R.omega[S.i] * sp.sign(R.M)
    parameters = (Parameter("omega", R.omega, ("i",), "trainable", omega_value, "omega_i"),)
    definitions = (
        (R.omega[S.i], omega_value),
        (R.m, sp.tanh(S.beta * (R.J * R.m + R.h))),
        (R.n, S.N - 1 - S.i),
    )
    log_rho = R.sign * R.omega[S.i] * sp.sign(R.M) / 2
    return Reduction(
        "cw", "inf", None, exact.derivation, log_rho, sp.expand(logit), parameters, definitions,
        energy=exact.energy,
    )  # fmt: skip


def replica_form(k: int, derivation: Derivation | None = None, *, system: str = "sk") -> Reduction:
    """SK_RS (k = 0) and SK_kRSB (docs/physics.md section 4) for any dense couplings.

    log rho^{+-}_i = sum_{l>i} a0 logsigmoid(b1 + a1 logsigmoid(b2 + ... logsigmoid(
    b_{k+1} + a_{k+1} phi_{i,l}))), every a, b indexed [sign, i, l] and trainable; the first
    layer (phi from J, h) is fixed and shared; the residual is w_i phi_{i,i} + b_i.

    Initial values (paramagnetic, q = 0): the later spins taken as non-interacting give
    log rho^{+-} = sum_l log 2cosh(beta (phi_{i,l} +- J_{i,l})) and
    log 2cosh(u) = u - logsigmoid(2u), so a0 = -1, a_{k+1} = 2 beta, b_{k+1} = +-2 beta J_{i,l},
    residual weight 2 beta and bias 2 beta sum_{l>i} J_{i,l}; outer layers start near-linear
    (a = 1, b = -LINEAR_REGIME_OFFSET). Exact at J_{l,l'} = 0 for k = 0.
    """
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ArnnGenError(f"the RSB depth k must be an integer >= 0, got {k!r}")
    if k + 2 > _MAX_LAYERS:
        raise ArnnGenError(f"the RSB depth k must be at most {_MAX_LAYERS - 2}, got {k}")
    S, R = SYMBOLS, RSYM
    d = derivation or derive_conditional()
    i, l, sign = S.i, S.l, R.sign
    inner = S.phi[i, l]
    for r in range(k + 1, 0, -1):
        inner = logsigmoid(R.b[r][sign, i, l] + R.a[r][sign, i, l] * inner)
    log_rho = sp.Sum(R.a[0][sign, i, l] * inner, (l, i + 1, S.N - 1))
    residual = R.residual_weight[i] * S.phi[i, i] + R.residual_bias[i]
    logit = residual + log_rho.subs(sign, 1) - log_rho.subs(sign, -1)

    def layer(r: int, weight, bias) -> tuple[Parameter, ...]:
        group = (
            Parameter(
                f"a{r}", R.a[r], ("sign", "i", "l"), "trainable", weight, f"weight of layer {r}"
            ),
        )
        if bias is None:
            return group
        return group + (
            Parameter(f"b{r}", R.b[r], ("sign", "i", "l"), "trainable", bias, f"bias of layer {r}"),
        )

    parameters = layer(0, sp.Integer(-1), None)
    for r in range(1, k + 1):
        parameters += layer(r, sp.Integer(1), -OFFSET)
    parameters += layer(k + 1, 2 * S.beta, 2 * S.beta * sign * R.coupling)
    parameters += (
        Parameter(
            "residual_weight",
            R.residual_weight,
            ("i",),
            "trainable",
            2 * S.beta,
            "weight of the residual phi_{i,i}",
        ),
        Parameter(
            "residual_bias",
            R.residual_bias,
            ("i",),
            "trainable",
            2 * S.beta * sp.Sum(S.J[i, l], (l, i + 1, S.N - 1)),
            "bias of the residual",
        ),
    )
    definitions = (
        (sp.Symbol(r"\log \rho^{\eta}_{i}"), log_rho),
        (S.phi[i, l], d.cavity_field),
    )
    variant = "rs" if k == 0 else "krsb"
    display = residual + _LOG_RHO
    constants = ((OFFSET, sp.Integer(LINEAR_REGIME_OFFSET)),) if k > 0 else ()
    return Reduction(
        system, variant, k, d, log_rho, logit, parameters, definitions, display, constants
    )


def h2arnn_form(derivation: Derivation | None = None, *, system: str = "general") -> Reduction:
    """H2ARNN (docs/physics.md section 2): log rho^{+-} as a logsumexp over the configurations c
    of x_>i, with w_{c,l} = beta xi^c_l and
    b^{+-}_c = beta sum_{l>i} (+-J_{i,l}) xi^c_l + beta sum_{i<l<l'} J_{l,l'} xi^c_l xi^c_l'.
    Every parameter is analytic in beta and the couplings (role "fixed")."""
    S, R = SYMBOLS, RSYM
    d = derivation or derive_conditional()
    i, l, c, xi = S.i, S.l, R.c, R.spin_table
    on_config = {S.x[l]: xi[c, l], S.x[S.lp]: xi[c, S.lp]}
    later_later = d.later_later.xreplace(on_config)
    bias = S.beta * sp.Sum(R.sign * d.shift * xi[c, l], (l, i + 1, S.N - 1)) + S.beta * later_later
    weight = S.beta * xi[c, l]
    w = sp.IndexedBase("w")
    b = sp.IndexedBase("b")
    configurations = 2 ** (S.N - 1 - i) - 1
    log_rho = LogSumExp(
        bias + sp.Sum(weight * S.phi[i, l], (l, i + 1, S.N - 1)), (c, 0, configurations)
    )
    logit = 2 * S.beta * S.phi[i, i] + log_rho.subs(R.sign, 1) - log_rho.subs(R.sign, -1)
    parameters = (
        Parameter("bias", b, ("sign", "i", "c"), "fixed", bias, "b^{+-}_{i,c}"),
        Parameter("weight", w, ("i", "c", "l"), "fixed", weight, "w_{i,c,l}"),
    )
    compact = LogSumExp(
        b[R.sign, i, c] + sp.Sum(w[c, l] * S.phi[i, l], (l, i + 1, S.N - 1)), (c, 0, configurations)
    )
    definitions = (
        (sp.Symbol(r"\log \rho^{\eta}_{i}"), compact),
        (b[R.sign, i, c], bias),
        (w[c, l], weight),
        (S.phi[i, l], d.cavity_field),
    )
    display = 2 * S.beta * S.phi[i, i] + _LOG_RHO
    return Reduction(system, "exact", None, d, log_rho, logit, parameters, definitions, display)


def h2arnn_bias_contracted(
    reduction: Reduction, to_site: sp.Symbol, later_pairs: sp.Symbol, *, check_up_to: int = 5
) -> sp.Expr:
    """H2ARNN's bias b^{+-}_c = eta t_c + p_c / 2 in two contractions of its weight w_{c,l}
    with the couplings: t_c = sum_{l>i} w_{c,l} J_{l,i} (``to_site``) and
    p_c = sum_{l,l'>i} w_{c,l} J_{l,l'} xi^c_{l'} (``later_pairs``; J symmetric with a zero
    diagonal, so each pair l < l' counts twice), which one matrix product w J gives for
    every configuration. Checked against the bias of ``reduction`` (``h2arnn_form``) by
    expansion for N = 1..check_up_to (:class:`ArnnGenError` if it differs)."""
    S, R = SYMBOLS, RSYM
    i, l, lp, c, xi = S.i, S.l, S.lp, R.c, R.spin_table
    bias, weight = (p.initial for p in reduction.parameters)
    form = R.sign * to_site + later_pairs / 2
    weight_at = sp.Lambda(l, weight)
    t = sp.Sum(weight_at(l) * S.J[l, i], (l, i + 1, S.N - 1))
    p = sp.Sum(weight_at(l) * S.J[l, lp] * xi[c, lp], (lp, i + 1, S.N - 1), (l, i + 1, S.N - 1))

    def symmetric(expr: sp.Expr) -> sp.Expr:  # J[a, b] as J[min, max], J[a, a] = 0
        def entry(e: sp.Indexed) -> sp.Expr:
            a, b = e.indices
            return sp.S.Zero if a == b else S.J[min(a, b), max(a, b)]

        return expr.replace(lambda e: isinstance(e, sp.Indexed) and e.base == S.J, entry)

    for N in range(1, check_up_to + 1):
        for site in range(N):
            values = {S.N: N, i: site}
            contracted = form.xreplace({to_site: t, later_pairs: p}).subs(values)
            difference = expand_sums(bias.subs(values)) - expand_sums(contracted)
            if sp.expand(symmetric(difference)) != 0:
                raise ArnnGenError(f"H2ARNN's bias is not eta t + p / 2 at N = {N}, i = {site}")
    return form


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
    system: str, variant: str | None = None, *, k: int = 1, derivation: Derivation | None = None
) -> Reduction:
    """The reduced form of ``variant`` for ``system`` (DESIGN.md's table; None: default)."""
    variant = resolve_variant(system, variant)
    d = derivation or derive_conditional()
    if variant == "exact":
        return cw_n_form(d) if system == "cw" else h2arnn_form(d, system=system)
    if variant == "inf":
        return cw_inf_form(d)
    return replica_form(0 if variant == "rs" else k, d, system=system)
