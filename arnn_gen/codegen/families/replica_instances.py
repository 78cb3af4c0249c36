"""SK_RS and SK_kRSB of K disorder instances trained as one module (``emit --instances``):
the replica family's parameters and formulas, every parameter with a leading instance
dimension, the instances' layers evaluated together block by block."""

from __future__ import annotations

from arnn_gen.codegen.families import replica
from arnn_gen.codegen.families.base import Family

FAMILY = Family(
    name="replica_instances",
    template="replica_instances.py.j2",
    serves=replica.FAMILY.serves,
    parts=replica.parts,
    dtype=replica.FAMILY.dtype,
    embedded=False,
    fused_multiply_add=replica.FAMILY.fused_multiply_add,
    in_place=replica.FAMILY.in_place,
    instances=True,
    backends=replica.FAMILY.backends,
)
