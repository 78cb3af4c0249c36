"""Stage 5: rendering, compile check, atomic writes, loading emitted modules."""

from __future__ import annotations

import pytest

import arnn_gen
from arnn_gen.codegen.emit import print_formulas, write_module
from arnn_gen.errors import ArnnGenError
from arnn_gen.pipeline import lower


@pytest.fixture(scope="module")
def stages():
    return lower("sk", variant="rs", N=6)


def test_formulas_are_printed_not_retyped(stages):
    printed = print_formulas(stages.ir)
    assert printed["layer"] == "torch.nn.functional.logsigmoid(a * z + b)"
    assert printed["init_b1"] == "2 * coupling * beta * sign"
    for code in printed.values():
        assert code in stages.source  # every printed formula reaches the module


def test_write_is_atomic_and_only_when_bytes_change(tmp_path, stages):
    path = write_module(stages.ir, stages.source, stages.hamiltonian, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sk_rs_n6.npz", "sk_rs_n6.py"]
    stamp = path.stat().st_mtime_ns
    with pytest.raises(ArnnGenError, match="exists; use --force"):
        write_module(stages.ir, stages.source, stages.hamiltonian, tmp_path)
    write_module(stages.ir, stages.source, stages.hamiltonian, tmp_path, force=True)
    assert path.stat().st_mtime_ns == stamp  # same bytes: not rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sk_rs_n6.npz", "sk_rs_n6.py"]


def test_output_directory_that_is_a_file(tmp_path, stages):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ArnnGenError, match="is a file"):
        write_module(stages.ir, stages.source, stages.hamiltonian, blocker)


def test_load(tmp_path, stages):
    path = write_module(stages.ir, stages.source, stages.hamiltonian, tmp_path)
    module = arnn_gen.load_module(path)
    assert module.Model is getattr(module, stages.ir.class_name)
    with pytest.raises(ArnnGenError, match="does not exist"):
        arnn_gen.load_module(tmp_path / "missing.py")
    other = tmp_path / "other.py"
    other.write_text("x = 1\n")
    with pytest.raises(ArnnGenError, match="defines no Model"):
        arnn_gen.load_module(other)
