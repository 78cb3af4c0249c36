"""Stage 4: the IR validates itself, round-trips through a dict, and has a stable signature."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import sympy as sp

from arnn_gen.codegen.ir import ArchitectureIR, ParamSpec, class_name, module_name
from arnn_gen.errors import ArnnGenError
from arnn_gen.pipeline import lower


@pytest.fixture(scope="module")
def irs():
    return [
        lower("sk", N=12).ir,
        lower("sk", variant="rs", N=12).ir,
        lower("cw", N=30).ir,
        lower("cw", variant="inf", N=30).ir,
        lower("sk", variant="exact", N=6).ir,
    ]


def test_round_trip_through_json(irs):
    for ir in irs:
        data = json.loads(json.dumps(ir.to_dict()))
        again = ArchitectureIR.from_dict(data)
        assert again == ir
        assert again.signature() == ir.signature()


def test_signature_is_stable_across_processes(irs):
    code = "from arnn_gen.pipeline import lower; print(lower('sk', N=12).ir.signature())"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {irs[0].signature()}


def test_frozen_and_validated(irs):
    ir = irs[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ir.N = 5
    with pytest.raises(ArnnGenError, match="dtype"):
        dataclasses.replace(ir, dtype="float16")
    with pytest.raises(ArnnGenError, match="beta"):
        dataclasses.replace(ir, beta=-1.0)
    with pytest.raises(ArnnGenError, match="unknown system/variant"):
        dataclasses.replace(ir, variant="inf")
    with pytest.raises(ArnnGenError, match="tuple"):
        dataclasses.replace(ir, parameters=list(ir.parameters))
    with pytest.raises(ArnnGenError, match="duplicate"):
        dataclasses.replace(ir, parameters=ir.parameters + ir.parameters[:1])
    with pytest.raises(ArnnGenError, match="role"):
        ParamSpec(name="a", role="learned", shape=("site",), initial=sp.Integer(0))
    with pytest.raises(ArnnGenError, match="identifier"):
        ParamSpec(name="1a", role="fixed", shape=("site",), initial=sp.Integer(0))


def test_contents(irs):
    krsb, rs, cw, cw_inf, h2arnn = irs
    assert (krsb.name, krsb.class_name, krsb.title) == (
        "sk_krsb1_n12",
        "SherringtonKirkpatrick1RSB",
        "SK_1RSB",
    )
    assert [p.name for p in krsb.parameters] == [
        "a0", "a1", "b1", "a2", "b2", "residual_weight", "residual_bias",
    ]  # fmt: skip
    assert all(p.role == "trainable" for p in krsb.parameters)
    assert rs.name == "sk_rs_n12" and rs.class_name == "SherringtonKirkpatrickRS"
    assert cw.name == "cw_exact_n30" and cw.class_name == "CurieWeissCWN"
    assert {p.role for p in cw.parameters} == {"fixed"}
    assert cw.provenance.sidecar == "" and krsb.provenance.sidecar == "sk_krsb1_n12.npz"
    assert cw_inf.class_name == "CurieWeissCWInf"
    assert h2arnn.family == "h2arnn" and h2arnn.dtype == "float64"
    assert krsb.dtype == "float32"
    assert krsb.command.startswith("arnn-gen emit --system sk --variant krsb -N 12 -k 1")


def test_names():
    assert module_name("sk", "krsb", 100, 1) == "sk_krsb1_n100"
    assert module_name("cw", "exact", 100, None) == "cw_exact_n100"
    assert module_name("general", "rs", 8, 0) == "general_rs_n8"
    assert class_name("sk", "SK_2RSB") == "SherringtonKirkpatrick2RSB"
    assert class_name("general", "H2ARNN") == "GeneralH2ARNN"


def test_shared_forms_of_the_layer_are_checked_by_sympy():
    """The layer and its slope written through exp(-|u|) or sigmoid(u) are checked against
    logsigmoid(u) and its slope; a wrong form is refused."""
    from arnn_gen.codegen.families import replica, symbols
    from arnn_gen.symbolic.nn_functions import logsigmoid, sigmoid

    u, s = symbols.U, symbols.SHARED_SIGMOID
    direct = (logsigmoid(u), sp.diff(logsigmoid(u), u))
    replica.check_shared_forms(s, sigmoid(u), (sp.log(s), 1 - s), direct)
    for wrong in ((sp.log(s) + 1, 1 - s), (sp.log(s), s)):
        with pytest.raises(ArnnGenError, match="is not"):
            replica.check_shared_forms(s, sigmoid(u), wrong, direct)
