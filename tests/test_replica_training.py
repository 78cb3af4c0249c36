"""benchmarks/replica_training.py: the paper's instance, one run line, and its tables."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from arnn_gen.exact import enumerate_exact
from arnn_gen.systems import from_couplings

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "replica_training.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("replica_training_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_paper_instance_has_the_papers_exact_free_energy(script):
    """The draw of the paper's code for N = 20, seed 0: symmetric, zero diagonal, and by
    enumeration the exact f the paper's instance has (-0.9488836232 at beta = 1,
    -0.8261686550 at beta = 1.5)."""
    couplings = script.paper_couplings(20, 0)
    assert np.array_equal(couplings, couplings.T) and not couplings.diagonal().any()
    hamiltonian = from_couplings(couplings, np.zeros(20))
    assert enumerate_exact(hamiltonian, 1.0).free_energy == pytest.approx(-0.9488836232, abs=1e-10)
    assert enumerate_exact(hamiltonian, 1.5).free_energy == pytest.approx(-0.8261686550, abs=1e-10)


def test_a_run_line_and_its_table(script, capsys, tmp_path):
    """One short run prints a JSON line with the reported rows, the final estimate and the
    floor; the table groups lines and averages their errors."""
    script.main(["run", "--instance", "paper:6:1", "--steps", "2", "--beta", "0.5",
                 "--eval", "300", "--batch", "100", "--floor-steps", "2"])  # fmt: skip
    line = json.loads(capsys.readouterr().out)
    assert line["N"] == 6 and set(line["rows"]) == {"0.50"}
    for estimate in (line["rows"]["0.50"], line["final"], line["floor"]):
        assert 0 <= estimate["relative_error"] < 0.05 and estimate["relative_error_sem"] > 0
    other = dict(
        line, final={**line["final"], "relative_error": line["final"]["relative_error"] + 0.1}
    )
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(line) + "\n" + json.dumps(other) + "\n")
    script.main(["table", str(path)])
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| tag | N | runs | beta 0.50 | final | floor |")
    mean = line["final"]["relative_error"] + 0.05
    assert table[2].startswith("| SK_1RSB | 6 | 2 |") and f"{mean:.2e} ± 7.1e-02" in table[2]
