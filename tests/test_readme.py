"""The README's two one-line commands, and CI running the test command verbatim."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    return [line.strip() for line in lines if line.startswith("    pip install")][:2]


def test_readme_starts_with_the_two_commands():
    main_job, tests = readme_commands()
    assert main_job.startswith(
        "pip install torch==2.13.0 && pip install -e . && arnn-gen emit --system sk"
    )
    assert tests.endswith("python -m pytest -q")


def test_ci_runs_the_readme_test_command():
    _, tests = readme_commands()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert tests in ci_lines
