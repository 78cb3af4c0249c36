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
from arnn_gen.symbolic.derive import SYMBOLS, Derivation, SpinSum, derive_conditional
from arnn_gen.symbolic.nn_functions import Equation, LogSumExp, latex, logsigmoid, sigmoid
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
    "cw_inf_form",
    "replica_form",
    "h2arnn_form",
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
