"""The arnn-gen command line through click's runner: output and every error message."""

from __future__ import annotations

import io
import json

import matplotlib
import numpy as np
import pytest
from cli_runner import assert_one_line_error, run

from arnn_gen import systems
from arnn_gen.exact import curie_weiss_exact, enumerate_exact

matplotlib.use("Agg")
from matplotlib.mathtext import math_to_image  # noqa: E402


def test_exact_cw_json_equals_the_formula():
    result = run("exact", "--system", "cw", "-N", "500", "--beta", "1.3", "--h", "0.1", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    reference = curie_weiss_exact(500, 1.3, 1.0, 0.1)
    for key in ("log_z", "free_energy", "energy", "entropy", "magnetization_abs"):
        assert record[key] == pytest.approx(getattr(reference, key), rel=1e-12, abs=1e-12)
    assert record["N"] == 500 and record["beta"] == 1.3 and record["system"] == "cw"


def test_exact_sk_text_equals_enumeration():
    result = run("exact", "--system", "sk", "-N", "10", "--beta", "2", "--seed", "4")
    assert result.exit_code == 0, result.output
    reference = enumerate_exact(systems.sherrington_kirkpatrick(10, seed=4), 2.0)
    values = dict(line.split()[:2] for line in result.stdout.splitlines()[1:])
    assert float(values["free_energy"]) == pytest.approx(reference.free_energy, rel=1e-13)
    assert float(values["log_z"]) == pytest.approx(reference.log_z, rel=1e-13)


@pytest.mark.parametrize("suffix", [".npz", ".txt"])
def test_exact_general_from_a_couplings_file(tmp_path, suffix):
    hamiltonian = systems.sherrington_kirkpatrick(8, seed=1, h=0.2)
    path = tmp_path / f"couplings{suffix}"
    systems.from_couplings(hamiltonian.J, hamiltonian.h).save(path)
    result = run("exact", "--system", "general", "--couplings", str(path), "--json")
    assert result.exit_code == 0, result.output
    expected = enumerate_exact(hamiltonian, 1.0).free_energy
    assert json.loads(result.stdout)["free_energy"] == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("system", ["general", "cw", "sk"])
@pytest.mark.parametrize("fmt", ["latex", "text"])
def test_derive_prints_both_sections(system, fmt):
    result = run("derive", "--system", system, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert "Exact autoregressive conditional" in result.stdout
    assert "Reduced form" in result.stdout
    if fmt == "latex":
        assert r"\begin{align*}" in result.stdout
        assert r"\sigma\left(" in result.stdout


@pytest.mark.parametrize(
    "system, variant, k",
    [
        ("cw", "exact", 1),
        ("cw", "inf", 1),
        ("sk", "rs", 1),
        ("sk", "krsb", 3),
        ("general", "exact", 1),
    ],
)
def test_derive_latex_lines_render_with_mathtext(system, variant, k):
    result = run("derive", "--system", system, "--variant", variant, "-k", str(k))
    assert result.exit_code == 0, result.output
    equations = [
        line.strip().removesuffix(r"\\").replace("&=", "=")
        for line in result.stdout.splitlines()
        if line.startswith("  ")
    ]
    assert len(equations) >= 4
    for equation in equations:
        math_to_image(f"${equation}$", io.BytesIO(), format="png")


def test_derive_substitutes_n():
    result = run("derive", "--system", "cw", "-N", "100", "--format", "text")
    assert result.exit_code == 0, result.output
    assert "n = 99 - i" in result.stdout


def test_derive_png_and_out_files(tmp_path):
    png = tmp_path / "sk.png"
    result = run("derive", "--system", "sk", "--format", "png", "--out", str(png))
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tex = tmp_path / "cw.tex"
    result = run("derive", "--system", "cw", "--out", str(tex))
    assert result.exit_code == 0 and r"\begin{align*}" in tex.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cw.tex", "sk.png"]  # no temp files


def test_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1 0.5\n0 1\n")
    asym = tmp_path / "asym.npz"
    np.savez(asym, J=np.array([[0.0, 1.0], [2.0, 0.0]]), h=np.zeros(2))
    cases = [
        (("exact", "--system", "ising"), 2, "'ising' is not one of"),
        (("derive", "--system", "sk", "--variant", "inf"), 1, "unknown variant 'inf'"),
        (("derive", "--system", "cw", "--variant", "wrong"), 2, "'wrong' is not one of"),
        (("exact", "--system", "cw", "-N", "0"), 1, "N must be an integer >= 1"),
        (("derive", "--system", "cw", "-N", "0"), 1, "N must be an integer >= 1"),
        (("derive", "--system", "sk", "-k", "-1"), 1, "RSB depth k must be an integer >= 0"),
        (("exact", "--system", "cw", "--beta", "0"), 1, "beta must be a finite number > 0"),
        (("exact", "--system", "cw", "--beta", "nan"), 1, "beta must be a finite number > 0"),
        (("exact", "--system", "cw", "--beta", "inf"), 1, "beta must be a finite number > 0"),
        (("exact", "--system", "sk", "-N", "25"), 1, "limited to N <= 24"),
        (("derive", "--system", "general", "--variant", "exact", "-N", "21"), 1, "N <= 20"),
        (("exact", "--system", "general"), 1, "needs --couplings"),
        (("exact", "--system", "sk", "--couplings", str(bad)), 1, "applies to --system general"),
        (
            ("exact", "--system", "general", "--couplings", str(tmp_path / "none.npz")),
            1,
            "does not exist",
        ),
        (("exact", "--system", "general", "--couplings", str(bad)), 1, "line 2"),
        (("exact", "--system", "general", "--couplings", str(asym)), 1, "symmetric"),
        (("derive", "--system", "sk", "--format", "png"), 2, "needs --out"),
        (("exact", "--system", "cw", "-N", "abc"), 2, "'abc' is not a valid integer"),
    ]
    for args, code, fragment in cases:
        assert_one_line_error(run(*args), code, fragment)


def test_version_and_help():
    assert run("--version").stdout.startswith("arnn-gen, version ")
    result = run("--help")
    assert result.exit_code == 0 and "derive" in result.stdout and "exact" in result.stdout


def test_emit_writes_module_and_sidecar(tmp_path):
    out = tmp_path / "gen"
    result = run("emit", "--system", "sk", "-N", "12", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out / "sk_krsb1_n12.py")
    assert sorted(p.name for p in out.iterdir()) == ["sk_krsb1_n12.npz", "sk_krsb1_n12.py"]
    header = (out / "sk_krsb1_n12.py").read_text().splitlines()
    assert header[0].startswith("# @generated by arnn-gen")
    assert header[4] == (
        "# Remake with: arnn-gen emit --system sk --variant krsb -N 12 -k 1 --beta 1.0 "
        "--J 1.0 --h 0.0 --seed 0"
    )
    # the same emission again is refused without --force, accepted with it
    assert_one_line_error(
        run("emit", "--system", "sk", "-N", "12", "--out", str(out)), 1, "use --force"
    )
    again = run("emit", "--system", "sk", "-N", "12", "--out", str(out), "--force")
    assert again.exit_code == 0, again.output
    named = run("emit", "--system", "sk", "-N", "12", "--out", str(out), "--name", "mine")
    assert named.exit_code == 0 and (out / "mine.py").exists() and (out / "mine.npz").exists()


def test_emit_errors(tmp_path):
    cases = [
        (("emit", "--system", "sk", "--variant", "inf"), 1, "unknown variant 'inf'"),
        (("emit", "--system", "sk", "-N", "0"), 1, "N must be an integer >= 1"),
        (("emit", "--system", "sk", "-k", "-2"), 1, "RSB depth k must be an integer >= 0"),
        (("emit", "--system", "sk", "--beta", "-1"), 1, "beta must be a finite number > 0"),
        (("emit", "--system", "sk", "--variant", "exact", "-N", "21"), 1, "N <= 20"),
        (("emit", "--system", "general"), 1, "needs --couplings"),
        (("emit", "--system", "sk", "--name", "not-a-name"), 1, "Python identifier"),
        (
            ("emit", "--system", "general", "--couplings", str(tmp_path / "missing.txt")),
            1,
            "does not exist",
        ),
    ]
    for args, code, fragment in cases:
        assert_one_line_error(run(*args, "--out", str(tmp_path / "out")), code, fragment)
    assert not (tmp_path / "out").exists()  # nothing half-written
