"""The built wheel works outside the source tree: console script, derive, templates."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _running_site_packages() -> list[str]:
    """The site-packages folders the interpreter running the tests imports from, in order.

    In a virtual environment these are the venv's own folders (where ``pip install torch``
    put torch), not the base interpreter's, which is all ``--system-site-packages`` offers.
    """
    paths = sysconfig.get_paths()
    candidates = [*site.getsitepackages(), paths["purelib"], paths["platlib"]]
    if site.ENABLE_USER_SITE:
        candidates.append(site.getusersitepackages())
    seen: list[str] = []
    for candidate in candidates:
        if candidate in sys.path and os.path.isdir(candidate) and candidate not in seen:
            seen.append(candidate)
    return seen


def _fresh_env_with_dependencies(env_dir: Path) -> Path:
    """A new venv that imports the dependencies (torch, sympy, ...) from the running
    interpreter's site-packages, after its own: the wheel installed into it comes first.

    The folders are listed in a ``.pth`` file, so they are appended to ``sys.path`` as plain
    entries: the ``.pth`` files inside them (an editable install's finder of this checkout)
    are not run, and ``import arnn_gen`` can only find the wheel.
    """
    venv.EnvBuilder(system_site_packages=False, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, env=_clean_env(),
    ).stdout.strip()  # fmt: skip
    (Path(own) / "_arnn_gen_test_dependencies.pth").write_text(
        "".join(f"{path}\n" for path in _running_site_packages())
    )
    return python


def _clean_env() -> dict[str, str]:
    """The environment without variables that would put other folders on the nested
    interpreter's path (or point it at another venv)."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV"}
    return {key: value for key, value in os.environ.items() if key not in drop}


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
    # The dependencies (torch, sympy, ...) come from the running interpreter's site-packages,
    # whether or not that is itself a venv; arnn_gen only from the wheel.
    python = _fresh_env_with_dependencies(env_dir)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        env=_clean_env(),
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str) -> str:
        done = subprocess.run(
            args,
            cwd=elsewhere,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env=_clean_env(),
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = Path(run(str(python), "-c", "import arnn_gen; print(arnn_gen.__file__)").strip())
    assert where.resolve().is_relative_to(env_dir.resolve()), (
        f"arnn_gen imported from {where}, not from the wheel installed in {env_dir}"
    )
    checkout = (ROOT / "arnn_gen").resolve()
    assert not where.resolve().is_relative_to(checkout), (
        f"arnn_gen imported from the checkout {where}"
    )
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
