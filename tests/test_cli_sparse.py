"""The sparse systems on the command line: emit, exact, derive and mcmc with the lattice,
graph and couplings-file options, and every error message of those options."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_runner import assert_one_line_error, run

from arnn_gen import systems
from arnn_gen.codegen.emit import load_module
from arnn_gen.exact import enumerate_exact, kaufman_log_z


def test_emit_lattice_default_name_and_remake_command(tmp_path):
    result = run("emit", "--system", "ea2d", "-L", "4", "-W", "3", "--boundary", "open",
                 "--seed", "2", "--out", str(tmp_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    path = tmp_path / "ea2d_krsb1_n12.py"
    assert result.stdout.strip() == str(path)
    header = path.read_text().splitlines()[4]
    assert "-L 4 -W 3 --boundary open" in header and "--order natural" in header
    assert "-N" not in header
    model = load_module(path).Model()
    expected = systems.ea2d(4, 3, boundary="open", seed=2)
    x = model.sample(8)
    assert np.allclose(model.energy(x).double().numpy(), expected.energy(x).numpy(), atol=1e-5)


def test_emit_gset_graph_takes_the_frontier_network_in_rcm_order(tmp_path):
    """A ring of 30 sites labelled at random: natural order is wide, reverse Cuthill-McKee
    narrow; the module records the order and takes spins in the file's labels."""
    rng = np.random.default_rng(0)
    labels = rng.permutation(30) + 1
    lines = ["30 30"] + [f"{labels[i]} {labels[(i + 1) % 30]} 1" for i in range(30)]
    path = tmp_path / "ring.gset"
    path.write_text("\n".join(lines) + "\n")
    result = run("emit", "--system", "general", "--couplings", str(path), "--variant", "rs",
                 "--out", str(tmp_path / "out"))  # fmt: skip
    assert result.exit_code == 0, result.output
    module = load_module(result.stdout.strip())
    assert module.Model.SITE_ORDER == "rcm"
    model = module.Model()
    assert model.width <= 3
    hamiltonian = systems.read_couplings(str(path))
    assert np.allclose(hamiltonian.weights, -1.0)  # MaxCut: J_ij = -w_ij
    x = model.sample(16)
    assert np.allclose(model.energy(x).double().numpy(), hamiltonian.energy(x).numpy(), atol=1e-5)


def test_exact_lattice_by_frontier_elimination_equals_enumeration():
    result = run("exact", "--system", "ea2d", "-L", "4", "--seed", "3", "--beta", "0.7", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["method"] == "frontier elimination" and record["N"] == 16
    reference = enumerate_exact(systems.ea2d(4, 4, seed=3).to_dense(), 0.7)
    for key in ("log_z", "free_energy", "energy", "entropy", "magnetization_abs"):
        assert record[key] == pytest.approx(getattr(reference, key), rel=1e-10, abs=1e-12)


def test_exact_periodic_ising_torus_by_kaufman():
    result = run("exact", "--system", "ising2d", "-L", "16", "--beta", "0.5")
    assert result.exit_code == 0, result.output
    assert "kaufman" in result.stdout and "magnetization_abs n/a" in result.stdout
    record = json.loads(run("exact", "--system", "ising2d", "-L", "16", "--beta", "0.5",
                            "--json").stdout)  # fmt: skip
    assert record["log_z"] == pytest.approx(kaufman_log_z(16, 16, 0.5), rel=1e-14)
    assert record["magnetization_abs"] is None


def test_emit_exact_strip_is_exact_against_arnn_gen_exact(tmp_path):
    """The exact network of a 30 x 5 open strip (N = 150, frontier width 4): log Q(x) +
    beta H(x) = -log Z for every sample, log Z from arnn-gen exact (frontier elimination)."""
    options = ("--system", "ea2d", "-L", "30", "-W", "5", "--boundary", "open", "--seed", "4")
    result = run("emit", *options, "--variant", "exact", "--beta", "0.8", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    model = load_module(result.stdout.strip()).Model()
    record = json.loads(run("exact", *options, "--beta", "0.8", "--json").stdout)
    x = model.sample(64)
    residual = model.log_prob(x) + 0.8 * model.energy(x) + record["log_z"]
    assert residual.abs().max().item() < 1e-8 * 150


def test_derive_shows_the_frontier():
    result = run("derive", "--system", "ea2d", "--format", "text")
    assert result.exit_code == 0, result.output
    assert "(l in F+_i)" in result.stdout
    assert "F_i = { l > i : J_sl != 0 for some s < i }" in result.stdout


def test_mcmc_on_a_lattice(tmp_path):
    out = tmp_path / "chains.npy"
    result = run("mcmc", "--system", "ea3d", "-L", "3", "-n", "20", "--beta", "0.5",
                 "--sweeps", "5", "--out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.output
    samples = np.load(out)
    assert samples.shape == (20, 27) and set(np.unique(samples)) <= {-1, 1}


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (("emit", "--system", "ea2d", "-N", "16"), 1, "takes its size from -L"),
        (("emit", "--system", "sk", "-L", "4"), 1, "-L and -W apply to the lattices"),
        (("emit", "--system", "ea3d", "-L", "3", "-W", "4"), 1, "-W does not apply"),
        (("emit", "--system", "ea2d", "-L", "2"), 1, "periodic"),
        (("emit", "--system", "sk", "--order", "rcm"), 1, "--order applies to sparse systems"),
        (("emit", "--system", "sk", "--format", "gset"), 1, "--format applies to a --couplings"),
        (("emit", "--system", "ea2d", "--boundary", "twisted"), 2, "--boundary"),
        (("emit", "--system", "rrg", "-N", "7", "--degree", "3"), 1, "even"),
        (("emit", "--system", "ea2d", "-L", "2000"), 1, "limit"),
        (("exact", "--system", "ea2d", "-L", "30"), 1, "width"),
        (("emit", "--system", "ea2d", "-L", "12", "--variant", "exact"), 1, "width <= 20"),
        (
            (
                "emit",
                "--system",
                "ea2d",
                "-L",
                "100",
                "-W",
                "21",
                "--boundary",
                "open",
                "--variant",
                "exact",
            ),
            1,
            "sum_i 2^|F_i| <= 67108864",
        ),
        (("emit", "--system", "rrg", "-N", "100", "--degree", "8"), 1, "use degree <= 6"),
        (("emit", "--system", "ea2d", "--J", "3"), 1, "--J does not apply to --system ea2d"),
        (("emit", "--system", "sk", "--boundary", "open"), 1, "--boundary does not apply"),
        (("exact", "--system", "ising2d", "-L", "4", "--seed", "2"), 1, "--seed does not apply"),
        (
            (
                "mcmc",
                "--system",
                "ea2d",
                "-n",
                "2",
                "--beta",
                "1",
                "--sweeps",
                "1",
                "--out",
                "x.npy",
                "--degree",
                "4",
            ),
            1,
            "--degree does not apply",
        ),
        (("emit", "--system", "ea2d", "-L", "300"), 1, "parameters; the limit is"),
    ],
)
def test_errors_are_one_line(args, code, fragment):
    assert_one_line_error(run(*args), code, fragment)
