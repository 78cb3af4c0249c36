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

__all__ = ["OUTER_OFFSET", "OFFSET", "outer_layer_offset", "replica_form"]


#: The outer k-RSB layers start at a = 1, b = -c: logsigmoid(z - c) = z - c + O(e^(z - c))
#: for z <= 0, near-linear for a large c, and the constants cancel between rho^+ and rho^-.
#: But the output weights a0 multiply the outermost layer's output, about z - k c at the
#: start, and Adam moves each weight by about its learning rate whatever the gradient's
#: scale, so every step shakes log rho^{+-} by about lr k c per later site. Measured
#: (docs/RESULTS.md, "Why SK_2RSB lagged"): c = 6 left SK_2RSB behind SK_1RSB and the
#: baselines at N = 50; c = 2 / k, the k offsets adding up to OUTER_OFFSET = 2, trains
#: SK_1RSB and SK_2RSB best of c = 0, 1, 2, 6. The start is then exact only for k = 0.
OUTER_OFFSET = 2
#: The symbol of the offset c of each outer layer (its value rides in Reduction.constants).
OFFSET = sp.Symbol("c_outer", positive=True)


def outer_layer_offset(k: int) -> sp.Rational:
    """c = OUTER_OFFSET / k, the bias -c of each of the k outer layers at the start."""
    return sp.Rational(OUTER_OFFSET, k)


def replica_form(k: int, derivation: Derivation | None = None, *, system: str = "sk") -> Reduction:
    """SK_RS (k = 0) and SK_kRSB (docs/physics.md section 4) for any dense couplings.

    log rho^{+-}_i = sum_{l>i} a0 logsigmoid(b1 + a1 logsigmoid(b2 + ... logsigmoid(
    b_{k+1} + a_{k+1} phi_{i,l}))), every a, b indexed [sign, i, l] and trainable; the first
    layer (phi from J, h) is fixed and shared; the residual is w_i phi_{i,i} + b_i.

    Initial values (paramagnetic, q = 0): the later spins taken as non-interacting give
    log rho^{+-} = sum_l log 2cosh(beta (phi_{i,l} +- J_{i,l})) and
    log 2cosh(u) = u - logsigmoid(2u), so a0 = -1, a_{k+1} = 2 beta, b_{k+1} = +-2 beta J_{i,l},
    residual weight 2 beta and bias 2 beta sum_{l>i} J_{i,l}; the k outer layers start at
    a = 1, b = -c, c = outer_layer_offset(k). Exact at J_{l,l'} = 0 for k = 0.
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
    constants = ((OFFSET, outer_layer_offset(k)),) if k > 0 else ()
    return Reduction(
        system, variant, k, d, log_rho, logit, parameters, definitions, display, constants
    )
