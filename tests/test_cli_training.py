"""arnn-gen train, fit, sample, mcmc, plot and reproduce through click's runner."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from arnn_gen.cli import main


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result, fragment: str) -> None:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arnn-gen: error: "), result.stderr
    assert fragment in lines[0]


@pytest.fixture
def module_path(tmp_path):
    result = run("emit", "--system", "sk", "--variant", "rs", "-N", "8", "--out", tmp_path / "m")
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


SCHEDULE = (
    *("--beta", "0.5", "--beta-start", "0.3", "--beta-step", "0.1", "--steps-per-beta", "3"),
    *("--batch", "64", "--eval-samples", "256", "--device", "cpu", "--quiet"),
)


def test_train_resume_plot_sample(tmp_path, module_path):
    out = tmp_path / "run"
    result = run("train", module_path, *SCHEDULE, "--out", out)
    assert result.exit_code == 0, result.output
    assert "relative error" in result.stdout and "ESS" in result.stdout
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "metrics.csv", "metrics.json", "history.csv", "checkpoint.pt",
            "model.pt"} <= files  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert [row["beta"] for row in metrics["rows"]] == [0.3, 0.4, 0.5]
    assert metrics["label"] == "SK_RS" and metrics["final"]["exact_free_energy"] is not None
    assert (out / "free_energy.png").exists() and (out / "training.pdf").exists()
    resumed = run("train", module_path, *SCHEDULE, "--resume", out)
    assert resumed.exit_code == 0, resumed.output

    plots = run("plot", out, "--out", tmp_path / "plots")
    assert plots.exit_code == 0, plots.output
    assert len(list((tmp_path / "plots").glob("*.png"))) == 4

    samples = tmp_path / "samples.npy"
    drawn = run("sample", module_path, "--checkpoint", out / "model.pt", "-n", "100",
                "--out", samples)  # fmt: skip
    assert drawn.exit_code == 0, drawn.output
    x = np.load(samples)
    assert x.shape == (100, 8) and set(np.unique(x)) <= {-1, 1}
    one_line_error(run("sample", module_path, "-n", "5", "--out", samples), "use --force")
    mh = run("sample", module_path, "-n", "50", "--mh-steps", "3", "--out", samples, "--force")
    assert mh.exit_code == 0 and "acceptance rate" in mh.stdout


def test_mcmc_then_fit(tmp_path, module_path):
    samples = tmp_path / "mcmc.npy"
    result = run("mcmc", "--system", "sk", "-N", "8", "-n", "500", "--beta", "0.5",
                 "--sweeps", "20", "--out", samples)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert np.load(samples).shape == (500, 8)
    fitted = run("fit", module_path, samples, "--epochs", "2", "--batch", "100",
                 "--out", tmp_path / "fit", "--quiet", "--device", "cpu")  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    assert "log likelihood per spin" in fitted.stdout
    learned = run("fit", module_path, samples, "--epochs", "1", "--learn-couplings",
                  "--out", tmp_path / "fit2", "--quiet", "--device", "cpu")  # fmt: skip
    assert learned.exit_code == 0, learned.output


def test_training_command_errors(tmp_path, module_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((3, 8)))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"garbage")
    cw = run("emit", "--system", "cw", "-N", "8", "--out", tmp_path / "m").stdout.strip()
    cases = [
        (("train", tmp_path / "none.py", "--beta", "1"), "does not exist"),
        (("train", module_path, "--beta", "-1"), "beta must be a finite number"),
        (("train", module_path, *SCHEDULE, "--resume", tmp_path / "r"), "does not exist"),
        (("fit", module_path, bad, "--quiet"), "-1 and +1"),
        (("fit", module_path, tmp_path / "none.npy"), "does not exist"),
        (("fit", cw, bad, "--learn-couplings"), "-1 and +1"),
        (
            ("sample", module_path, "-n", "0", "--out", tmp_path / "s.npy"),
            "-n must be an integer >= 1",
        ),
        (("sample", module_path, "--checkpoint", corrupt, "-n", "2", "--out", tmp_path / "s.npy"),
         "cannot read checkpoint"),
        (("mcmc", "--system", "cw", "-N", "4", "-n", "0", "--beta", "1", "--sweeps", "1",
          "--out", tmp_path / "m.npy"), "-n must be an integer >= 1"),
        (("plot", tmp_path / "nothing"), "metrics.json"),
        (("reproduce", "cw", "--sizes", "30"), "not 30"),
        (("reproduce", "sk", "--quick", "--instances", "0,7"), "not 7"),
        (("reproduce", "sk", "--instances", "one"), "comma-separated integers"),
        (("reproduce", "cw", "--architectures", "CW_N,SK_RS"), "not SK_RS"),
    ]  # fmt: skip
    for args, fragment in cases:
        one_line_error(run(*args), fragment)


@pytest.mark.slow
@pytest.mark.parametrize("system", ["cw", "sk"])
def test_reproduce_quick(tmp_path, system):
    out = tmp_path / system
    result = run("reproduce", system, "--quick", "--quiet", "--device", "cpu", "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    table = {(row["architecture"], row["N"]): row for row in summary["table"]}
    if system == "cw":
        assert len(table) == 12
        for N in (20, 50):  # noqa: N806
            assert table[("CW_N", N)]["max_relative_error"] < 1e-10  # exact with no training
            assert table[("CW_inf", N)]["final_relative_error"] < 0.05
    else:
        assert {arch for arch, _ in table} == {"SK_RS", "SK_1RSB", "SK_2RSB", "1L", "MADE_21",
                                               "MADE_22"}  # fmt: skip
        for row in summary["runs"]:
            assert row["overlap"]["beta"] == pytest.approx(1.3)
            assert row["final"]["free_energy"] >= row["final"]["exact_free_energy"] - 1e-3
    assert (out / "summary.md").read_text().startswith(f"# arnn-gen reproduce {system} (quick)")
    assert any(out.glob("*/plots/free_energy.png"))


def test_reproduce_a_part_of_a_preset(tmp_path):
    """--sizes, --instances and --architectures run a piece of a preset, its schedule kept."""
    out = tmp_path / "part"
    result = run("reproduce", "sk", "--quick", "--quiet", "--device", "cpu", "--out", out,
                 "--instances", "1", "--architectures", "SK_RS")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [(row["architecture"], row["N"], row["instances"]) for row in summary["table"]] == [
        ("SK_RS", 12, 1)
    ]
    assert [run_["seed"] for run_ in summary["runs"]] == [1]
    assert summary["config"]["steps_per_beta"] == 20  # the quick schedule, unchanged
    assert summary["config"]["compile"] is False


def test_reproduce_compile_flag_reaches_the_schedule(tmp_path):
    """reproduce --compile trains with compile on (replica modules compile; others, like
    1L here, have nothing to compile and train as they are)."""
    out = tmp_path / "compiled"
    result = run("reproduce", "sk", "--quick", "--quiet", "--device", "cpu", "--out", out,
                 "--instances", "0", "--architectures", "1L", "--compile")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["compile"] is True
    assert [row["architecture"] for row in summary["table"]] == ["1L"]
    assert "device cpu (compiled);" in (out / "summary.md").read_text()


def test_train_options_of_the_schedule_and_the_optimizer(tmp_path, module_path):
    """--optimizer natural, --damping, --warmup-steps, --lr-min, --no-follow-beta reach the
    configuration the run records; the natural gradient is refused, in one line, for a
    module without per-site gradients, and bad values are bad input."""
    out = tmp_path / "natural"
    result = run("train", module_path, *SCHEDULE, "--out", out, "--optimizer", "natural",
                 "--damping", "0.01", "--warmup-steps", "2", "--lr-min", "0.001",
                 "--no-follow-beta")  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["optimizer"] == "natural" and config["lr"] == 0.2
    assert config["damping"] == 0.01 and config["warmup_steps"] == 2
    assert config["lr_min"] == 0.001 and config["follow_beta"] is False
    history = (out / "history.csv").read_text().splitlines()[1:]
    assert len(history) == 3 * 3 + 2
    cw = run("emit", "--system", "cw", "--variant", "inf", "-N", "8", "--out", tmp_path / "cw")
    refused = run("train", cw.stdout.strip(), *SCHEDULE, "--optimizer", "natural",
                  "--out", tmp_path / "cw_run")  # fmt: skip
    one_line_error(refused, "per-site gradients")
    assert refused.exit_code == 1
    for option, value, fragment in (("--lr-min", "1", "lr_min"), ("--damping", "0", "damping"),
                                    ("--warmup-steps", "-1", "warmup_steps")):  # fmt: skip
        bad = run("train", module_path, *SCHEDULE, option, value, "--out", tmp_path / "bad")
        one_line_error(bad, fragment)
        assert bad.exit_code == 1
