"""Stage 3: the mean-field reductions against the exact derivation and brute force."""

from __future__ import annotations

import dataclasses
import io
import itertools
import math

import matplotlib
import numpy as np
import pytest
import sympy as sp

from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import SYMBOLS, derive_conditional, expand_sums
from arnn_gen.symbolic.nn_functions import LogSumExp, logaddexp, logsigmoid, to_elementary
from arnn_gen.symbolic.simplify import (
    RSYM,
    VARIANTS,
    check_cw_n_recursion,
    cw_n_recursion,
    outer_layer_offset,
    reduce_conditional,
    replica_form,
)

matplotlib.use("Agg")
from matplotlib.mathtext import math_to_image  # noqa: E402

S, R = SYMBOLS, RSYM
LGAMMA = sp.Function("lgamma")  # unevaluated log Gamma, for lambdify at large n


@pytest.fixture(scope="module")
def generic():
    return derive_conditional()


def log_rho_explicit(J, h, beta, prefix, sign) -> float:
    """log rho_i^{sign}: sum over the later spins, straight from docs/physics.md section 2."""
    N, i = len(h), len(prefix)
    x_earlier = np.array(prefix, dtype=float)
    phi = h[i + 1 :] + x_earlier @ J[:i, i + 1 :]
    shift = sign * J[i, i + 1 :]
    block = J[i + 1 :, i + 1 :]
    exponents = []
    for rest in itertools.product((1, -1), repeat=N - 1 - i):
        y = np.array(rest, dtype=float)
        exponents.append(beta * (phi + shift) @ y + beta * 0.5 * y @ block @ y)
    return float(np.logaddexp.reduce(exponents)) if exponents else 0.0


def cw_numbers(N, coupling, field):
    J = np.full((N, N), coupling / N)
    np.fill_diagonal(J, 0.0)
    return J, np.full(N, field)


def lambdified_cw_log_rho(reduction, N, site, beta, coupling, field):
    """The CW_N log rho^{+-} of the reduction as a numeric function of M_<i."""
    values = {S.N: N, S.i: site, R.n: N - 1 - site, S.beta: beta, R.J: coupling, R.h: field}
    functions = {}
    for sign in (1, -1):
        expr = reduction.log_rho_of(sign).subs(values).doit()
        functions[sign] = sp.lambdify(R.M, to_elementary(expr), modules="numpy")
    return functions


@pytest.mark.parametrize("N", [2, 5, 8])
def test_binomial_collapse_equals_explicit_sum(generic, N):
    """CW_N's binomial sum over k equals the sum over all 2^(N-1-i) later configurations."""
    reduction = reduce_conditional("cw", "exact", derivation=generic)
    for beta, coupling, field in [(0.7, 1.0, 0.0), (1.6, 1.3, 0.4)]:
        J, h = cw_numbers(N, coupling, field)
        for site in range(N):
            log_rho = lambdified_cw_log_rho(reduction, N, site, beta, coupling, field)
            for prefix in itertools.product((1, -1), repeat=site):
                M = sum(prefix)
                for sign in (1, -1):
                    expected = log_rho_explicit(J, h, beta, prefix, sign)
                    assert abs(float(log_rho[sign](M)) - expected) < 1e-12


def test_cw_exact_conditional_equals_brute_force(generic):
    N, beta, coupling, field = 10, 1.2, 1.0, 0.3
    reduction = reduce_conditional("cw", "exact", derivation=generic)
    J, h = cw_numbers(N, coupling, field)
    rng = np.random.default_rng(0)
    for site in range(N):
        values = {S.N: N, S.i: site, R.n: N - 1 - site, S.beta: beta, R.J: coupling, R.h: field}
        logit = sp.lambdify(R.M, to_elementary(reduction.logit.subs(values).doit()), "numpy")
        for _ in range(4):
            prefix = rng.choice([-1, 1], size=site)
            expected = log_rho_explicit(J, h, beta, prefix, 1) - log_rho_explicit(
                J, h, beta, prefix, -1
            )
            expected += 2 * beta * (h[site] + prefix @ J[:site, site])
            assert abs(float(logit(int(prefix.sum()))) - expected) < 1e-11


def test_cw_parameters_match_physics_md(generic):
    """b^{+-}_{i,k} and w_{i,k} of docs/physics.md section 3 (plus the common constant)."""
    reduction = reduce_conditional("cw", "exact", derivation=generic)
    bias, weight = (p.initial for p in reduction.parameters)
    beta, J, h, n, k, N, sign = S.beta, R.J, R.h, R.n, R.k, S.N, R.sign
    expected_bias = (
        sp.log(sp.binomial(n, k))
        + beta * J / (2 * N) * ((n - 2 * k) ** 2 - n)
        + (n - 2 * k) * (beta * h + sign * beta * J / N)
    )
    assert sp.simplify(bias - expected_bias) == 0
    assert sp.simplify(weight - beta * J / N * (n - 2 * k)) == 0
    assert [p.role for p in reduction.parameters] == ["fixed", "fixed"]


def test_cw_inf_saddle_matches_cw_exact_at_large_n(generic):
    """omega_i sgn(M) approximates CW_N's log rho^+ - log rho^- in the ordered phase."""
    from arnn_gen.exact import solve_magnetization

    N, beta, coupling = 4000, 1.5, 1.0
    exact = reduce_conditional("cw", "exact", derivation=generic)
    saddle = reduce_conditional("cw", "inf", derivation=generic)
    m = solve_magnetization(beta, coupling, 0.0)
    assert m > 0.8
    bias, weight = (p.initial for p in exact.parameters)
    bias = bias.replace(
        lambda e: isinstance(e, sp.log) and isinstance(e.args[0], sp.binomial),
        lambda e: (
            LGAMMA(e.args[0].args[0] + 1)
            - LGAMMA(e.args[0].args[1] + 1)
            - LGAMMA(e.args[0].args[0] - e.args[0].args[1] + 1)
        ),
    )
    (omega,) = (p.initial for p in saddle.parameters)
    lgamma = np.vectorize(math.lgamma)
    for site in (N // 4, N // 2):
        n = N - 1 - site
        ks = np.arange(n + 1)
        values = {S.N: N, S.beta: beta, R.J: coupling, R.h: 0.0, R.n: n}
        b = {}
        for sign in (1, -1):
            expr = bias.subs(values).subs(R.sign, sign)
            b[sign] = sp.lambdify(R.k, expr, modules=[{"lgamma": lgamma}, "numpy"])(ks)
        w = sp.lambdify(R.k, weight.subs(values), "numpy")(ks)
        M = int(round(m * site))  # a typical magnetised prefix
        difference = np.logaddexp.reduce(b[1] + w * M) - np.logaddexp.reduce(b[-1] + w * M)
        predicted = float(omega.subs(values).subs({S.i: site, R.m: m}))
        assert difference == pytest.approx(predicted, rel=0.02)


def test_replica_paramagnetic_start_is_exact_without_later_couplings(generic):
    """With J_{l,l'} = 0 among later spins (a star around site 0), RS at its initial
    values gives the exact conditional (docs/physics.md section 4)."""
    N, beta = 6, 1.3
    rng = np.random.default_rng(3)
    J = np.zeros((N, N))
    J[0, 1:] = rng.normal(size=N - 1)
    J = J + J.T
    h = rng.normal(size=N)
    for k in (0, 1, 2):
        reduction = replica_form(k, generic)
        initial = {p.name: p.initial for p in reduction.parameters}
        for site in range(N):
            for prefix in itertools.product((1, -1), repeat=site):
                x = np.array(prefix, dtype=float)
                phi = h + x @ J[:site, :]  # [N] cavity fields phi_{i,l}
                logit = float(
                    initial["residual_weight"].subs(S.beta, beta) * phi[site]
                    + 2 * beta * J[site, site + 1 :].sum()
                )
                for sign in (1, -1):
                    total = 0.0
                    for l in range(site + 1, N):
                        at = {
                            S.beta: beta,
                            R.sign: sign,
                            R.coupling: J[site, l],
                            **dict(reduction.constants),
                        }
                        value = phi[l]
                        for r in range(k + 1, 0, -1):
                            a = float(initial[f"a{r}"].subs(at))
                            b = float(initial[f"b{r}"].subs(at))
                            value = -np.logaddexp(0.0, -(b + a * value))
                        total += float(initial["a0"]) * value
                    logit += sign * total
                expected = (
                    log_rho_explicit(J, h, beta, prefix, 1)
                    - log_rho_explicit(J, h, beta, prefix, -1)
                    + 2 * beta * phi[site]
                )
                tolerance = 1e-12 if k == 0 else 2 * k * N * math.exp(-float(outer_layer_offset(k)))
                assert abs(logit - expected) < tolerance


@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_replica_structure(generic, k):
    reduction = replica_form(k, generic)
    depth = max(
        (len([a for a in node.atoms(logsigmoid)]) for node in [reduction.log_rho]), default=0
    )
    assert depth == k + 1
    names = [p.name for p in reduction.parameters]
    expected = ["a0"] + [f"{ab}{r}" for r in range(1, k + 2) for ab in "ab"]
    assert names == expected + ["residual_weight", "residual_bias"]
    assert all(p.role == "trainable" for p in reduction.parameters)
    assert reduction.variant == ("rs" if k == 0 else "krsb")
    assert reduction.title() == ("SK_RS" if k == 0 else f"SK_{k}RSB")


def test_h2arnn_form_equals_the_derivation(generic):
    """The logsumexp over configurations of docs/physics.md section 2 equals rho^{+-}."""
    N, beta = 5, 0.9
    rng = np.random.default_rng(7)
    J = np.triu(rng.normal(size=(N, N)), 1)
    J = J + J.T
    h = rng.normal(size=N)
    reduction = reduce_conditional("general", "exact", derivation=generic)
    numbers = {S.beta: beta, S.N: N}
    numbers.update({S.J[a, b]: J[a, b] for a in range(N) for b in range(a + 1, N)})
    for site in range(N - 1):
        n = N - 1 - site
        table = list(itertools.product((1, -1), repeat=n))
        prefix = rng.choice([-1, 1], size=site)
        phi = h + prefix @ J[:site, :]
        for sign in (1, -1):
            log_rho = reduction.log_rho_of(sign).subs({S.i: site, S.N: N})
            assert isinstance(log_rho, LogSumExp)
            terms = []
            for c, config in enumerate(table):
                body = expand_sums(log_rho.function.subs(R.c, c))
                values = {R.spin_table[c, l]: config[l - site - 1] for l in range(site + 1, N)}
                values.update({S.phi[site, l]: phi[l] for l in range(site, N)})
                body = body.xreplace(values)
                terms.append(float(body.xreplace(numbers)))
            value = np.logaddexp.reduce(terms)
            assert abs(value - log_rho_explicit(J, h, beta, prefix, sign)) < 1e-12


@pytest.mark.parametrize(
    "system, variant", [(s, v) for s, variants in VARIANTS.items() for v in variants]
)
def test_every_reduction_renders_with_mathtext(generic, system, variant):
    reduction = reduce_conditional(system, variant, k=2, derivation=generic)
    for line in reduction.latex_lines():
        math_to_image(f"${line}$", io.BytesIO(), format="png")


def test_defaults_and_errors(generic):
    assert reduce_conditional("sk", derivation=generic).variant == "krsb"
    assert reduce_conditional("cw", derivation=generic).variant == "exact"
    assert reduce_conditional("general", derivation=generic).k == 1
    with pytest.raises(ArnnGenError, match="unknown system 'ising'"):
        reduce_conditional("ising")
    with pytest.raises(ArnnGenError, match="unknown variant 'inf' for system 'sk'"):
        reduce_conditional("sk", "inf")
    with pytest.raises(ArnnGenError, match="k must be an integer >= 0"):
        replica_form(-1)


def test_the_curie_weiss_energy_is_checked_in_sympy():
    from arnn_gen.symbolic.simplify import MAGNETIZATION, curie_weiss_energy

    energy = curie_weiss_energy()
    # At N = 3 and M = 1 (two spins up, one down): pairs +1 -1 -1, so H = J/3 - h.
    value = energy.subs({MAGNETIZATION: 1, S.N: 3, R.J: 1.5, R.h: 0.25})
    assert float(value) == pytest.approx(1.5 / 3 - 0.25)


# -- CW_N's binomial recursion ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cw_exact(generic):
    return reduce_conditional("cw", "exact", derivation=generic)


def test_cw_n_recursion_is_derived_from_the_reduction_and_checked(cw_exact):
    """plus = r/2 + F_n(mu + 1), minus = -r/2 + F_n(mu - 1), found by SymPy from b+- and w;
    the logit is their difference, F_{n+1} their logaddexp (Note [Binomial recursion])."""
    recursion = cw_n_recursion(cw_exact)
    r, up, down = recursion.r, recursion.log_z_up, recursion.log_z_down
    assert recursion.plus == r / 2 + up
    assert recursion.minus == -r / 2 + down
    assert recursion.logit == recursion.branch_plus - recursion.branch_minus
    assert recursion.next_log_z == logaddexp(recursion.branch_plus, recursion.branch_minus)
    mu = recursion.mu
    assert sp.expand(recursion.residual - 2 * S.beta * (R.h + R.J * mu / S.N)) == 0
    check_cw_n_recursion(recursion, cw_exact, up_to=6)


def test_cw_n_recursion_iterated_in_floats_equals_brute_force(cw_exact):
    """The recursion's formulas evaluated in floats, from F_0 = 0, give the exact conditionals
    of every site and prefix of a small Curie-Weiss model (docs/physics.md section 2)."""
    recursion = cw_n_recursion(cw_exact)
    N, beta, coupling, field = 6, 1.3, 0.9, 0.2
    J, h = cw_numbers(N, coupling, field)
    numbers = {S.beta: beta, R.J: coupling, R.h: field, S.N: N}
    inputs = (recursion.r, recursion.log_z_up, recursion.log_z_down)
    branches = {recursion.branch_plus: recursion.plus, recursion.branch_minus: recursion.minus}
    residual = sp.lambdify(recursion.mu, recursion.residual.subs(numbers))
    logit = sp.lambdify(inputs, recursion.logit.xreplace(branches))
    step = sp.lambdify(inputs, to_elementary(recursion.next_log_z.xreplace(branches)))
    log_z = {mu: 0.0 for mu in range(-2 * N, 2 * N + 1)}  # F_0
    for n in range(N):
        site = N - 1 - n
        for prefix in itertools.product((1, -1), repeat=site):
            M = sum(prefix)
            expected = (
                log_rho_explicit(J, h, beta, prefix, 1)
                - log_rho_explicit(J, h, beta, prefix, -1)
                + 2 * beta * (field + coupling * M / N)
            )
            got = logit(residual(M), log_z[M + 1], log_z[M - 1])
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)
        span = range(-2 * N + n + 1, 2 * N - n)
        log_z = {mu: step(residual(mu), log_z[mu + 1], log_z[mu - 1]) for mu in span}


def _wrong(recursion, **changes):
    return dataclasses.replace(recursion, **changes)


@pytest.mark.parametrize(
    "change, message",
    [
        ("minus_sign", "is not the CW_N logit"),
        ("quarter", "is not the CW_N logit"),
        ("swapped", "is not the CW_N logit"),
        ("constant", "does not give F_1"),
        ("plus_twice", "does not give F_1"),
    ],
)
def test_a_wrong_cw_n_recursion_is_rejected(cw_exact, change, message):
    recursion = cw_n_recursion(cw_exact)
    r, up, down = recursion.r, recursion.log_z_up, recursion.log_z_down
    plus = recursion.branch_plus
    wrong = {
        "minus_sign": _wrong(recursion, minus=r / 2 + down),  # the residual's sign in minus
        "quarter": _wrong(recursion, plus=r / 4 + up, minus=-r / 4 + down),
        "swapped": _wrong(recursion, plus=r / 2 + down, minus=-r / 2 + up),
        # a constant in both terms cancels in the logit but not in F_{n+1}
        "constant": _wrong(recursion, plus=r / 2 + up + 1, minus=-r / 2 + down + 1),
        "plus_twice": _wrong(recursion, next_log_z=logaddexp(plus, plus)),
    }[change]
    with pytest.raises(ArnnGenError, match=message):
        check_cw_n_recursion(wrong, cw_exact)


def test_cw_n_recursion_needs_the_cw_n_reduction(generic):
    with pytest.raises(ArnnGenError, match="the binomial recursion is CW_N's, not CW_inf's"):
        cw_n_recursion(reduce_conditional("cw", "inf", derivation=generic))


def test_h2arnn_bias_in_two_contractions():
    """b^{+-}_c = eta t_c + p_c / 2 with t, p contractions of w J: checked by SymPy at every
    N <= 5, and refused for a bias that is not the reduction's."""
    from arnn_gen.symbolic.simplify import h2arnn_bias_contracted, h2arnn_form

    t, p = sp.symbols("t p")
    reduction = h2arnn_form()
    assert h2arnn_bias_contracted(reduction, t, p) == RSYM.sign * t + p / 2
    bias, weight = reduction.parameters
    wrong = dataclasses.replace(bias, initial=2 * bias.initial)
    tampered = dataclasses.replace(reduction, parameters=(wrong, weight))
    with pytest.raises(ArnnGenError, match="eta t \\+ p / 2"):
        h2arnn_bias_contracted(tampered, t, p)
