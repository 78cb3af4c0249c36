"""The built wheel works outside the source tree: console script, derive, templates."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_runs_elsewhere(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = wheels.glob("arnn_gen-*.whl")
    env_dir = tmp_path / "venv"
    # The dependencies (torch, sympy, ...) come from the running interpreter's site-packages;
    # arnn_gen itself only from the wheel, which the venv's own site-packages put first.
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str) -> str:
        done = subprocess.run(
            args, cwd=elsewhere, capture_output=True, text=True, check=False, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = run(str(python), "-c", "import arnn_gen; print(arnn_gen.__file__)")
    assert str(env_dir) in where, f"arnn_gen imported from {where}, not from the wheel"
    templates = run(
        str(python),
        "-c",
        "from importlib.resources import files; "
        "print(sorted(p.name for p in files('arnn_gen.templates').iterdir()))",
    )
    assert "__init__.py" in templates
    for name in (p.name for p in (ROOT / "templates").glob("*.j2")):
        assert name in templates, f"{name} is missing from the wheel"
    assert "derive" in run(str(env_dir / "bin" / "arnn-gen"), "--help")
    latex = run(str(env_dir / "bin" / "arnn-gen"), "derive", "--system", "cw")
    assert r"\operatorname{logsumexp}" in latex
    # the templates are found at run time from the installed wheel
    written = run(str(env_dir / "bin" / "arnn-gen"), "emit", "--system", "sk", "-N", "6")
    assert written.strip() == "generated/sk_krsb1_n6.py"
    assert (elsewhere / "generated" / "sk_krsb1_n6.npz").exists()
