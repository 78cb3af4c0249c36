"""Stage 4: a small typed description of one architecture, the emitter's only input.

Input: a :class:`~arnn_gen.systems.Hamiltonian` and a
:class:`~arnn_gen.symbolic.simplify.Reduction`.
Output: an :class:`ArchitectureIR`: frozen, validated, made of tuples, strings, numbers and
SymPy expressions only (no tensors, no files). It round-trips through :meth:`to_dict` /
:meth:`from_dict` unchanged and has a stable sha256 :meth:`signature`.

Every symbolic formula the emitted module evaluates elementwise sits in ``formulas`` (name ->
SymPy expression); the emitter prints them to torch code. Parameter groups sit in
``parameters`` with their role, shape and initial value.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import sympy as sp

from arnn_gen._version import __version__
from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.derive import SYMBOLS
from arnn_gen.symbolic.nn_functions import LogSumExp, logsigmoid, sigmoid
from arnn_gen.symbolic.simplify import RSYM, VARIANTS, Reduction

__all__ = [
    "ROLES",
    "DTYPES",
    "TEMPLATES",
    "ParamSpec",
    "Provenance",
    "ArchitectureIR",
    "module_name",
    "class_name",
    "build_ir",
]

ROLES = ("fixed", "shared", "trainable")
DTYPES = ("float32", "float64")
#: Template of each (variant family): the replica template serves rs and krsb of any system.
TEMPLATES = {
    "h2arnn": "h2arnn.py.j2",
    "cw_exact": "cw_exact.py.j2",
    "cw_inf": "cw_inf.py.j2",
    "replica": "replica.py.j2",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _srepr(expr: sp.Basic) -> str:
    return sp.srepr(expr)


def _parse(text: str) -> sp.Basic:
    namespace = {name: getattr(sp, name) for name in dir(sp) if not name.startswith("_")}
    from sympy.codegen.cfunctions import expm1, log1p
    from sympy.functions.elementary.piecewise import ExprCondPair

    namespace.update({"sigmoid": sigmoid, "logsigmoid": logsigmoid, "expm1": expm1})
    namespace.update({"log1p": log1p, "ExprCondPair": ExprCondPair})
    return eval(text, namespace)  # noqa: S307 (our own srepr output, see to_dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamSpec:
    """One parameter group of the emitted module.

    role: "fixed" (analytic in beta and the couplings, a buffer recomputed when beta
    changes), "shared" (the first layer: couplings and fields), "trainable" (nn.Parameter).
    shape: dimension names, e.g. ("sign", "pair") or ("site",).
    initial: SymPy expression of the (initial) value, in the symbols of
    :data:`~arnn_gen.symbolic.simplify.RSYM` and :data:`~arnn_gen.symbolic.derive.SYMBOLS`.
    """

    name: str
    role: str
    shape: tuple[str, ...]
    initial: sp.Expr
    description: str = ""

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.name):
            raise ArnnGenError(f"parameter name {self.name!r} is not a Python identifier")
        if self.role not in ROLES:
            raise ArnnGenError(f"parameter role {self.role!r} is not one of {ROLES}")
        if not isinstance(self.shape, tuple) or not all(isinstance(d, str) for d in self.shape):
            raise ArnnGenError(f"parameter {self.name}: shape must be a tuple of names")
        if not isinstance(self.initial, sp.Basic):
            raise ArnnGenError(f"parameter {self.name}: initial value must be a SymPy object")

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "role": self.role,
            "shape": list(self.shape),
            "initial": _srepr(self.initial),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> ParamSpec:
        return cls(
            name=data["name"],
            role=data["role"],
            shape=tuple(data["shape"]),
            initial=_parse(data["initial"]),
            description=data["description"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Provenance:
    """Where the couplings come from: the system's defining numbers and its signature.

    ``scalars`` holds (name, value) pairs (CW: J, h; SK: J, h, seed); ``sidecar`` is the
    file name of the .npz beside the module holding J and h, or "" when the module embeds
    its couplings as the scalars (Curie-Weiss).
    """

    kind: str
    N: int
    scalars: tuple[tuple[str, float | int], ...]
    signature: str
    sidecar: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.N, int) or self.N < 1:
            raise ArnnGenError(f"provenance N must be a positive integer, got {self.N!r}")
        if not isinstance(self.scalars, tuple):
            raise ArnnGenError("provenance scalars must be a tuple of (name, value) pairs")

    def scalar(self, name: str, default=None):
        return dict(self.scalars).get(name, default)

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "N": self.N,
            "scalars": [[k, v] for k, v in self.scalars],
            "signature": self.signature,
            "sidecar": self.sidecar,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Provenance:
        return cls(
            kind=data["kind"],
            N=data["N"],
            scalars=tuple((k, v) for k, v in data["scalars"]),
            signature=data["signature"],
            sidecar=data["sidecar"],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchitectureIR:
    """One architecture, ready to render (see the module docstring)."""

    name: str  # module file stem, e.g. "sk_krsb1_n100"
    class_name: str  # the torch.nn.Module subclass, e.g. "SherringtonKirkpatrick1RSB"
    title: str  # architecture name from the paper: H2ARNN, CW_N, CW_inf, SK_RS, SK_kRSB
    system: str
    variant: str
    family: str  # key of TEMPLATES
    N: int
    k: int | None
    beta: float  # emission beta, the module's default
    dtype: str
    provenance: Provenance
    parameters: tuple[ParamSpec, ...]
    formulas: tuple[tuple[str, sp.Expr], ...]  # elementwise formulas the template evaluates
    conditional_latex: tuple[str, ...]
    reduced_latex: tuple[str, ...]
    command: str  # the arnn-gen emit command that remakes the module
    version: str = __version__
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.name) or not _IDENTIFIER.match(self.class_name):
            raise ArnnGenError(f"module name {self.name!r} must be a Python identifier")
        if self.system not in VARIANTS or self.variant not in VARIANTS[self.system]:
            raise ArnnGenError(f"unknown system/variant {self.system}/{self.variant}")
        if self.family not in TEMPLATES:
            raise ArnnGenError(f"unknown architecture family {self.family!r}")
        if self.dtype not in DTYPES:
            raise ArnnGenError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not isinstance(self.N, int) or self.N < 1:
            raise ArnnGenError(f"N must be a positive integer, got {self.N!r}")
        if self.k is not None and (not isinstance(self.k, int) or self.k < 0):
            raise ArnnGenError(f"k must be an integer >= 0, got {self.k!r}")
        if not (isinstance(self.beta, float) and self.beta > 0 and self.beta < float("inf")):
            raise ArnnGenError(f"beta must be a finite float > 0, got {self.beta!r}")
        for group in ("parameters", "formulas", "conditional_latex", "reduced_latex", "notes"):
            if not isinstance(getattr(self, group), tuple):
                raise ArnnGenError(f"{group} must be a tuple")
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ArnnGenError(f"duplicate parameter names in {names}")

    @property
    def template(self) -> str:
        return TEMPLATES[self.family]

    def formula(self, name: str) -> sp.Expr:
        return dict(self.formulas)[name]

    def parameter(self, name: str) -> ParamSpec:
        for spec in self.parameters:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def beta_scaled(self) -> tuple[str, ...]:
        """The trainable parameters whose initial value is beta times an expression free of
        beta (in the replica forms: the innermost layer and the residual at the paramagnetic
        start, PHYSICS.md section 4). Annealing can carry them from beta to beta' by the
        factor beta' / beta, which maps the paramagnetic start at beta onto the one at beta'.
        """
        beta = SYMBOLS.beta
        depends_on_beta = (beta, RSYM.m)  # m_beta, the mean-field magnetisation, does too
        return tuple(
            p.name
            for p in self.parameters
            if p.role == "trainable"
            and p.initial.has(beta)
            and not sp.simplify(p.initial / beta).has(*depends_on_beta)
        )

    def to_dict(self) -> dict:
        data = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "provenance":
                value = value.to_dict()
            elif f.name == "parameters":
                value = [p.to_dict() for p in value]
            elif f.name == "formulas":
                value = [[name, _srepr(expr)] for name, expr in value]
            elif isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> ArchitectureIR:
        values = dict(data)
        values["provenance"] = Provenance.from_dict(values["provenance"])
        values["parameters"] = tuple(ParamSpec.from_dict(p) for p in values["parameters"])
        values["formulas"] = tuple((name, _parse(text)) for name, text in values["formulas"])
        for name in ("conditional_latex", "reduced_latex", "notes"):
            values[name] = tuple(values[name])
        return cls(**values)

    def signature(self) -> str:
        """sha256 of the canonical JSON form (sorted keys): stable across runs."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


_SYSTEM_CLASS = {"general": "General", "cw": "CurieWeiss", "sk": "SherringtonKirkpatrick"}


def module_name(system: str, variant: str, N: int, k: int | None) -> str:  # noqa: N803
    """DESIGN.md's default file stem: ``<system>_<variant>[<k>]_n<N>``."""
    depth = str(k) if variant == "krsb" else ""
    return f"{system}_{variant}{depth}_n{N}"


def class_name(system: str, title: str) -> str:
    """A descriptive class name, e.g. CurieWeissCWN, SherringtonKirkpatrick1RSB."""
    arch = title.replace("SK_", "").replace("CW_", "CW").replace("_", "")
    arch = {"CWN": "CWN", "CWinf": "CWInf"}.get(arch, arch)
    return f"{_SYSTEM_CLASS[system]}{arch}"


def build_ir(
    hamiltonian,
    reduction: Reduction,
    *,
    beta: float,
    name: str | None = None,
    dtype: str | None = None,
    command: str,
) -> ArchitectureIR:
    """The IR of ``reduction`` for ``hamiltonian`` at emission temperature ``beta``."""
    from arnn_gen.systems import CurieWeiss, Hamiltonian

    if not isinstance(hamiltonian, Hamiltonian | CurieWeiss):
        raise ArnnGenError("build_ir needs a Hamiltonian")
    system, variant, k = reduction.system, reduction.variant, reduction.k
    N = hamiltonian.N
    family = {
        ("cw", "exact"): "cw_exact",
        ("cw", "inf"): "cw_inf",
    }.get((system, variant), "h2arnn" if variant == "exact" else "replica")
    stem = name or module_name(system, variant, N, k)
    embedded = family in ("cw_exact", "cw_inf")
    scalars = tuple(sorted((key, value) for key, value in hamiltonian.provenance.items()))
    provenance = Provenance(
        kind=hamiltonian.kind,
        N=N,
        scalars=scalars,
        signature=hamiltonian.signature(),
        sidecar="" if embedded else f"{stem}.npz",
    )
    parameters, formulas = _FAMILY_BUILDERS[family](reduction)
    return ArchitectureIR(
        name=stem,
        class_name=class_name(system, reduction.title()),
        title=reduction.title(),
        system=system,
        variant=variant,
        family=family,
        N=N,
        k=k,
        beta=float(beta),
        dtype=dtype or ("float64" if family in ("h2arnn", "cw_exact") else "float32"),
        provenance=provenance,
        parameters=parameters,
        formulas=formulas,
        conditional_latex=reduction.derivation.latex_lines(),
        reduced_latex=reduction.latex_lines(),
        command=command,
    )


# --- what each family's template evaluates ----------------------------------------------


#: Scalar stand-ins for the template's local variables in the formulas below.
Z, A, B, W, C, PHI, Y, U = sp.symbols("z a b w c phi_site y u")
SHARED_EXP = sp.Symbol("e")  # exp(-|u|), shared by a layer's output and slope (_layer_derivatives)
SHARED_SIGMOID = sp.Symbol("s")  # sigmoid(u), the same in eager code on the CPU
OMEGA = sp.Symbol("omega")  # omega_i of CW_inf in its printed logit


def _is_indexed(*bases):
    return lambda e: isinstance(e, sp.Indexed) and e.base in bases


def _without_log_rho(logit: sp.Expr) -> sp.Expr:
    """The residual part of a logit: every LogSumExp / Sum over later sites removed."""
    return logit.replace(lambda e: isinstance(e, (sp.Sum, LogSumExp)), lambda e: sp.S.Zero)


def _cw_exact_parts(reduction: Reduction):
    """CW_N: the fixed b^{+-}_{i,k}, w_{i,k} (in eta, n, k, beta, J, h, N) and the
    residual (in M_<i): the template tabulates the conditionals from them."""
    bias, weight = (p.initial for p in reduction.parameters)
    parameters = (
        ParamSpec(
            name="bias",
            role="fixed",
            shape=("sign", "site", "k"),
            initial=bias,
            description="b^{+-}_{i,k} of CW_N, analytic in beta",
        ),
        ParamSpec(
            name="weight",
            role="fixed",
            shape=("site", "k"),
            initial=weight,
            description="w_{i,k} of CW_N, analytic in beta",
        ),
    )
    residual = sp.expand(_without_log_rho(reduction.logit))
    return parameters, (("bias", bias), ("weight", weight), ("residual", residual))


def _cw_inf_parts(reduction: Reduction):
    """CW_inf: omega_i's initial value, the logit, and the mean-field equation whose root
    m_beta enters omega_i."""
    (omega,) = reduction.parameters
    R = RSYM
    parameters = (
        ParamSpec(
            name="omega",
            role="trainable",
            shape=("site",),
            initial=omega.initial,
            description="omega_i, initially 2 beta J (n/N) m_beta",
        ),
    )
    # The whole logit, omega_i as a plain symbol: the template binds it to omega [N] (forward)
    # or to a column of it (the table of sample), broadcast against M_<i.
    logit = sp.expand(reduction.logit.replace(_is_indexed(R.omega), lambda e: OMEGA))
    equation = dict((sp.sstr(lhs), rhs) for lhs, rhs in reduction.definitions)["m_beta"]
    formulas = (
        ("omega", omega.initial),
        ("logit", logit),
        ("magnetization_equation", R.m - equation),
    )
    return parameters, formulas


def _replica_parts(reduction: Reduction):
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
    layer = layer.replace(_is_indexed(*R.a), lambda e: A).replace(_is_indexed(*R.b), lambda e: B)
    output = later.xreplace({outer: Z}).replace(_is_indexed(*R.a), lambda e: A)
    residual = _without_log_rho(reduction.logit)
    residual = residual.replace(_is_indexed(R.residual_weight), lambda e: W)
    residual = residual.replace(_is_indexed(R.residual_bias), lambda e: C)
    residual = residual.xreplace({S.phi[S.i, S.i]: PHI})
    if layer != logsigmoid(B + A * Z) or output != A * Z or residual != W * PHI + C:
        raise ArnnGenError(f"unexpected replica structure: {layer}, {output}, {residual}")
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
        ("residual", residual),
        *_layer_derivatives(layer),
        # what the fused gradient pass multiplies by: d output / d a0, d output / d z and the
        # residual's d / d w and d / d c
        ("output_slope_a", sp.diff(output, A)),
        ("output_slope_z", sp.diff(output, Z)),
        ("residual_slope_w", sp.diff(residual, W)),
        ("residual_slope_c", sp.diff(residual, C)),
    )


def _layer_derivatives(layer: sp.Expr) -> tuple[tuple[str, sp.Expr], ...]:
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
    _check_shared_forms(SHARED_EXP, layer_exp, (layer_of_exp, slope_of_exp), direct)
    # The layer and its slope from one sigmoid s = sigmoid(u): y = log(s), d y / d u = 1 - s.
    # Eager code on the CPU uses these (two cheap passes where torch's logsigmoid is one slow
    # one), wherever s cannot underflow (the template's Note [Eager layers on the CPU]).
    layer_sigmoid = sigmoid(U)
    layer_of_sigmoid = sp.log(SHARED_SIGMOID)
    slope_of_sigmoid = 1 - SHARED_SIGMOID
    _check_shared_forms(SHARED_SIGMOID, layer_sigmoid, (layer_of_sigmoid, slope_of_sigmoid), direct)
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


def _check_shared_forms(shared, value, forms, direct) -> None:
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


def _h2arnn_parts(reduction: Reduction):
    """H2ARNN: b^{+-}_{i,c} and w_{c,l} = beta xi^c_l (fixed); the template contracts the
    configuration table with the couplings for b and prints w from its formula."""
    R = RSYM
    bias, weight = (p.initial for p in reduction.parameters)
    parameters = (
        ParamSpec(
            name="bias",
            role="fixed",
            shape=("sign", "config"),
            initial=bias,
            description="b^{+-}_{i,c} of H2ARNN",
        ),
        ParamSpec(
            name="weight",
            role="fixed",
            shape=("config", "later"),
            initial=weight,
            description="w_{c,l} = beta xi^c_l",
        ),
    )
    xi = sp.Symbol("xi")
    formulas = (("weight", weight.replace(_is_indexed(R.spin_table), lambda e: xi)),)
    return parameters, formulas


_FAMILY_BUILDERS = {
    "cw_exact": _cw_exact_parts,
    "cw_inf": _cw_inf_parts,
    "replica": _replica_parts,
    "h2arnn": _h2arnn_parts,
}
