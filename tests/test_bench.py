"""The per-site baselines of benchmarks/persite.py, the harness benchmarks/harness.py with
its report benchmarks/report.py, and ``arnn-gen bench``, which runs the harness.

The per-site ports must give the emitted models' log Q(x) exactly (float64) and sample the
same distribution; the harness must write bench.json with every number. No timing is
asserted: timings depend on the machine. benchmarks/ is no package: its files are imported
by path, as the harness and ``arnn-gen bench`` import them.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import arnn_gen
from arnn_gen.cli import main as cli

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name: str):
    """benchmarks/<name>.py, imported by path as the harness does."""
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _script("harness")
bench_report = _script("report")


@pytest.fixture(scope="module")
def persite():
    """benchmarks/persite.py."""
    return _script("persite")


def _random_spins(batch: int, N: int, seed: int) -> torch.Tensor:  # noqa: N803
    """[batch, N] float64 of +-1."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (batch, N), generator=generator).double() * 2 - 1


def _all_states(N: int) -> torch.Tensor:  # noqa: N803
    """[2^N, N] float64: every configuration of N spins."""
    return torch.tensor(list(itertools.product((-1.0, 1.0), repeat=N)), dtype=torch.float64)


def _replica_model(emitted, k: int, N: int, seed: int):  # noqa: N803
    """An emitted SK_RS (k = 0) / SK_kRSB model, float64, random fields and parameters of
    order one (so that every layer matters)."""
    variant = "rs" if k == 0 else "krsb"
    module = emitted("sk", variant=variant, k=k, N=N, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    h = 0.3 * torch.randn(N, generator=generator, dtype=torch.float64)
    model = module.Model(dtype=torch.float64, h=h, init="random")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(0.7 * torch.randn(parameter.shape, generator=generator).double())
    return model


@pytest.mark.parametrize("k", [0, 1, 2])
def test_persite_replica_log_prob_equals_emitted(emitted, persite, k):
    model = _replica_model(emitted, k, 10, seed=k)
    port = persite.PerSiteReplica.from_model(model)
    assert port.depth == k
    assert len(port.conditionals) == 10
    x = _random_spins(256, 10, seed=1)
    with torch.no_grad():
        expected = model.log_prob(x)
        got = port.log_prob(x)
    assert got.shape == (256,)
    assert torch.allclose(got, expected, rtol=0.0, atol=1e-10)
    assert torch.allclose(port.energy(x), model.energy(x), rtol=0.0, atol=1e-10)


def test_persite_cwn_log_prob_equals_emitted(emitted, persite):
    module = emitted("cw", variant="exact", N=12, beta=1.3, h=0.2)
    model = module.Model(dtype=torch.float64)
    port = persite.PerSiteCWN.from_model(model)
    assert not any(p.requires_grad for p in port.parameters())
    x = _random_spins(256, 12, seed=2)
    assert torch.allclose(port(x), model.network_logits(x), rtol=0.0, atol=1e-10)
    assert torch.allclose(port.log_prob(x), model.log_prob(x), rtol=0.0, atol=1e-10)
    assert torch.allclose(port.energy(x), model.energy(x), rtol=0.0, atol=1e-10)


def test_persite_cwinf_log_prob_equals_emitted(emitted, persite):
    module = emitted("cw", variant="inf", N=12, beta=1.4)
    model = module.Model(dtype=torch.float64)
    with torch.no_grad():
        model.omega.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(3))
    port = persite.PerSiteCWInf.from_model(model)
    x = _random_spins(256, 12, seed=3)
    with torch.no_grad():
        assert torch.allclose(port.log_prob(x), model.log_prob(x), rtol=0.0, atol=1e-10)


def _assert_frequencies(samples: torch.Tensor, log_q: torch.Tensor) -> None:
    """The frequency of every state of [S, N] samples is within 5 sigma of exp(log_q)."""
    N = samples.shape[1]  # noqa: N806
    index = ((samples > 0).long() * (2 ** torch.arange(N - 1, -1, -1))).sum(1)  # [S]
    counts = torch.bincount(index, minlength=2**N).double()
    p = log_q.exp()  # [2^N], states in itertools.product order (-1 before +1)
    assert math.isclose(float(p.sum()), 1.0, abs_tol=1e-12)
    S = samples.shape[0]  # noqa: N806
    sigma = torch.sqrt(S * p * (1 - p)).clamp_min(1.0)
    assert bool(((counts - S * p).abs() <= 5 * sigma).all()), (counts, S * p)


def test_persite_replica_sampler_follows_the_model(emitted, persite):
    model = _replica_model(emitted, 1, 5, seed=4)
    port = persite.PerSiteReplica.from_model(model)
    samples = port.sample(100_000, generator=torch.Generator().manual_seed(5))
    assert samples.shape == (100_000, 5) and samples.dtype == torch.float64
    assert set(samples.unique().tolist()) == {-1.0, 1.0}
    with torch.no_grad():
        _assert_frequencies(samples, model.log_prob(_all_states(5)))


def test_persite_cwn_sampler_follows_the_model(emitted, persite):
    module = emitted("cw", variant="exact", N=5, beta=1.5, h=0.1)
    model = module.Model(dtype=torch.float64)
    port = persite.PerSiteCWN.from_model(model)
    samples = port.sample(100_000, generator=torch.Generator().manual_seed(6))
    _assert_frequencies(samples, model.log_prob(_all_states(5)))


def test_persite_replica_trains_with_adam(emitted, persite):
    from arnn_gen.learn.train import reinforce_loss

    port = persite.PerSiteReplica.from_model(_replica_model(emitted, 1, 6, seed=7))
    before = [p.detach().clone() for p in port.parameters()]
    optimizer = torch.optim.Adam(port.parameters(), lr=1e-2)
    x = port.sample(64, generator=torch.Generator().manual_seed(8))
    loss, _ = reinforce_loss(port, x, port.beta)
    loss.backward()
    optimizer.step()
    changed = [not torch.equal(a, b) for a, b in zip(before, port.parameters(), strict=True)]
    assert sum(changed) > len(changed) // 2  # the last site's [2, 0] tensors cannot change


def test_logsigmoid_count():
    # SK_1RSB, N = 3: 2 signs * 2 layers * 3 pairs, plus N for log Q, per sample.
    assert harness.logsigmoid_count("SK_1RSB", 3, 2) == 2 * (2 * 2 * 3 + 3)
    assert harness.logsigmoid_count("SK_RS", 4, 1) == 2 * 1 * 6 + 4
    assert harness.logsigmoid_count("CW_N", 4, 5) == 20
    assert harness.logsigmoid_count("MADE_21", 4, 5) == 20


def test_growth_exponent_fits_power_laws():
    sizes = [50, 100, 200, 400]
    fit = harness.growth_exponent(sizes, [1e-6 * n**2.5 if n >= 100 else 1.0 for n in sizes])
    assert fit["sizes"] == [100, 200, 400]  # N >= FIT_MIN_N only
    assert math.isclose(fit["exponent"], 2.5, rel_tol=1e-12)
    fit = harness.growth_exponent([20, 40], [1.0, 8.0])  # fewer than two N >= 100: all
    assert math.isclose(fit["exponent"], 3.0, rel_tol=1e-12) and fit["sizes"] == [20, 40]
    assert harness.growth_exponent([20, 40], [1.0, None]) is None


def _positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_run_benchmarks_quick_writes_every_number(tmp_path):
    lines = []
    (tmp_path / "RESULTS.md").write_text(
        "# Notes\n\nabove\n<!-- bench:begin -->\nold numbers\n<!-- bench:end -->\nbelow\n"
    )
    report = harness.run_benchmarks(
        quick=True,
        sizes=(8, 12),
        architectures=("SK_1RSB", "CW_N"),
        repeats=1,
        out_dir=tmp_path,
        progress=lines.append,
    )
    path = tmp_path / "bench.json"
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))
    assert {"mode", "settings", "machine", "floor", "persite", "results", "growth"} <= set(report)
    assert report["mode"] == "quick" and report["settings"]["batch"] == 256
    machine = report["machine"]
    for key in ("platform", "processor", "cpu_count", "torch", "threads", "device"):
        assert key in machine
    assert machine["torch"] == torch.__version__ and machine["device"] == "cpu"
    assert _positive(report["floor"]["evals_per_s"])
    assert report["persite"]["available"]
    assert [(r["architecture"], r["N"]) for r in report["results"]] == [
        ("SK_1RSB", 8),
        ("SK_1RSB", 12),
        ("CW_N", 8),
        ("CW_N", 12),
    ]
    for record in report["results"]:
        assert "error" not in record, record
        trainable = record["architecture"] == "SK_1RSB"
        costs = ["sample", "log_prob", "sample_plus_log_prob"] + ["train_step"] * trainable
        for which in ("ours", "persite"):
            for cost in costs:
                assert _positive(record[which][f"{cost}_s"]), (which, cost, record)
                assert _positive(record["persite_over_ours"][cost])
        if not trainable:  # CW_N has no trainable parameter
            assert record["ours"]["train_step_s"] is None
        assert _positive(record["memory"]["peak_mib"])
        assert _positive(record["floor"]["floor_s"])
        assert record["floor"]["logsigmoid_evaluations"] == harness.logsigmoid_count(
            record["architecture"], record["N"], 256
        )
        assert _positive(record["ours_over_floor"]["log_prob"])
    growth = report["growth"]
    assert set(growth) == {"SK_1RSB", "CW_N"}
    assert math.isfinite(growth["SK_1RSB"]["ours"]["train_step"]["exponent"])
    assert math.isfinite(growth["CW_N"]["persite"]["log_prob"]["exponent"])
    assert growth["CW_N"]["ours"]["train_step"] is None
    assert len(lines) >= 4 and any("wrote" in line for line in lines)
    # the Markdown report: bench.md, and the marked section of RESULTS.md replaced
    table = (tmp_path / "bench.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| SK_1RSB | 12 | eager |")]
    assert len(rows) == 1
    record = report["results"][1]
    assert f"{record['ours']['train_step_s']:.3g}" in rows[0]
    assert "python benchmarks/harness.py --quick --sizes 8 12" in table
    results = (tmp_path / "RESULTS.md").read_text()
    assert "old numbers" not in results and table in results
    assert results.startswith("# Notes\n\nabove\n<!-- bench:begin -->\n")
    assert results.endswith("<!-- bench:end -->\nbelow\n")


def test_run_benchmarks_without_the_repository_skips_the_baseline(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "persite_path", lambda: None)
    report = harness.run_benchmarks(
        quick=True,
        sizes=(6,),
        architectures=("CW_inf",),
        repeats=1,
        out_dir=tmp_path,
        progress=None,
    )
    (record,) = report["results"]
    assert not report["persite"]["available"]
    assert record["persite"] is None and "not found" in record["persite_note"]
    assert _positive(record["ours"]["train_step_s"])
    assert (tmp_path / "bench.json").is_file()


def test_unknown_architecture_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown architecture"):
        harness.run_benchmarks(quick=True, architectures=("SK_9RSB",), out_dir=tmp_path)


def _record(architecture, N, **values):  # noqa: N803
    """A result record as run_benchmarks makes it, with the given numbers."""
    record = {"architecture": architecture, "N": N, "ours": {}, "persite_over_ours": {}}
    for key, value in values.items():
        which, cost = key.split("__")
        record.setdefault(which, {})[cost] = value
    return record


def test_targets_follow_the_device():
    """The CPU performance targets on CPU, its GPU targets on CUDA, each met or not by the
    measured value."""
    results = [
        _record("SK_1RSB", 200, persite_over_ours__train_step=25.0,
                persite_over_ours__sample=3.0, persite_over_compiled__train_step=62.0,
                persite_over_compiled__sample=2.0),
        _record("SK_1RSB", 1000, ours__train_step_s=0.14, ours_compiled__train_step_s=0.06),
    ]  # fmt: skip
    gpu = {t["target"]: t for t in harness._targets(results, {}, "cuda")}
    assert {name: target["met"] for name, target in gpu.items()} == {
        "SK_1RSB N=200 train_step persite/ours >= 30": False,
        "SK_1RSB N=200 train_step persite/compiled >= 30": True,
        "SK_1RSB N=1000 train_step ours (s) <= 0.1": False,
        "SK_1RSB N=1000 train_step compiled (s) <= 0.1": True,
    }
    assert gpu["SK_1RSB N=1000 train_step ours (s) <= 0.1"]["value"] == 0.14
    cpu = {t["target"]: t["met"] for t in harness._targets(results, {}, "cpu")}
    assert cpu == {
        "SK_1RSB N=200 train_step persite/ours >= 3": True,
        "SK_1RSB N=200 sample persite/ours >= 2.5": True,
        "SK_1RSB N=200 train_step persite/compiled >= 3": True,
        "SK_1RSB N=200 sample persite/compiled >= 2.5": False,
    }


def test_rereport_evaluates_the_targets_again(tmp_path, capsys):
    report = harness.run_benchmarks(
        quick=True, sizes=(8,), architectures=("SK_1RSB",), repeats=1, out_dir=tmp_path,
        persite_max_n=0, progress=None,
    )  # fmt: skip
    stored = json.loads((tmp_path / "bench.json").read_text())
    stored["targets"] = []
    stored["settings"]["device"] = "cuda"  # as if measured on a GPU at N = 200
    stored["results"][0]["N"] = 200
    (tmp_path / "bench.json").write_text(json.dumps(stored))
    (tmp_path / "bench.md").unlink()
    assert harness.main(["--report", str(tmp_path / "bench.json")]) == 0
    again = json.loads((tmp_path / "bench.json").read_text())
    assert again["results"] == stored["results"]
    assert again["targets"] == harness._targets(stored["results"], report["growth"], "cuda")
    assert [t["target"] for t in again["targets"]] == [
        "SK_1RSB N=200 train_step persite/ours >= 30"
    ]
    assert "| SK_1RSB N=200 train_step persite/ours >= 30 |" in (tmp_path / "bench.md").read_text()
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(SystemExit) as stop:
        harness.main(["--report", str(tmp_path / "broken.json")])
    assert stop.value.code == 2
    assert "is not a bench.json" in capsys.readouterr().err
    # benchmarks/report.py prints the report of a bench.json as the harness wrote it
    assert bench_report.main([str(tmp_path / "bench.json")]) == 0
    assert capsys.readouterr().out == (tmp_path / "bench.md").read_text()
    with pytest.raises(SystemExit) as stop:
        bench_report.main([str(tmp_path / "broken.json")])
    assert stop.value.code == 2
    assert "is not a bench.json" in capsys.readouterr().err


def _stored_report() -> dict:
    """A small bench.json as the harness writes it (CW_inf at N = 6)."""
    machine = {"platform": "Linux", "processor": "cpu", "cpu_count": 2, "torch": "2", "threads": 1,
               "device": "cpu", "device_name": None, "load_average": [0.5, 0.5, 0.5],
               "load_average_after": [0.5, 0.5, 0.5]}  # fmt: skip
    settings = {"device": "cpu", "threads": 1, "dtype": "float32", "beta": 1.0, "batch": 16,
                "repeats": 1, "sizes": [6], "architectures": ["CW_inf"], "fit_min_n": 100,
                "compiled": False}  # fmt: skip
    record = {"architecture": "CW_inf", "N": 6, "batch": 16, "memory": {"peak_mib": 300.0},
              "ours": {"sample_s": 0.001, "log_prob_s": 0.0005, "train_step_s": 0.003},
              "persite": None, "persite_over_ours": {},
              "ours_over_floor": {"log_prob": 50.0}}  # fmt: skip
    return {"schema": 1, "mode": "quick", "settings": settings, "machine": machine,
            "floor": {"evals_per_s": 1e8, "best_chunk": 10_000}, "persite": {},
            "results": [record], "growth": {}, "targets": []}  # fmt: skip


def test_harness_and_report_run_as_scripts_from_the_repository_root(tmp_path):
    """python benchmarks/harness.py, python -m benchmarks.harness and
    python benchmarks/report.py, from the repository root (benchmarks/ is not installed)."""
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(_stored_report()))
    root = BENCHMARKS.parent
    for command in (["benchmarks/harness.py"], ["-m", "benchmarks.harness"]):
        done = subprocess.run([sys.executable, *command, "--report", str(path)], cwd=root,
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == [f"wrote {path}", f"wrote {tmp_path / 'bench.md'}"]
    assert json.loads(path.read_text())["results"] == _stored_report()["results"]
    done = subprocess.run([sys.executable, "benchmarks/report.py", str(path)], cwd=root,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == (tmp_path / "bench.md").read_text()
    assert done.stdout.startswith("    python benchmarks/harness.py --quick --sizes 6 ")
    assert "| CW_inf | 6 | eager | 0.001 | 0.0005 | 0.003 | 300 |" in done.stdout


def _fake_checkout(root: Path) -> Path:
    """A checkout at ``root`` whose benchmarks/harness.py records the call it gets in
    called.json; its arnn_gen/__init__.py path."""
    (root / "arnn_gen").mkdir(parents=True)
    (root / "arnn_gen" / "__init__.py").write_text("")
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "harness.py").write_text(
        "import json\n"
        "from pathlib import Path\n\n"
        "def run_benchmarks(**options):\n"
        "    options['out_dir'] = str(options['out_dir'])\n"
        "    (Path(__file__).parent / 'called.json').write_text(json.dumps(options))\n"
    )
    return root / "arnn_gen" / "__init__.py"


def test_bench_command_runs_the_harness_of_the_checkout(tmp_path, monkeypatch):
    """arnn-gen bench loads benchmarks/harness.py beside the package's folder (an editable
    install), else from the current folder, and passes its options on."""
    assert (Path(arnn_gen.__file__).resolve().parents[1] / "benchmarks" / "harness.py").is_file()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(arnn_gen, "__file__", str(_fake_checkout(tmp_path / "checkout")))
    result = CliRunner().invoke(cli, ["bench", "--quick", "--threads", "1", "--repeats", "2",
                                      "--out", "out"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(Path("out") / "bench.json")
    called = json.loads((tmp_path / "checkout" / "benchmarks" / "called.json").read_text())
    assert called == {"quick": True, "out_dir": "out", "device": "cpu", "threads": 1,
                      "repeats": 2}  # fmt: skip
    # an installed package: the harness of the checkout the command runs in
    (tmp_path / "site" / "arnn_gen").mkdir(parents=True)
    monkeypatch.setattr(arnn_gen, "__file__", str(tmp_path / "site" / "arnn_gen" / "x.py"))
    monkeypatch.chdir(tmp_path / "checkout")
    (tmp_path / "checkout" / "benchmarks" / "called.json").unlink()
    result = CliRunner().invoke(cli, ["bench"])
    assert result.exit_code == 0, result.output
    called = json.loads((tmp_path / "checkout" / "benchmarks" / "called.json").read_text())
    assert called == {"quick": False, "out_dir": "benchmarks", "device": "cpu", "threads": 2,
                      "repeats": 3}  # fmt: skip


def test_bench_command_outside_a_checkout_is_a_one_line_error(tmp_path, monkeypatch):
    (tmp_path / "site" / "arnn_gen").mkdir(parents=True)
    monkeypatch.setattr(arnn_gen, "__file__", str(tmp_path / "site" / "arnn_gen" / "x.py"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["bench", "--quick"])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "arnn-gen: error: arnn-gen bench runs in a checkout of the repository (benchmarks/ is "
        "not installed); run it from the root of a checkout, or python benchmarks/harness.py "
        "there"
    ]
    assert not (tmp_path / "benchmarks").exists()


def test_anneal_times_the_protocol_beta_by_beta(capsys):
    """benchmarks/anneal.py runs the last betas of the protocol and adds up its parts,
    printing each beta as it ends (so that a run cut short still shows how far it got)."""
    anneal = _script("anneal")
    report = anneal.time_protocol("SK_1RSB", 8, betas=3, steps_per_beta=3, batch=32,
                                  eval_samples=64)  # fmt: skip
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("beta")]
    assert [line.split(" ended")[0] for line in progress] == [
        "beta 1/3 (1.9)", "beta 2/3 (1.95)", "beta 3/3 (2)"]  # fmt: skip
    ends = [float(line.split("ended at ")[1].removesuffix(" s")) for line in progress]
    assert ends == sorted(ends)
    assert ends[-1] == pytest.approx(report["setup_s"] + sum(report["per_beta_s"]), abs=0.06)
    assert report["betas_run"] == pytest.approx([1.9, 1.95, 2.0])
    assert len(report["per_beta_s"]) == 3 and all(map(_positive, report["per_beta_s"]))
    assert report["later_beta_median_s"] == statistics.median(report["per_beta_s"][1:])
    expected = (report["setup_s"] + report["first_beta_s"] + 38 * report["later_beta_median_s"]
                + report["final_evaluation_s"])  # fmt: skip
    assert report["protocol_s"] == pytest.approx(expected)
    parts = report["setup_s"] + sum(report["per_beta_s"]) + report["final_evaluation_s"]
    assert report["run_s"] == pytest.approx(parts)
    assert math.isfinite(report["final_free_energy"])
    assert report["compile_failures"] == []
    with pytest.raises(ValueError, match="at least 2"):
        anneal.time_protocol("SK_1RSB", 8, betas=1)


def test_anneal_reports_compiled_functions_that_fell_back(monkeypatch):
    """With --compile, a function that fails to compile (and runs its eager code) is named
    in the report, so that its times are not read as those of the compiled run."""
    anneal = _script("anneal")

    def broken(function, **options):
        def fail(*args):
            raise AssertionError("no inductor here")

        return fail

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="torch.compile failed"):
        report = anneal.time_protocol("SK_1RSB", 8, betas=2, compile=True, steps_per_beta=2,
                                      batch=16, eval_samples=32)  # fmt: skip
    assert report["compile_failures"] == [
        "torch.compile failed (no inductor here); using the eager code"
    ]


def test_report_marks_compiled_timings_that_fell_back_to_eager_code():
    """A compiled row whose timings came with enable_compile()'s "torch.compile failed"
    warning is labelled as partly eager, with a note; a clean one stays "compiled"."""
    FELL_BACK, _main_table = bench_report.FELL_BACK, bench_report._main_table  # noqa: N806

    def record(N, warnings):  # noqa: N803
        return {"architecture": "SK_1RSB", "N": N, "memory": {"peak_mib": 100.0},
                "ours": {"train_step_s": 0.012},
                "ours_compiled": {"train_step_s": 0.016, "warnings": warnings}}  # fmt: skip

    failed = ["`torch._prims_common.check` is deprecated", "torch.compile failed (Assertion"]
    clean = ["TensorFloat32 available"]
    report = {"settings": {"compiled": True, "device": "cuda"},
              "results": [record(200, failed), record(1000, clean)]}  # fmt: skip
    lines = _main_table(report)
    assert any(
        line.startswith(f"| SK_1RSB | 200 | {FELL_BACK} | - | - | 0.016 |") for line in lines
    )
    assert any(line.startswith("| SK_1RSB | 1000 | compiled | - | - | 0.016 |") for line in lines)
    assert lines[-1].startswith(f'"{FELL_BACK}": a compiled function failed to compile')
    report["results"] = [record(1000, [])]
    assert not any(FELL_BACK in line for line in _main_table(report))


def test_report_shows_what_the_cuda_graph_saves():
    _graph_table = bench_report._graph_table
    record = {"architecture": "SK_1RSB", "N": 200,
              "ours": {"sample_s": 0.005, "sample_without_graph_s": 0.02},
              "ours_compiled": {"sample_s": 0.004}}  # fmt: skip
    lines = _graph_table({"results": [record]})
    assert "| SK_1RSB | 200 | eager | 0.005 | 0.02 | 4 |" in lines
    assert not any("compiled" in line for line in lines)
    assert _graph_table({"results": [{"architecture": "CW_N", "N": 8, "ours": {}}]}) == []


def test_protocol_time_projects_the_measured_steps(tmp_path, capsys):
    """benchmarks/protocol_time.py: hours = step x 39 x 1000 / 3600 for every trained
    architecture of a bench.json, the three replica forms added up per complete size,
    and a one-line error for a file that is not a bench.json."""
    protocol_time = _script("protocol_time")
    assert protocol_time.protocol_steps() == 39 * 1000  # docs/physics.md section 5
    steps = {("SK_RS", 50): 0.02, ("SK_1RSB", 50): 0.036, ("SK_2RSB", 50): 0.05,
             ("SK_RS", 100): 0.1, ("CW_N", 50): None, ("CW_inf", 50): 0.002}  # fmt: skip
    settings = {"dtype": "float32", "batch": 2000, "device": "cpu", "threads": 2}
    results = [
        {"architecture": a, "N": n, "ours": {"train_step_s": s}} for (a, n), s in steps.items()
    ]
    stored = {"settings": {**settings, "compiled": False}, "results": results}
    rows = protocol_time.projection(stored)
    assert [(r["architecture"], r["N"]) for r in rows] == [
        key for key, step in steps.items() if step is not None
    ]
    for row in rows:
        expected = steps[(row["architecture"], row["N"])] * 39_000 / 3600
        assert row["hours"] == pytest.approx(expected)
    text = protocol_time.markdown(stored, rows)
    assert "| SK_1RSB | 50 | 0.036 | 0.39 |" in text and "CW_N" not in text
    assert "N = 50: 1.1 h." in text and "N = 100" not in text.splitlines()[-1]
    assert text.startswith("From `benchmarks/bench.json`: float32, B = 2000, device cpu")
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(stored))
    assert protocol_time.main(["--bench", str(path)]) == 0
    assert capsys.readouterr().out == protocol_time.markdown(stored, rows, str(path))
    (tmp_path / "broken.json").write_text("{}")
    assert protocol_time.main(["--bench", str(tmp_path / "broken.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
