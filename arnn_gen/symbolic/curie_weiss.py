"""The Curie-Weiss reductions (docs/physics.md section 3): CW_N, exact at any N, with the
binomial recursion that tabulates it, the energy as a function of the magnetisation, and
CW_inf, the N -> infinity saddle point.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import SYMBOLS, Derivation, SpinSum, derive_conditional
from arnn_gen.symbolic.nn_functions import LogSumExp, logaddexp, to_elementary
from arnn_gen.symbolic.reduction import RSYM, Parameter, Reduction, _uniform

__all__ = [
    "cw_n_form",
    "BinomialRecursion",
    "cw_n_recursion",
    "check_cw_n_recursion",
    "MAGNETIZATION",
    "curie_weiss_energy",
    "cw_inf_form",
]


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
