"""What docs/reliability.md promises, case by case through the command line: bounded
resources, escaped emission, modules and sidecars written as one unit, identity checks on
resume and sampling, run folders never replaced silently, and the documented exit codes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from arnn_gen import checks, files, systems
from arnn_gen.cli import main
from arnn_gen.codegen.emit import load_module
from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import curie_weiss_mean_field
from arnn_gen.pipeline import build_system, lower, shell_word


def run(*args) -> object:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def one_line(result, code: int, fragment: str = "") -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("arnn-gen: error: "), lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def no_temporaries(folder: Path) -> None:
    left = [
        p.name for p in folder.rglob("*") if p.name.endswith(".tmp") or p.name.startswith("tmp")
    ]
    assert not left, left


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """SK N = 8 modules: krsb1 of instances 0 and 1, and rs of instance 0."""
    folder = tmp_path_factory.mktemp("modules")
    made = {}
    for key, options in {
        "seed0": ("--seed", "0", "--out", folder / "a"),
        "seed1": ("--seed", "1", "--out", folder / "b"),
        "rs": ("--variant", "rs", "--out", folder / "c"),
    }.items():
        result = run("emit", "--system", "sk", "-N", "8", *options)
        assert result.exit_code == 0, result.output
        made[key] = Path(result.stdout.strip())
    return made


TRAIN = ("--beta", "0.3", "--steps-per-beta", "3", "--batch", "40", "--eval-samples", "80",
         "--quiet")  # fmt: skip


@pytest.fixture(scope="module")
def trained(modules, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    result = run("train", modules["seed0"], *TRAIN, "--out", run_dir)
    assert result.exit_code == 0, result.output
    return run_dir


# -- bounds ------------------------------------------------------------------------------


def test_bounds_an_edge_list_is_sized_before_its_matrix(tmp_path):
    """An edge list is read sparse: 30001 spins of one coupling are exact by frontier
    elimination and emit the frontier network, with no [N, N] matrix anywhere; a declared
    N beyond MAX_SPINS is refused before anything of that size exists."""
    path = tmp_path / "f.txt"
    path.write_text("0 30000 1.0\n")
    start = time.perf_counter()
    result = run("exact", "--system", "general", "--couplings", path)
    assert result.exit_code == 0 and "frontier elimination" in result.stdout, result.output
    result = run("emit", "--system", "general", "--couplings", path, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    path.write_text("N 100000000\n0 1 1.0\n")
    one_line(run("emit", "--system", "general", "--couplings", path, "--out", tmp_path), 1,
             f"N <= {checks.MAX_SPINS}")  # fmt: skip
    assert time.perf_counter() - start < 20


def test_bounds_an_npz_is_sized_from_its_header(tmp_path):
    # An archive whose J header declares 10^6 x 10^6 float64 (8 TB) but holds no data.
    path = tmp_path / "huge.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_2_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("J.npy", b"\x93NUMPY\x02\x00" + header.getvalue()[8:])
    one_line(run("emit", "--system", "general", "--couplings", path, "--out", tmp_path), 1,
             "N = 1000000")  # fmt: skip
    with pytest.raises(ArnnGenError, match="limited to N <= 24"):
        systems.load(path, max_n=24)


def test_bounds_curie_weiss_at_a_million_spins_in_o_n(tmp_path):
    result = run("exact", "--system", "cw", "-N", "1000000", "--beta", "1.2", "--json")
    assert result.exit_code == 0, result.output
    import json

    free_energy = json.loads(result.stdout)["free_energy"]
    # The mean-field (N -> infinity) free energy, computed independently, to O(log N / N).
    assert free_energy == pytest.approx(curie_weiss_mean_field(1.2).free_energy, abs=1e-4)
    # The system of the pipeline holds three numbers, not a matrix of 10^12 entries.
    system = build_system("cw", 1_000_000, default_n=100)
    assert isinstance(system, systems.CurieWeiss)
    assert system.signature() == systems.CurieWeiss(1_000_000).signature()
    stages = lower("cw", variant="inf", N=1_000_000)
    assert stages.ir.N == 1_000_000


@pytest.mark.parametrize(
    "args, fragment",
    [
        (
            ("exact", "--system", "sk", "-N", "1000000000000000000000"),
            "N must be an integer <= 1000000",
        ),
        (("exact", "--system", "sk", "-N", "30"), "N <= 24"),
        (("emit", "--system", "sk", "-N", "20000"), f"N <= {checks.MAX_DENSE_N}"),
        (("emit", "--system", "cw", "-N", "20000"), "CW_N"),
        (("emit", "--system", "sk", "-N", "10", "-k", "99"), "k must be an integer <= 14"),
        (
            (
                "mcmc",
                "--system",
                "sk",
                "-N",
                "10",
                "-n",
                "100000000000",
                "--beta",
                "1",
                "--sweeps",
                "1",
                "--out",
                "m.npy",
            ),
            "-n must be an integer <= 100000000",
        ),  # fmt: skip
        (
            (
                "mcmc",
                "--system",
                "sk",
                "-N",
                "100",
                "-n",
                "10000000",
                "--beta",
                "1",
                "--sweeps",
                "1",
                "--out",
                "m.npy",
            ),
            "chains",
        ),  # fmt: skip
    ],
)
def test_bounds_one_line_before_allocation(args, fragment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    one_line(run(*args), 1, fragment)


def test_bounds_of_training_and_sampling(modules, tmp_path):
    module = modules["seed0"]
    one_line(run("train", module, "--beta", "1", "--beta-step", "1e-12", "--out", tmp_path / "r"),
             1, "the limit is 100000")  # fmt: skip
    one_line(run("train", module, "--beta", "1", "--batch", "100000000", "--out", tmp_path / "r"),
             1, "spins per step")  # fmt: skip
    one_line(run("sample", module, "-n", "200000000", "--out", tmp_path / "s.npy"), 1,
             "-n must be an integer <= 100000000")  # fmt: skip
    with pytest.raises(ArnnGenError, match="spins per call"):
        checks.check_samples("-n", 10**7, 1000)
    zero = run("sample", module, "-n", "0", "--out", tmp_path / "s.npy")
    one_line(zero, 1, "-n must be an integer >= 1")
    assert not (tmp_path / "r").exists()


def test_bounds_beta_start_above_beta_is_refused(modules, tmp_path):
    one_line(run("train", modules["seed0"], "--beta", "0.5", "--beta-start", "0.8",
                 "--out", tmp_path / "r"), 1, "--beta-start 0.8 is above --beta 0.5")  # fmt: skip


# -- escaping ----------------------------------------------------------------------------


def test_emit_header_escapes_a_path_with_newlines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hostile = 'x\n__import__("pathlib").Path("INJECTED").touch()\n#.npz'
    systems.save(systems.sherrington_kirkpatrick(5, seed=2), hostile)
    result = run("emit", "--system", "general", "--couplings", hostile, "--out", "out")
    assert result.exit_code == 0, result.output
    source = Path(result.stdout.strip()).read_text()
    header = [line for line in source.splitlines() if line.startswith("# Remake with:")]
    assert len(header) == 1 and "INJECTED" in header[0]
    module = load_module(result.stdout.strip())
    module.Model()
    assert not (tmp_path / "INJECTED").exists()
    # The recorded word is the path again when a shell reads it.
    word = shell_word(hostile)
    echoed = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, text=True)
    assert echoed.stdout == hostile


def test_emit_header_quotes_spaces_and_quotes():
    for text in ["a b.npz", "it's.npz", 'say "hi".npz', "plain.npz", "tab\there", "é.npz"]:
        echoed = subprocess.run(
            ["bash", "-c", f"printf %s {shell_word(text)}"], capture_output=True, text=True
        )
        assert echoed.stdout == text
        assert "\n" not in shell_word(text)


@pytest.mark.parametrize("name", ["class", "match", "math", "torch", "sys", "not-an-id", "a\nb"])
def test_name_must_be_a_safe_identifier(name, tmp_path):
    one_line(run("emit", "--system", "sk", "-N", "6", "--name", name, "--out", tmp_path), 1,
             "--name")  # fmt: skip
    assert not list(tmp_path.iterdir())


# -- files -------------------------------------------------------------------------------


def test_emit_force_that_fails_keeps_the_old_pair(tmp_path):
    out = tmp_path / "out"
    first = run("emit", "--system", "sk", "-N", "6", "--seed", "0", "--out", out)
    assert first.exit_code == 0
    sidecar = out / "sk_krsb1_n6.npz"
    old_sidecar = sidecar.read_bytes()
    module = out / "sk_krsb1_n6.py"
    module.unlink()
    module.mkdir()  # the .py path is a directory: the emit must fail before any rename
    one_line(run("emit", "--system", "sk", "-N", "6", "--seed", "1", "--out", out, "--force"), 1,
             "is a directory")  # fmt: skip
    assert sidecar.read_bytes() == old_sidecar
    no_temporaries(out)


def test_replace_together_restores_the_old_files_when_a_rename_fails(tmp_path, monkeypatch):
    targets = [tmp_path / "m.npz", tmp_path / "m.py"]
    for target in targets:
        target.write_bytes(b"old " + target.name.encode())
    staged = []
    for target in targets:
        with files.stage(target) as (handle, temporary):
            handle.write(b"new " + target.name.encode())
        staged.append((temporary, target))
    real_replace, calls = os.replace, []

    def failing_replace(source, destination):
        calls.append(destination)
        if Path(destination) == targets[1] and len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ArnnGenError, match=r"cannot write .*m\.py: No space left"):
        files.replace_together(staged)
    monkeypatch.setattr(os, "replace", real_replace)
    assert [t.read_bytes() for t in targets] == [b"old m.npz", b"old m.py"]
    no_temporaries(tmp_path)


def test_stale_temporaries_of_a_killed_process_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".sk_krsb1_n6.py.{dead.pid}.abc123.tmp"
    stale.write_bytes(b"partial")
    alive = tmp_path / f".other.py.{os.getppid()}.abc123.tmp"  # a running process: kept
    alive.write_bytes(b"in progress")
    result = run("emit", "--system", "sk", "-N", "6", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert not stale.exists() and alive.exists()
    # Readers never take a temporary for a result.
    assert sorted(p.name for p in tmp_path.glob("*.py")) == ["sk_krsb1_n6.py"]


def test_sigterm_during_emit_removes_the_temporaries(tmp_path, monkeypatch):
    from arnn_gen import systems as module

    real = module.write_npz

    def write_then_terminate(hamiltonian, handle):
        real(hamiltonian, handle)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(module, "write_npz", write_then_terminate)
    result = run("emit", "--system", "sk", "-N", "6", "--out", tmp_path)
    one_line(result, 143, "terminated")
    assert not list(tmp_path.iterdir())


def test_run_folder_is_never_replaced_silently(modules, trained):
    checkpoint = (trained / "checkpoint.pt").read_bytes()
    one_line(run("train", modules["seed0"], *TRAIN, "--out", trained), 1, "--resume")
    assert (trained / "checkpoint.pt").read_bytes() == checkpoint
    samples = trained.parent / "samples.npy"
    assert run("sample", modules["seed0"], "-n", "50", "--out", samples).exit_code == 0
    fit_dir = trained.parent / "fit"
    assert run("fit", modules["seed0"], samples, "--epochs", "1", "--out", fit_dir,
               "--quiet").exit_code == 0  # fmt: skip
    one_line(run("fit", modules["seed0"], samples, "--epochs", "1", "--out", fit_dir), 1,
             "--force")  # fmt: skip
    replaced = run("fit", modules["seed0"], samples, "--epochs", "1", "--out", fit_dir,
                   "--force", "--quiet")  # fmt: skip
    assert replaced.exit_code == 0, replaced.output


# -- identity ----------------------------------------------------------------------------


def test_identity_resume_with_another_instance_is_refused(modules, trained):
    line = one_line(run("train", modules["seed1"], *TRAIN, "--resume", trained), 1, "Hamiltonian")
    recorded = lower("sk", variant="krsb", N=8, k=1, seed=0).hamiltonian.signature()[:16]
    current = lower("sk", variant="krsb", N=8, k=1, seed=1).hamiltonian.signature()[:16]
    assert recorded in line and current in line


@pytest.mark.parametrize("state", ["checkpoint.pt", "model.pt"])
def test_identity_sample_with_another_module_is_refused(modules, trained, state, tmp_path):
    one_line(run("sample", modules["seed1"], "--checkpoint", trained / state, "-n", "5",
                 "--out", tmp_path / "s.npy"), 1, "Hamiltonian")  # fmt: skip
    one_line(run("sample", modules["rs"], "--checkpoint", trained / state, "-n", "5",
                 "--out", tmp_path / "s.npy"), 1, "architecture")  # fmt: skip
    ok = run("sample", modules["seed0"], "--checkpoint", trained / state, "-n", "5",
             "--out", tmp_path / "s.npy")  # fmt: skip
    assert ok.exit_code == 0, ok.output


def test_identity_a_sidecar_of_another_system_is_refused(tmp_path):
    out = tmp_path / "out"
    assert run("emit", "--system", "sk", "-N", "6", "--seed", "0", "--out", out).exit_code == 0
    other = tmp_path / "other"
    assert run("emit", "--system", "sk", "-N", "6", "--seed", "1", "--out", other).exit_code == 0
    (out / "sk_krsb1_n6.npz").write_bytes((other / "sk_krsb1_n6.npz").read_bytes())
    one_line(run("sample", out / "sk_krsb1_n6.py", "-n", "5", "--out", tmp_path / "s.npy"), 1,
             "signature")  # fmt: skip


# -- exit codes of bad input -------------------------------------------------------------


def test_bad_sample_files_to_fit(modules, tmp_path):
    module = modules["seed0"]
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 8), dtype=np.int8))
    one_line(run("fit", module, empty, "--out", tmp_path / "f1"), 1, "no samples")
    mislabelled = tmp_path / "archive.npy"
    with open(mislabelled, "wb") as handle:
        np.savez(handle, x=np.ones((4, 8)))
    one_line(run("fit", module, mislabelled, "--out", tmp_path / "f2"), 1, "not a .npy")
    wrong_width = tmp_path / "wide.npy"
    np.save(wrong_width, np.ones((4, 9), dtype=np.int8))
    one_line(run("fit", module, wrong_width, "--out", tmp_path / "f3"), 1, "N = 8")


@pytest.mark.parametrize("damage", ["garbage", "nan", "shape", "empty"])
def test_damaged_sidecar(damage, tmp_path):
    out = tmp_path / "out"
    assert run("emit", "--system", "sk", "-N", "6", "--out", out).exit_code == 0
    sidecar = out / "sk_krsb1_n6.npz"
    if damage == "garbage":
        sidecar.write_bytes(b"\x00garbage" * 20)
    elif damage == "empty":
        sidecar.write_bytes(b"")
    else:
        J = np.full((6, 6), np.nan) if damage == "nan" else np.zeros((5, 5))  # noqa: N806
        np.savez(sidecar, J=J, h=np.zeros(len(J)))
    module = out / "sk_krsb1_n6.py"
    one_line(run("sample", module, "-n", "5", "--out", tmp_path / "s.npy"), 1, "sk_krsb1_n6")
    one_line(run("train", module, *TRAIN, "--out", tmp_path / "r"), 1, "sk_krsb1_n6")


def test_a_checkpoint_of_another_size(trained, tmp_path):
    result = run("emit", "--system", "sk", "-N", "9", "--out", tmp_path)
    line = one_line(run("sample", result.stdout.strip(), "--checkpoint", trained / "model.pt",
                        "-n", "5", "--out", tmp_path / "s.npy"), 1, "N")  # fmt: skip
    assert len(line) < 300


def test_a_state_without_identity_that_does_not_fit(trained, tmp_path):
    state = torch.load(trained / "model.pt", weights_only=True)
    bare = tmp_path / "bare.pt"
    torch.save({"J": state["J"][:3, :3]} if "J" in state else {"x": torch.zeros(1)}, bare)
    result = run("emit", "--system", "sk", "-N", "8", "--out", tmp_path)
    line = one_line(run("sample", result.stdout.strip(), "--checkpoint", bare, "-n", "5",
                        "--out", tmp_path / "s.npy"), 1, "does not fit")  # fmt: skip
    assert len(line) < 300


def test_an_empty_checkpoint(modules, tmp_path):
    empty = tmp_path / "checkpoint.pt"
    empty.write_bytes(b"")
    line = one_line(run("sample", modules["seed0"], "--checkpoint", empty, "-n", "5",
                        "--out", tmp_path / "s.npy"), 1, "cannot read checkpoint")  # fmt: skip
    assert not line.endswith(":")


@pytest.mark.parametrize(
    "source", ["def broken(:\n", "raise RuntimeError('boom')\n", "Model = 3\n", "x = 1\n"]
)
def test_a_module_that_does_not_load(source, tmp_path):
    module = tmp_path / "bad.py"
    module.write_text(source)
    one_line(run("sample", module, "-n", "5", "--out", tmp_path / "s.npy"), 1, "bad.py")


def test_non_finite_exact_results_are_errors():
    one_line(run("exact", "--system", "cw", "-N", "10", "--J", "1e300", "--beta", "1e10"), 1,
             "not finite")  # fmt: skip


def test_reproduce_cw_has_no_instances(tmp_path):
    one_line(run("reproduce", "cw", "--quick", "--instances", "0", "--out", tmp_path), 1,
             "--instances is for sk")  # fmt: skip


def test_errors_name_the_target_never_a_temporary(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as a user who can write into read-only folders")
        line = one_line(run("emit", "--system", "sk", "-N", "6", "--out", out), 1, "cannot write")
        assert ".tmp" not in line
    finally:
        out.chmod(0o755)


def test_an_npz_without_h_means_zero_fields(tmp_path):
    path = tmp_path / "j.npz"
    J = systems.sherrington_kirkpatrick(5, seed=3).J  # noqa: N806
    np.savez(path, J=J)
    loaded = systems.load(path)
    assert np.array_equal(loaded.h, np.zeros(5)) and np.array_equal(loaded.J, J)


def test_a_full_disk_names_the_target_never_a_temporary(tmp_path, monkeypatch):
    def full(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    line = one_line(run("emit", "--system", "sk", "-N", "6", "--out", tmp_path), 1,
                    "No space left on device")  # fmt: skip
    assert "sk_krsb1_n6" in line and ".tmp" not in line
    assert not list(tmp_path.iterdir())


def test_seeds_beyond_the_generators_range(modules, tmp_path):
    huge = str(2**64)
    one_line(run("sample", modules["seed0"], "-n", "3", "--seed", huge, "--out", tmp_path / "s"),
             1, "--seed must be an integer <=")  # fmt: skip
    one_line(run("mcmc", "--system", "sk", "-N", "5", "-n", "3", "--beta", "1", "--sweeps", "1",
                 "--chain-seed", huge, "--out", tmp_path / "m"), 1, "--chain-seed")  # fmt: skip
    one_line(run("train", modules["seed0"], *TRAIN, "--seed", huge, "--out", tmp_path / "r"), 1,
             "--seed")  # fmt: skip


def test_fit_epochs_and_eval_samples_are_bounded_before_any_work(modules, tmp_path):
    samples = tmp_path / "x.npy"
    np.save(samples, np.ones((4, 8), dtype=np.int8))
    one_line(run("fit", modules["seed0"], samples, "--epochs", "10000000000", "--batch", "1",
                 "--out", tmp_path / "f"), 1, "--epochs")  # fmt: skip
    one_line(run("train", modules["seed0"], "--beta", "0.3", "--eval-samples", "1",
                 "--out", tmp_path / "r"), 1, "eval_samples must be >= 2")  # fmt: skip
    assert not (tmp_path / "f").exists() and not (tmp_path / "r").exists()


def test_derive_never_overwrites_without_force(tmp_path):
    existing = tmp_path / "existing.txt"
    existing.write_text("keep")
    one_line(run("derive", "--system", "cw", "--out", existing), 1, "--force")
    assert existing.read_text() == "keep"
    assert run("derive", "--system", "cw", "--out", existing, "--force").exit_code == 0
    assert existing.read_text() != "keep"


@pytest.mark.parametrize("members", [{"J": b"raw bytes"}, {"J.npy": None, "kind": b"raw"}])
def test_an_npz_with_members_that_are_not_arrays(members, tmp_path):
    path = tmp_path / "c.npz"
    valid = io.BytesIO()
    np.save(valid, np.zeros((3, 3)))
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, valid.getvalue() if data is None else data)
    one_line(run("exact", "--system", "general", "--couplings", path), 1, "c.npz")
