"""The command line through click's runner, and the check of a one-line error, for the CLI
tests."""

from __future__ import annotations

from click.testing import CliRunner

from arnn_gen.cli import main


def run(*args):
    """``arnn-gen ARGS...`` in this process; the result holds exit_code, stdout and stderr."""
    return CliRunner().invoke(main, [str(arg) for arg in args])


def assert_one_line_error(result, code: int, fragment: str) -> None:
    """The command failed with ``code`` and said why in one line naming ``fragment``."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("arnn-gen: error: ")
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
