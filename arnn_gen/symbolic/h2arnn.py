"""H2ARNN, the exact network of any pairwise system (docs/physics.md section 2): log rho^{+-}
as a log-sum-exp over the configurations of the later spins, and its biases as two
contractions of the weights with the couplings.
"""

from __future__ import annotations

import sympy as sp

from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import SYMBOLS, Derivation, derive_conditional, expand_sums
from arnn_gen.symbolic.nn_functions import LogSumExp
from arnn_gen.symbolic.reduction import _LOG_RHO, RSYM, Parameter, Reduction

__all__ = ["h2arnn_form", "h2arnn_bias_contracted"]


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
