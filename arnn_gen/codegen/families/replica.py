"""SK_RS and SK_kRSB, the replica networks (docs/physics.md section 4): k + 2 layers of
z -> logsigmoid(b + a z) over the cavity fields of the later sites, and a residual; every
layer's derivatives for the fused gradient pass, found or checked by SymPy."""

from __future__ import annotations

import sympy as sp

from arnn_gen.codegen.families.base import (
    Family,
    first_layer_formulas,
    is_indexed,
    logit_assembly,
    without_log_rho,
)
from arnn_gen.codegen.families.symbols import (
    COLUMN_NORM,
    FIELD_BOUND,
    LOG_RHO_MINUS,
    LOG_RHO_PLUS,
    LOWEST,
    PHI,
    PHI_LATER,
    SHARED_EXP,
    SHARED_SIGMOID,
    A,
    B,
    C,
    U,
    W,
    Y,
    Z,
)
from arnn_gen.codegen.ir import ParamSpec
from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import SYMBOLS
from arnn_gen.symbolic.nn_functions import logsigmoid, sigmoid
from arnn_gen.symbolic.simplify import RSYM, Reduction


def parts(reduction: Reduction):
    """SK_RS / SK_kRSB: the layer z -> logsigmoid(b + a z) and the output a0 z read off the
    reduced log rho, the residual, and every parameter's initial value."""
    S, R = SYMBOLS, RSYM
    later = reduction.log_rho.function  # a0[eta, i, l] * logsigmoid(b1 + a1 * (...))
    outer = next(node for node in sp.preorder_traversal(later) if isinstance(node, logsigmoid))
    inner = next(
        (node for node in sp.preorder_traversal(outer.args[0]) if isinstance(node, logsigmoid)),
        S.phi[S.i, S.l],
    )
    layer = outer.xreplace({inner: Z})
    layer = layer.replace(is_indexed(*R.a), lambda e: A).replace(is_indexed(*R.b), lambda e: B)
    output = later.xreplace({outer: Z}).replace(is_indexed(*R.a), lambda e: A)
    residual = without_log_rho(reduction.logit)
    residual = residual.replace(is_indexed(R.residual_weight), lambda e: W)
    residual = residual.replace(is_indexed(R.residual_bias), lambda e: C)
    residual = residual.xreplace({S.phi[S.i, S.i]: PHI})
    if layer != logsigmoid(B + A * Z) or output != A * Z or residual != W * PHI + C:
        raise ArnnGenError(f"unexpected replica structure: {layer}, {output}, {residual}")
    # The logit's assembly: the reduced logit with log rho^+ and log rho^- as stand-ins.
    logit = logit_assembly(reduction, LOG_RHO_PLUS, LOG_RHO_MINUS)
    logit = logit.replace(is_indexed(R.residual_weight), lambda e: W)
    logit = logit.replace(is_indexed(R.residual_bias), lambda e: C)
    logit = logit.xreplace({S.phi[S.i, S.i]: PHI})
    if sp.expand(logit - (residual + LOG_RHO_PLUS - LOG_RHO_MINUS)) != 0:
        raise ArnnGenError(f"unexpected replica logit: {logit}")
    specs = []
    for p in reduction.parameters:
        if p.name.startswith("residual"):
            # sum_{l>i} J_{i,l} becomes the row sum the template computes from J.
            initial = p.initial.replace(lambda e: isinstance(e, sp.Sum), lambda e: R.coupling)
            shape = ("site",)
        else:
            initial, shape = p.initial, ("sign", "site", "later")
        specs.append(
            ParamSpec(
                name=p.name,
                role="trainable",
                shape=shape,
                initial=initial,
                description=p.description,
            )
        )
    return tuple(specs), (
        ("layer", layer),
        ("output", output),
        ("logit", logit),
        *layer_derivatives(layer),
        # what the fused gradient pass multiplies by: d output / d a0, d output / d z and the
        # residual's d / d w and d / d c
        ("output_slope_a", sp.diff(output, A)),
        ("output_slope_z", sp.diff(output, Z)),
        ("residual_slope_w", sp.diff(residual, W)),
        ("residual_slope_c", sp.diff(residual, C)),
        *first_layer_formulas(reduction),
        *input_bounds(layer, reduction.derivation),
    )


def input_bounds(layer: sp.Expr, derivation) -> tuple[tuple[str, sp.Expr], ...]:
    """The lowest input u = b + a z a layer can see, for any spins (what decides whether the
    eager layers may go through sigmoid(u) without underflow, the template's Note [Eager
    layers on the CPU]).

    ``field_bound``: |phi_{i,l}| <= |h_l| + sum_s |J_{s,l}| for every site i, each term of
    the cavity field bounded by its absolute value at |x_s| = 1 and the sum over s < i
    extended to every s (J_{l,l} = 0; more terms only loosen the bound), in the column
    1-norm of J. u is linear in z, so its least value over an interval is at an end:
    ``lowest_inner_input`` over z = phi in [-field_bound, field_bound], and
    ``lowest_outer_input`` over z in [z_low, 0], the range of the layer below's output
    logsigmoid(.) <= 0 (z_low: its value at its own lowest input).
    """
    S = SYMBOLS
    layer_input = layer.args[0]
    if sp.diff(layer_input, Z, 2) != 0:
        raise ArnnGenError(f"the layer's input is not linear in z: {layer_input}")
    terms = []
    for term in sp.Add.make_args(derivation.cavity_field):
        if isinstance(term, sp.Sum):
            summand = term.function.replace(is_indexed(S.x), lambda e: sp.S.One)
            if summand.replace(is_indexed(S.J), lambda e: sp.S.One) != 1:
                raise ArnnGenError(f"unexpected term of the cavity field: {term}")
            terms.append(COLUMN_NORM)  # sum_s |J_{s,l}| |x_s|, |x_s| = 1
        else:
            terms.append(sp.Abs(term.replace(is_indexed(S.h), lambda e: RSYM.h)))
    bound = sp.Add(*terms)
    if bound.free_symbols != {RSYM.h, COLUMN_NORM}:
        raise ArnnGenError(f"unexpected bound of the cavity field: {bound}")
    inner = sp.Min(layer_input.subs(Z, -FIELD_BOUND), layer_input.subs(Z, FIELD_BOUND))
    outer = sp.Min(layer_input.subs(Z, LOWEST), layer_input.subs(Z, 0))
    return (
        ("field_bound", bound),
        ("lowest_inner_input", inner),
        ("lowest_outer_input", outer),
    )


def layer_derivatives(layer: sp.Expr) -> tuple[tuple[str, sp.Expr], ...]:
    """Derivatives of y = logsigmoid(b + a z) for a backward pass that keeps only z and y.

    d y / d b = 1 - sigmoid(b + a z) = 1 - exp(y) = -expm1(y) (accurate as y -> 0), the
    "slope"; d y / d z and d y / d a are the slope times a and z. Also the layer's input
    u = b + a z, y and its slope as functions of u, and both from the one exponential
    exp(-|u|) they share. All found or checked by SymPy.
    """
    from sympy.codegen.rewriting import expm1_opt, optimize

    slope = sp.diff(layer, B)
    slope = slope.xreplace({sigmoid(layer.args[0]): sp.exp(Y)})
    slope = optimize(slope, [expm1_opt])
    if slope.has(A, B, Z):
        raise ArnnGenError(f"the layer's slope is not a function of its output: {slope}")
    factor_z = sp.simplify(sp.diff(layer, Z) / sp.diff(layer, B))
    factor_a = sp.simplify(sp.diff(layer, A) / sp.diff(layer, B))
    # The same layer as a function of its input u = b + a z, and its slope d y / d u: the
    # fused gradient pass keeps u and needs no exp of y.
    layer_input = layer.args[0]
    layer_of_input = layer.xreplace({layer_input: U})
    slope_of_input = sp.diff(layer_of_input, U)
    if layer_of_input.has(A, B, Z) or slope_of_input.has(A, B, Z):
        raise ArnnGenError(f"the layer is not a function of b + a z: {layer}")
    # The layer and its slope from one exponential e = exp(-|u|), the way logsigmoid is
    # computed stably: y = min(u, 0) - log1p(e) and d y / d u = sigmoid(-u) = e / (1 + e)
    # for u > 0, 1 / (1 + e) otherwise. Compiled, the fused gradient pass uses these: one
    # exp, one log1p and a division per layer, where y and sigmoid(-u) take two exps and a
    # log1p. SymPy checks both against the layer on either side of u = 0.
    from sympy.codegen.cfunctions import log1p

    layer_exp = sp.exp(-sp.Abs(U))
    layer_of_exp = (U - sp.Abs(U)) / 2 - log1p(SHARED_EXP)
    slope_of_exp = sp.Piecewise((SHARED_EXP, U > 0), (1, True)) / (1 + SHARED_EXP)
    direct = (layer_of_input, slope_of_input)
    check_shared_forms(SHARED_EXP, layer_exp, (layer_of_exp, slope_of_exp), direct)
    # The layer and its slope from one sigmoid s = sigmoid(u): y = log(s), d y / d u = 1 - s.
    # Eager code on the CPU uses these (two cheap passes where torch's logsigmoid is one slow
    # one), wherever s cannot underflow (the template's Note [Eager layers on the CPU]).
    layer_sigmoid = sigmoid(U)
    layer_of_sigmoid = sp.log(SHARED_SIGMOID)
    slope_of_sigmoid = 1 - SHARED_SIGMOID
    check_shared_forms(SHARED_SIGMOID, layer_sigmoid, (layer_of_sigmoid, slope_of_sigmoid), direct)
    return (
        ("layer_slope", slope),
        ("slope_z", factor_z),
        ("slope_a", factor_a),
        ("layer_input", layer_input),
        ("layer_of_input", layer_of_input),
        ("slope_of_input", slope_of_input),
        ("layer_exp", layer_exp),
        ("layer_of_exp", layer_of_exp),
        ("slope_of_exp", slope_of_exp),
        ("layer_sigmoid", layer_sigmoid),
        ("layer_of_sigmoid", layer_of_sigmoid),
        ("slope_of_sigmoid", slope_of_sigmoid),
    )


def check_shared_forms(shared, value, forms, direct) -> None:
    """SymPy's check that ``forms`` (a layer's output and slope written through ``shared``,
    which stands for ``value``, a function of u) equal ``direct`` (the same as functions of
    u), on either side of u = 0."""
    p = sp.Symbol("p", positive=True)
    for side in (p, -p, sp.S.Zero):
        point = {U: side, shared: value.subs(U, side)}
        for form, reference in zip(forms, direct, strict=True):
            difference = (form.subs(point) - reference.subs(U, side)).rewrite(sp.exp)
            if sp.simplify(sp.expand_log(difference.rewrite(sp.log), force=True)) != 0:
                raise ArnnGenError(f"{form} ({shared} = {value}) is not {reference} at u = {side}")


#: Formulas printed with torch.addcmul where they are b + a z (Note [Fused multiply-add] in
#: printing.py): the input of the layers, evaluated on every pair of every sample.
FUSED_MULTIPLY_ADD = ("layer_input",)

#: Formulas also printed with each operation overwriting the tensor of the one before (Note
#: [In-place] in printing.py): (printed name, formula, the symbols it may overwrite). The
#: layers of eager code on the CPU, where every pass over memory counts; the layer input
#: overwrites z where z is a layer's output no longer needed (not the fields phi).
IN_PLACE = (
    ("layer_input_in_place", "layer_input", ()),
    ("layer_input_over_z", "layer_input", (Z,)),
    ("layer_sigmoid_in_place", "layer_sigmoid", (U,)),
    ("layer_of_sigmoid_in_place", "layer_of_sigmoid", (SHARED_SIGMOID,)),
    ("slope_of_sigmoid_in_place", "slope_of_sigmoid", (SHARED_SIGMOID,)),
    ("cavity_update", "cavity_update", (PHI_LATER,)),  # sampling's fields
)

FAMILY = Family(
    name="replica",
    template="replica.py.j2",
    serves=((None, "rs"), (None, "krsb")),
    parts=parts,
    dtype="float32",
    embedded=False,
    fused_multiply_add=FUSED_MULTIPLY_ADD,
    in_place=IN_PLACE,
    backends=("torch", "triton"),
)
