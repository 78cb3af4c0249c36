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
from arnn_gen.variants import VARIANTS

__all__ = [
    "ROLES",
    "DTYPES",
    "BACKENDS",
    "ParamSpec",
    "Provenance",
    "ArchitectureIR",
    "module_name",
    "class_name",
]

ROLES = ("fixed", "trainable")
DTYPES = ("float32", "float64")
#: The kernel backends an emitted module can have (``emit --backend``).
BACKENDS = ("torch", "triton")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _srepr(expr: sp.Basic) -> str:
    return sp.srepr(expr)


def _parse(text: str) -> sp.Basic:
    namespace = {name: getattr(sp, name) for name in dir(sp) if not name.startswith("_")}
    from sympy.codegen.cfunctions import expm1, log1p
    from sympy.functions.elementary.piecewise import ExprCondPair

    # The network vocabulary, for reading an IR back (from_dict) only.
    from arnn_gen.symbolic.nn_functions import LogSumExp, logaddexp, logsigmoid, sigmoid

    namespace.update({"sigmoid": sigmoid, "logsigmoid": logsigmoid, "expm1": expm1})
    namespace.update({"LogSumExp": LogSumExp, "logaddexp": logaddexp})
    namespace.update({"log1p": log1p, "ExprCondPair": ExprCondPair})
    return eval(text, namespace)  # noqa: S307 (our own srepr output, see to_dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamSpec:
    """One parameter group of the emitted module.

    role: "fixed" (analytic in beta and the couplings, a buffer recomputed when beta
    changes) or "trainable" (nn.Parameter).
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
    family: str  # the architecture family (arnn_gen.codegen.families)
    template: str  # the family's template, e.g. "replica.py.j2"
    N: int
    k: int | None
    beta: float  # emission beta, the module's default
    dtype: str
    provenance: Provenance
    parameters: tuple[ParamSpec, ...]
    formulas: tuple[tuple[str, sp.Expr], ...]  # elementwise formulas the template evaluates
    symbol_names: tuple[tuple[sp.Symbol, str], ...]  # symbol -> its Python name in the module
    fused_multiply_add: tuple[str, ...]  # formulas printed with torch.addcmul
    in_place: tuple[tuple[str, str, tuple[sp.Symbol, ...]], ...]  # in-place printed forms
    beta_scaled: tuple[str, ...]  # trainable parameters that are beta times a beta-free value
    constants: tuple[tuple[str, sp.Expr], ...]  # module-level named numbers of the formulas
    conditional_latex: tuple[str, ...]
    reduced_latex: tuple[str, ...]
    command: str  # the arnn-gen emit command that remakes the module
    #: The site order of a frontier network: how it was chosen ("natural", "rcm"); the
    #: permutation itself is in the sidecar. "" for the dense families (natural order).
    site_order: str = ""
    #: The frontier's width max_i |F_i| in that order (0 for the dense families).
    frontier_width: int = 0
    #: sha256 of the order itself (pipeline.order_signature): the sidecar's must match it.
    order_signature: str = ""
    #: The labels of the instances of a batched module (the SK seeds, or the couplings
    #: files' indices), in order; () for a module of one system.
    instances: tuple[str, ...] = ()
    #: The instances' own Hamiltonian signatures, in the same order (what a module of one
    #: of them alone declares: its run folder is checked against it).
    instance_signatures: tuple[str, ...] = ()
    #: The numbers of each instance of a module that embeds them (Curie-Weiss: J and h), as
    #: (name, value) pairs, in the same order; () where a sidecar holds the instances.
    instance_scalars: tuple[tuple[tuple[str, float], ...], ...] = ()
    #: The kernels of the module: "torch" (printed torch code) or "triton" (Triton kernels
    #: printed from the same formulas, the torch code where they cannot run).
    backend: str = "torch"
    version: str = __version__
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.name) or not _IDENTIFIER.match(self.class_name):
            raise ArnnGenError(f"module name {self.name!r} must be a Python identifier")
        if self.system not in VARIANTS or self.variant not in VARIANTS[self.system]:
            raise ArnnGenError(f"unknown system/variant {self.system}/{self.variant}")
        if not _IDENTIFIER.match(self.family) or not self.template.endswith(".py.j2"):
            raise ArnnGenError(f"bad family or template: {self.family!r}, {self.template!r}")
        if self.dtype not in DTYPES:
            raise ArnnGenError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not isinstance(self.N, int) or self.N < 1:
            raise ArnnGenError(f"N must be a positive integer, got {self.N!r}")
        if self.k is not None and (not isinstance(self.k, int) or self.k < 0):
            raise ArnnGenError(f"k must be an integer >= 0, got {self.k!r}")
        if not (isinstance(self.beta, float) and self.beta > 0 and self.beta < float("inf")):
            raise ArnnGenError(f"beta must be a finite float > 0, got {self.beta!r}")
        for group in (
            "parameters",
            "formulas",
            "symbol_names",
            "fused_multiply_add",
            "in_place",
            "beta_scaled",
            "constants",
            "conditional_latex",
            "reduced_latex",
            "notes",
            "instances",
            "instance_signatures",
            "instance_scalars",
        ):
            if not isinstance(getattr(self, group), tuple):
                raise ArnnGenError(f"{group} must be a tuple")
        if not isinstance(self.frontier_width, int) or self.frontier_width < 0:
            raise ArnnGenError(
                f"frontier_width must be an integer >= 0, got {self.frontier_width!r}"
            )
        if self.backend not in BACKENDS:
            raise ArnnGenError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.site_order not in ("", "natural", "rcm"):
            raise ArnnGenError(
                f"site_order must be '', 'natural' or 'rcm', got {self.site_order!r}"
            )
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ArnnGenError(f"duplicate parameter names in {names}")
        labels = self.instances
        if not all(isinstance(label, str) for label in labels) or len(set(labels)) != len(labels):
            raise ArnnGenError(f"instances must be distinct strings, got {labels!r}")
        if len(self.instance_signatures) != len(labels):
            raise ArnnGenError("instance_signatures must name one signature per instance")
        if self.instance_scalars and len(self.instance_scalars) != len(labels):
            raise ArnnGenError("instance_scalars must give the numbers of every instance")

    def formula(self, name: str) -> sp.Expr:
        return dict(self.formulas)[name]

    def parameter(self, name: str) -> ParamSpec:
        for spec in self.parameters:
            if spec.name == name:
                return spec
        raise KeyError(name)

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
            elif f.name == "constants":
                value = [[name, _srepr(number)] for name, number in value]
            elif f.name == "symbol_names":
                value = [[_srepr(symbol), printed] for symbol, printed in value]
            elif f.name == "in_place":
                value = [
                    [printed, name, [_srepr(s) for s in over]] for printed, name, over in value
                ]
            elif f.name in ("instances", "instance_signatures", "instance_scalars") and not value:
                continue  # a module of one system: its canonical form has no such key
            elif f.name == "backend" and value == "torch":
                continue  # the default: the torch modules' canonical form has no such key
            elif f.name == "instance_scalars":
                value = [[[name, number] for name, number in pairs] for pairs in value]
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
        values["constants"] = tuple((name, _parse(text)) for name, text in values["constants"])
        values["symbol_names"] = tuple(
            (_parse(text), printed) for text, printed in values["symbol_names"]
        )
        values["in_place"] = tuple(
            (printed, name, tuple(_parse(text) for text in over))
            for printed, name, over in values["in_place"]
        )
        for name in ("fused_multiply_add", "beta_scaled", "conditional_latex", "reduced_latex",
                     "notes"):  # fmt: skip
            values[name] = tuple(values[name])
        values["instances"] = tuple(values.get("instances", ()))
        values["instance_signatures"] = tuple(values.get("instance_signatures", ()))
        values["instance_scalars"] = tuple(
            tuple((name, number) for name, number in pairs)
            for pairs in values.get("instance_scalars", ())
        )
        return cls(**values)

    def signature(self) -> str:
        """sha256 of the canonical JSON form (sorted keys): stable across runs."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


_SYSTEM_CLASS = {
    "general": "General",
    "cw": "CurieWeiss",
    "sk": "SherringtonKirkpatrick",
    "ea2d": "EdwardsAnderson2D",
    "ea3d": "EdwardsAnderson3D",
    "ising2d": "Ising2D",
    "rrg": "RandomRegularGraph",
}


def module_name(system: str, variant: str, N: int, k: int | None) -> str:  # noqa: N803
    """DESIGN.md's default file stem: ``<system>_<variant>[<k>]_n<N>``."""
    depth = str(k) if variant == "krsb" else ""
    return f"{system}_{variant}{depth}_n{N}"


def class_name(system: str, title: str) -> str:
    """A descriptive class name, e.g. CurieWeissCWN, SherringtonKirkpatrick1RSB."""
    arch = title.replace("SK_", "").replace("CW_", "CW").replace("_", "")
    arch = {"CWN": "CWN", "CWinf": "CWInf"}.get(arch, arch)
    return f"{_SYSTEM_CLASS[system]}{arch}"
