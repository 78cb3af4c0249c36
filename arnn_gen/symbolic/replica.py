"""The replica reductions SK_RS and SK_kRSB (docs/physics.md section 4): nested
log-sigmoid layers over the cavity fields of the later sites, for any dense couplings, with
their paramagnetic start.
"""

from __future__ import annotations

import sympy as sp

from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import SYMBOLS, Derivation, derive_conditional
from arnn_gen.symbolic.nn_functions import logsigmoid
from arnn_gen.symbolic.reduction import _LOG_RHO, _MAX_LAYERS, RSYM, Parameter, Reduction

__all__ = ["LINEAR_REGIME_OFFSET", "OFFSET", "replica_form"]


#: Bias -c of the outer k-RSB layers at initialisation: logsigmoid(z - c) = z - c + O(e^(z-c))
#: for z <= 0, so those layers start near-linear (docs/physics.md section 4) with an error of at
#: most e^-c = 2.5e-3 per later spin, and a constant -c that cancels between rho^+ and rho^-.
#: A larger c starts closer to the paramagnetic solution but multiplies the effect of every
#: optimizer step on the outer weights by c: with Adam at lr 1e-2, c = 12 made SK_2RSB diverge
#: from its start within 20 steps (relative error 0.4 at N = 12), c = 6 trains like SK_1RSB.
LINEAR_REGIME_OFFSET = 6
#: The symbol of that offset in the reduced forms (its value rides in Reduction.constants).
OFFSET = sp.Symbol("c_lin", positive=True)


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
