"""CW_inf of K Curie-Weiss systems (their J and h) trained as one module (``emit --system cw
--variant inf --J a,b,... --h c,d,...``): CW_inf's parameter and formulas, omega with a
leading instance dimension, every instance's numbers embedded in the module."""

from __future__ import annotations

from arnn_gen.codegen.families import cw_inf
from arnn_gen.codegen.families.base import Family

FAMILY = Family(
    name="cw_inf_instances",
    template="cw_inf_instances.py.j2",
    serves=cw_inf.FAMILY.serves,
    parts=cw_inf.parts,
    dtype=cw_inf.FAMILY.dtype,
    embedded=True,
    instances=True,
)
