"""The replica networks of sparse systems (docs/physics.md section 7): the layers of SK_RS /
SK_kRSB over the frontier F^+_i of each site only, the cavity fields gathered from the
neighbours of the frontier sites, and ancestral sampling that updates the fields of the
neighbours of the drawn site alone. The formulas are the dense family's (families/replica.py),
read off the same reduced form; the frontier changes where they are evaluated, not what."""

from __future__ import annotations

from arnn_gen.codegen.families import replica
from arnn_gen.codegen.families.base import Family, first_layer_formulas
from arnn_gen.codegen.families.symbols import PHI_LATER
from arnn_gen.codegen.ir import ParamSpec
from arnn_gen.errors import ArnnGenError
from arnn_gen.symbolic.simplify import Reduction

#: The systems whose couplings are held sparse (their replica variants are this family's).
SPARSE_SYSTEMS = ("ea2d", "ea3d", "ising2d", "rrg", "general")


def parts(reduction: Reduction):
    """The dense replica family's parts with the pair parameters laid out over the frontier,
    [sign, site, frontier], and the cavity field's increment J_{i,l} x_i on its own: sampling
    adds it to the fields of the neighbours of the drawn site (an index_add)."""
    if reduction.layout != "frontier":
        raise ArnnGenError("the frontier replica family needs a reduction over the frontier")
    specs, formulas = replica.parts(reduction)
    specs = tuple(
        ParamSpec(
            name=spec.name,
            role=spec.role,
            shape=("sign", "site", "frontier")
            if spec.shape == ("sign", "site", "later")
            else spec.shape,
            initial=spec.initial,
            description=spec.description,
        )
        for spec in specs
    )
    update = dict(first_layer_formulas(reduction))["cavity_update"]
    increment = update - PHI_LATER
    if increment.has(PHI_LATER):
        raise ArnnGenError(f"unexpected cavity update: {update}")
    return specs, (*formulas, ("cavity_increment", increment))


FAMILY = Family(
    name="frontier_replica",
    template="frontier_replica.py.j2",
    serves=tuple((system, variant) for system in SPARSE_SYSTEMS for variant in ("rs", "krsb")),
    parts=parts,
    dtype="float32",
    embedded=False,
    fused_multiply_add=replica.FUSED_MULTIPLY_ADD,
    in_place=tuple(entry for entry in replica.IN_PLACE if entry[0] != "cavity_update"),
    layout="frontier",
    backends=("torch", "triton"),
)
