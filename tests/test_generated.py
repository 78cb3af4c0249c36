"""generated/ holds the emitted modules of every system/variant default (DESIGN.md): they
re-emit byte for byte, independently of PYTHONHASHSEED, and stay ruff-formatted.

Regenerate them after a template or emitter change with

    python -m arnn_gen.codegen.regenerate
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from arnn_gen.cli import main
from arnn_gen.codegen.emit import load_module, write_module
from arnn_gen.codegen.regenerate import CANONICAL
from arnn_gen.pipeline import lower

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated"
CANONICAL = list(CANONICAL)


def emit_into(out: Path, arguments: str) -> Path:
    result = CliRunner().invoke(main, ["emit", *shlex.split(arguments), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip())


@pytest.fixture(scope="module", autouse=True)
def at_root():
    cwd = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(cwd)


@pytest.mark.parametrize("stem, arguments", CANONICAL, ids=[stem for stem, _ in CANONICAL])
def test_golden_file_reemits_identically(tmp_path, stem, arguments):
    path = emit_into(tmp_path, arguments)
    assert path.name == f"{stem}.py"
    assert path.read_bytes() == (GENERATED / f"{stem}.py").read_bytes()
    sidecar = GENERATED / f"{stem}.npz"
    assert sidecar.exists() == (tmp_path / f"{stem}.npz").exists()
    if sidecar.exists():
        assert sidecar.read_bytes() == (tmp_path / f"{stem}.npz").read_bytes()
        with np.load(sidecar) as golden, np.load(tmp_path / f"{stem}.npz") as fresh:
            assert golden.files == fresh.files
            for name in golden.files:
                assert np.array_equal(golden[name], fresh[name])


def test_nothing_else_in_generated():
    expected = {f"{stem}.py" for stem, _ in CANONICAL}
    # Curie-Weiss CW_N and CW_inf embed their two numbers; every other module has a sidecar
    embedded = {"cw_exact_n100", "cw_inf_n100"}
    expected |= {f"{stem}.npz" for stem, _ in CANONICAL if stem not in embedded}
    assert {p.name for p in GENERATED.iterdir() if p.is_file()} == expected


def test_header_command_remakes_the_file(tmp_path):
    """The header's 'Remake with' line, run as written, gives the same bytes."""
    for stem in ("sk_krsb1_n100", "general_exact_n8", "ea2d_krsb1_n100", "rrg_krsb1_n100"):
        header = (GENERATED / f"{stem}.py").read_text().splitlines()[4]
        command = header.removeprefix("# Remake with: arnn-gen emit ")
        assert header != command
        assert emit_into(tmp_path, command).read_bytes() == (GENERATED / f"{stem}.py").read_bytes()


def test_another_hash_seed_gives_the_same_bytes(tmp_path):
    stem, arguments = CANONICAL[7]
    out = tmp_path / "other"
    command = [sys.executable, "-m", "arnn_gen.cli", "emit", *shlex.split(arguments)]
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([*command, "--out", str(out)], cwd=ROOT, env=env, check=True,
                   capture_output=True)  # fmt: skip
    assert (out / f"{stem}.py").read_bytes() == (GENERATED / f"{stem}.py").read_bytes()


def test_generated_files_are_ruff_formatted():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    files = sorted(str(p) for p in GENERATED.glob("*.py"))
    done = subprocess.run(
        [ruff, "format", "--check", "--diff", *files], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("system", "options"),
    [
        ("sk", {"N": 12, "backend": "triton"}),
        ("sk", {"N": 12, "variant": "rs", "backend": "triton"}),
        ("rrg", {"N": 12, "k": 2, "backend": "triton"}),
        ("cw", {"N": 12, "variant": "inf", "J": (0.5, 1.0), "h": (0.0, 0.1)}),
        ("sk", {"N": 12, "instances": "0-2", "backend": "triton"}),
        ("sk", {"N": 12, "instances": "3"}),
        ("cw", {"N": 12, "variant": "inf", "h": (0.2,)}),
    ],
    ids=[
        "sk-triton",
        "sk-rs-triton",
        "rrg-triton",
        "cw-inf-instances",
        "sk-instances-triton",
        "sk-one-instance",
        "cw-one-instance",
    ],  # fmt: skip
)
def test_modules_not_in_generated_are_ruff_formatted_too(tmp_path, system, options):
    """The emitted modules outside generated/ (the Triton backend, Curie-Weiss instances)
    are left as they are by ruff format as well."""
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    stages = lower(system, **options)
    path = write_module(stages.ir, stages.source, stages.hamiltonian, tmp_path)
    done = subprocess.run([ruff, "format", "--check", "--diff", str(path)], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("stem", [stem for stem, _ in CANONICAL])
def test_generated_modules_import_and_sample(tmp_path, stem):
    """Each committed module works copied alone (with its sidecar) into an empty folder."""
    for produced in GENERATED.glob(f"{stem}.*"):
        shutil.copy(produced, tmp_path / produced.name)
    module = load_module(tmp_path / f"{stem}.py")
    model = module.Model()
    x = model.sample(4)
    batch = (getattr(model, "INSTANCES", None), 4) if hasattr(model, "INSTANCES") else (4,)
    assert x.shape == (*batch, model.N)
    assert model.log_prob(x).shape == batch and model.energy(x).shape == batch
