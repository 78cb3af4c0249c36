"""Re-emit the committed modules of ``generated/``: the default architecture of every
system and variant of DESIGN.md's table, through ``arnn-gen emit`` itself.

    python -m arnn_gen.codegen.regenerate [REPOSITORY_ROOT]

Run it from (or point it at) the repository root after a change to a template or to the
emitter; ``tests/test_generated.py`` re-emits each module into a temporary folder and
checks that it equals the committed one byte for byte.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

__all__ = ["CANONICAL", "DEMO", "regenerate"]

#: The couplings of the general system's modules, relative to the repository root (the
#: modules' headers record the path as given).
DEMO = "examples/general_demo_n8.txt"

#: (file stem, emit arguments): the default of every system/variant pair of DESIGN.md, and
#: a module of the ten SK instances of the paper's N = 20 comparison.
CANONICAL: tuple[tuple[str, str], ...] = (
    ("general_krsb1_n8", f"--system general --couplings {DEMO}"),
    ("general_exact_n8", f"--system general --variant exact --couplings {DEMO}"),
    ("general_rs_n8", f"--system general --variant rs --couplings {DEMO}"),
    ("cw_exact_n100", "--system cw"),
    ("cw_inf_n100", "--system cw --variant inf"),
    ("cw_rs_n100", "--system cw --variant rs"),
    ("cw_krsb1_n100", "--system cw --variant krsb"),
    ("sk_krsb1_n100", "--system sk"),
    ("sk_exact_n20", "--system sk --variant exact"),
    ("sk_rs_n100", "--system sk --variant rs"),
    ("ea2d_krsb1_n100", "--system ea2d"),
    ("ea2d_rs_n100", "--system ea2d --variant rs"),
    ("ea2d_exact_n16", "--system ea2d --variant exact"),
    ("ea3d_krsb1_n125", "--system ea3d"),
    ("ising2d_krsb1_n100", "--system ising2d"),
    ("rrg_krsb1_n100", "--system rrg"),
    ("sk_krsb1_n20_s0_9", "--system sk -N 20 --instances 0-9"),
)


def regenerate(root: Path) -> list[Path]:
    """Emit every module of CANONICAL into ``root/generated`` (replacing the old ones)."""
    from click.testing import CliRunner

    from arnn_gen.cli import main

    here = Path.cwd()
    os.chdir(root)
    try:
        written = []
        for stem, arguments in CANONICAL:
            args = ["emit", *shlex.split(arguments), "--out", "generated", "--force"]
            result = CliRunner().invoke(main, args)
            if result.exit_code != 0:
                raise SystemExit(f"arnn-gen {' '.join(args)}: {result.output.strip()}")
            written.append(root / result.stdout.strip())
            if written[-1].stem != stem:
                raise SystemExit(f"expected {stem}.py, emit wrote {written[-1].name}")
        return written
    finally:
        os.chdir(here)


if __name__ == "__main__":
    for path in regenerate(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()):
        print(path)
