"""Sweeps that train the instances of a size together (``batch_instances``): the same tasks,
run folders, manifest and report as the unbatched sweep, and its numbers (float64, to
1e-8 relative); bundles resume, are skipped when finished, and are not mixed with folders
trained alone."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from cli_runner import assert_one_line_error, run
from test_sweep import SCHEDULE  # the schedule of the sweep tests, float64

from arnn_gen.errors import ArnnGenError
from arnn_gen.sweep import MANIFEST, expand, read_sweep, run_sweep
from arnn_gen.sweep.runner import _units
from arnn_gen.sweep.task import run_folder
from arnn_gen.systems import sherrington_kirkpatrick

#: SK instances (the replica networks batched, the baseline 1L alone), two couplings files
#: of general, and a Curie-Weiss table, which has no batched form.
TABLES = """
[[systems]]
system = "sk"
sizes = [6]
instances = "0-1"
architectures = ["SK_RS", "SK_1RSB", "1L"]
{batch}
[[systems]]
system = "general"
couplings = ["data/sk3.npz", "data/sk4.npz"]
architectures = ["SK_RS"]
{batch}
[[systems]]
system = "cw"
sizes = [5]
architectures = ["CW_inf"]
{batch}
"""

SMALL = (
    SCHEDULE
    + """
[[systems]]
system = "sk"
sizes = [6]
instances = "0-1"
architectures = ["SK_RS"]
{batch}
"""
)

RUN_FILES = {"task.json", "overlap.json", "config.json", "metrics.json", "metrics.csv",
             "history.csv", "checkpoint.pt", "model.pt"}  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _without_instance_plots(patch) -> None:
    """The report without its figures per instance (most of its time at this size);
    test_the_report_of_a_batched_sweep draws them."""
    import arnn_gen.learn.plots as plots

    patch.setattr(plots, "save_plots", lambda runs, folder: None)


@pytest.fixture
def quick_report(monkeypatch):
    _without_instance_plots(monkeypatch)


def write_sweep(folder, text: str, batched: bool, name: str):
    (folder / "data").mkdir(exist_ok=True)
    for seed in (3, 4):
        if not (folder / "data" / f"sk{seed}.npz").is_file():
            sherrington_kirkpatrick(6, seed=seed).save(folder / "data" / f"sk{seed}.npz")
    path = folder / name
    path.write_text(text.format(batch="batch_instances = true\n" if batched else ""))
    return path


def runs(out) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return {r["id"]: r for r in summary["runs"]}


def assert_same_numbers(mine: dict, theirs: dict) -> None:
    """Rows, final estimate and P(q) of two runs of one task, to 1e-8 relative."""
    assert len(mine["rows"]) == len(theirs["rows"])
    for a, b in zip(mine["rows"], theirs["rows"], strict=True):
        assert a.keys() == b.keys()
        for key, value in b.items():
            assert a[key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
    for key, value in theirs["final"].items():
        assert mine["final"][key] == pytest.approx(value, rel=1e-8, abs=1e-12), key
    assert mine["overlap"]["beta"] == theirs["overlap"]["beta"]
    assert mine["overlap"]["edges"] == theirs["overlap"]["edges"]
    assert mine["overlap"]["density"] == pytest.approx(theirs["overlap"]["density"], rel=1e-8)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The same sweep file run unbatched and batched (in this process)."""
    folder = tmp_path_factory.mktemp("batched")
    alone = write_sweep(folder, SCHEDULE + TABLES, False, "alone.toml")
    together = write_sweep(folder, SCHEDULE + TABLES, True, "together.toml")
    with pytest.MonkeyPatch.context() as patch:
        _without_instance_plots(patch)
        run_sweep(read_sweep(alone), folder / "alone", serial=True)
        run_sweep(read_sweep(together), folder / "together", serial=True)
    return folder


def test_the_file_marks_the_tasks_a_module_of_several_instances_trains(tmp_path):
    tasks = {t.id: t for t in expand(read_sweep(write_sweep(tmp_path, SCHEDULE + TABLES, True,
                                                            "s.toml")))}  # fmt: skip
    batched = sorted(i for i, t in tasks.items() if t.batched)
    assert batched == ["general_n6_i0_sk3/SK_RS", "general_n6_i1_sk4/SK_RS", "sk_n6_s0/SK_1RSB",
                       "sk_n6_s0/SK_RS", "sk_n6_s1/SK_1RSB", "sk_n6_s1/SK_RS"]  # fmt: skip
    alone = {t.id: t for t in expand(read_sweep(write_sweep(tmp_path, SCHEDULE + TABLES, False,
                                                            "a.toml")))}  # fmt: skip
    for task_id, task in tasks.items():  # only the batched tasks change their definition
        assert (task.signature() != alone[task_id].signature()) == task.batched
        assert task.to_dict().get("batched", False) == task.batched
    units = _units(list(tasks.values()))
    assert [[t.id for t in unit] for unit in units if len(unit) > 1] == [
        ["sk_n6_s0/SK_RS", "sk_n6_s1/SK_RS"], ["sk_n6_s0/SK_1RSB", "sk_n6_s1/SK_1RSB"],
        ["general_n6_i0_sk3/SK_RS", "general_n6_i1_sk4/SK_RS"],
    ]  # fmt: skip
    assert sum(len(unit) for unit in units) == len(tasks)
    random = SMALL.replace("[[systems]]", '[[systems]]\ninit = "random"')
    assert not any(t.batched for t in expand(read_sweep(write_sweep(tmp_path, random, True,
                                                                    "r.toml"))))  # fmt: skip


def test_the_papers_replica_networks_are_batched_and_its_baselines_not():
    tasks = expand(read_sweep("examples/sk_paper.toml"))
    assert {t.architecture for t in tasks if t.batched} == {"SK_RS", "SK_1RSB", "SK_2RSB"}
    assert {t.architecture for t in tasks if not t.batched} == {"1L", "MADE_21", "MADE_22"}
    assert sorted(len(unit) for unit in _units(list(tasks)))[-9:] == [10] * 9


def test_a_sparse_couplings_file_keeps_its_frontier_network_alone(tmp_path):
    """A ring's couplings file takes the frontier network, which no module of several
    instances holds: its task trains alone."""
    lines = [f"{i} {(i + 1) % 40} 1.0" for i in range(40)]
    (tmp_path / "ring.txt").write_text("\n".join(lines) + "\n")
    text = SCHEDULE + ('[[systems]]\nsystem = "general"\ncouplings = ["ring.txt"]\n'
                       'architectures = ["SK_RS"]\nbatch_instances = true\n')  # fmt: skip
    (task,) = expand(read_sweep(write_sweep(tmp_path, text, False, "ring.toml")))
    assert not task.batched


def test_a_batched_sweep_gives_the_numbers_and_files_of_the_unbatched_one(sweeps):
    alone, together = runs(sweeps / "alone"), runs(sweeps / "together")
    assert alone.keys() == together.keys() and len(alone) == 9
    for task_id, theirs in alone.items():
        assert_same_numbers(together[task_id], theirs)
    for task in expand(read_sweep(sweeps / "together.toml")):
        folder = run_folder(task, sweeps / "together")
        assert {p.name for p in folder.iterdir()} == RUN_FILES
        recorded = json.loads((folder / "task.json").read_text())
        assert recorded["signature"] == task.signature()
        assert recorded["task"].get("batched", False) == task.batched
    manifest = json.loads((sweeps / "together" / MANIFEST).read_text())
    assert len(manifest["tasks"]) == 9
    assert {e["state"] for e in manifest["tasks"].values()} == {"done"}
    assert all(e["attempts"] == 1 and e["seconds"] > 0 for e in manifest["tasks"].values())
    assert len(list((sweeps / "together" / "modules").glob("*.py"))) == 3  # one per bundle


def test_a_batched_task_run_alone_is_a_module_of_its_instance(sweeps, tmp_path):
    """run_task of a batched task (an SK seed, a couplings file) trains a module of that one
    instance, with the numbers of its unbatched task."""
    from arnn_gen.sweep import run_task

    tasks = {t.id: t for t in expand(read_sweep(sweeps / "together.toml"))}
    alone = runs(sweeps / "alone")
    for task_id in ("sk_n6_s1/SK_1RSB", "general_n6_i1_sk4/SK_RS"):
        result = run_task(tasks[task_id], tmp_path)
        assert result["trained"] and tasks[task_id].batched
        assert_same_numbers(result, alone[task_id])
        assert run_task(tasks[task_id], tmp_path)["trained"] is False


def test_the_report_of_a_batched_sweep(sweeps):
    tables = {}
    for name in ("alone", "together"):
        summary = json.loads((sweeps / name / "summary.json").read_text())
        tables[name] = {(r["system"], r["architecture"], r["N"]): r for r in summary["table"]}
        assert (sweeps / name / "figures" / "overlap_sk_n6.png").stat().st_size > 1000
    assert tables["alone"].keys() == tables["together"].keys()
    for key, row in tables["alone"].items():
        for column, value in row.items():
            if column != "seconds" and isinstance(value, float):
                assert tables["together"][key][column] == pytest.approx(value, rel=1e-8), column
    report = run("sweep", sweeps / "together.toml", "--report", "--out", sweeps / "together")
    assert report.exit_code == 0, report.output
    assert "| sk | SK_1RSB | 6 | 2 | exact |" in report.stdout


def test_running_a_finished_batched_sweep_again_changes_nothing(sweeps, tmp_path, quick_report):
    out = tmp_path / "copy"
    shutil.copytree(sweeps / "together", out)
    rewritten = ("summary.json", "summary.md", "summary.csv", MANIFEST)  # same contents
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")
              if p.is_file() and p.name not in rewritten}  # fmt: skip
    manifest = json.loads((out / MANIFEST).read_text())
    again = run("sweep", sweeps / "together.toml", "--serial", "--out", out)
    assert again.exit_code == 0, again.output
    assert "9 of 9 tasks already finished" in again.stdout and " done in " not in again.stdout
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / MANIFEST).read_text())["tasks"] == manifest["tasks"]


def _interrupting(monkeypatch, name: str, call: int) -> None:
    """arnn_gen.learn.instances.<name> raises KeyboardInterrupt at its ``call``-th call."""
    import arnn_gen.learn.instances as instances

    original = getattr(instances, name)
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(instances, name, interrupted)


def test_an_interrupted_bundle_resumes_to_the_numbers_of_an_uninterrupted_one(
    sweeps, tmp_path, monkeypatch, quick_report
):
    path = write_sweep(tmp_path, SMALL, True, "small.toml")
    sweep, out = read_sweep(path), tmp_path / "out"
    with monkeypatch.context() as patch:
        _interrupting(patch, "_estimates", 2)  # the second beta's: the first is checkpointed
        with pytest.raises(KeyboardInterrupt):
            run_sweep(sweep, out, serial=True)
    manifest = json.loads((out / MANIFEST).read_text())
    assert {e["state"] for e in manifest["tasks"].values()} == {"running"}
    for task in expand(sweep):
        checkpoint = torch.load(run_folder(task, out) / "checkpoint.pt", weights_only=True)
        assert checkpoint["done"] == 1
    run_sweep(sweep, out, serial=True)
    whole, resumed = runs(sweeps / "alone"), runs(out)
    assert resumed.keys() == {"sk_n6_s0/SK_RS", "sk_n6_s1/SK_RS"}
    for task_id, mine in resumed.items():
        assert_same_numbers(mine, whole[task_id])
    manifest = json.loads((out / MANIFEST).read_text())
    assert {(e["state"], e["attempts"]) for e in manifest["tasks"].values()} == {("done", 2)}


def test_a_bundle_interrupted_while_writing_its_final_files_finishes_the_rest(
    sweeps, tmp_path, monkeypatch, quick_report
):
    """The first instance's final files are written, the second's not: running again skips
    the first (its files untouched) and finishes the second alone from its checkpoint."""
    path = write_sweep(tmp_path, SMALL, True, "small.toml")
    sweep, out = read_sweep(path), tmp_path / "out"
    first, second = expand(sweep)
    with monkeypatch.context() as patch:
        _interrupting(patch, "_save_torch", 2)  # model.pt of the second instance
        with pytest.raises(KeyboardInterrupt):
            run_sweep(sweep, out, serial=True)
    assert (run_folder(first, out) / "model.pt").is_file()
    assert not (run_folder(second, out) / "model.pt").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in run_folder(first, out).iterdir()}
    run_sweep(sweep, out, serial=True)
    assert {p: p.stat().st_mtime_ns for p in run_folder(first, out).iterdir()} == stamps
    whole, resumed = runs(sweeps / "alone"), runs(out)
    for task_id, mine in resumed.items():
        assert_same_numbers(mine, whole[task_id])
    assert {p.name for p in run_folder(second, out).iterdir()} == RUN_FILES
    manifest = json.loads((out / MANIFEST).read_text())["tasks"]
    assert manifest[first.id]["state"] == manifest[second.id]["state"] == "done"


def test_flipping_batch_instances_under_the_same_output_is_refused_unless_forced(
    tmp_path, quick_report
):
    batched = write_sweep(tmp_path, SMALL, True, "batched.toml")
    alone = write_sweep(tmp_path, SMALL, False, "alone.toml")
    out = tmp_path / "out"
    assert run("sweep", batched, "--serial", "--out", out, "--quiet").exit_code == 0
    assert_one_line_error(run("sweep", alone, "--serial", "--out", out), 1,
                          "of another definition")  # fmt: skip
    forced = run("sweep", alone, "--serial", "--out", out, "--force", "--quiet")
    assert forced.exit_code == 0, forced.output
    for task in expand(read_sweep(alone)):
        recorded = json.loads((run_folder(task, out) / "task.json").read_text())
        assert "batched" not in recorded["task"]
    assert_one_line_error(run("sweep", batched, "--serial", "--out", out), 1,
                          "of another definition")  # fmt: skip
    # a run folder trained alone is not resumed by a bundle (nor the reverse)
    from arnn_gen.sweep.task import run_bundle

    task = next(t for t in expand(read_sweep(batched)))
    with pytest.raises(ArnnGenError, match="another task definition"):
        run_bundle([task], out)


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ('batch_instances = "yes"\n', "batch_instances must be true or false, got 'yes'"),
        ("batch_instances = 1\n", "batch_instances must be true or false"),
    ],
)
def test_a_bad_batch_instances_is_one_line(tmp_path, table, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(SMALL.format(batch=table))
    with pytest.raises(ArnnGenError) as error:
        read_sweep(path)
    assert fragment in str(error.value) and "\n" not in str(error.value)
    assert_one_line_error(run("sweep", path, "--serial", "--out", tmp_path / "o"), 1, fragment)


def test_batch_instances_needs_a_schedule_a_module_of_several_instances_follows(tmp_path):
    path = tmp_path / "natural.toml"
    text = SMALL.replace('device = "cpu"', 'device = "cpu"\noptimizer = "natural"')
    path.write_text(text.format(batch="batch_instances = true\n"))
    assert_one_line_error(run("sweep", path, "--serial", "--out", tmp_path / "o"), 1,
                          "batch_instances trains with Adam")  # fmt: skip
    path.write_text(text.format(batch=""))
    read_sweep(path)  # without the key, the same schedule is a valid sweep


@pytest.mark.slow
def test_a_bundle_is_one_dask_task(sweeps, tmp_path):
    """On a local cluster of one worker, the bundle runs there as one task and gives the
    numbers of the sweep run in this process."""
    pytest.importorskip("distributed")
    path = write_sweep(tmp_path, SMALL, True, "small.toml")
    out = tmp_path / "out"
    run_sweep(read_sweep(path), out, workers=1, threads=1)
    whole = runs(sweeps / "together")
    for task_id, mine in runs(out).items():
        assert_same_numbers(mine, whole[task_id])
    manifest = json.loads((out / MANIFEST).read_text())["tasks"]
    assert {(e["state"], e["attempts"]) for e in manifest.values()} == {("done", 1)}


def test_a_failed_bundle_fails_each_of_its_tasks(tmp_path, monkeypatch):
    import arnn_gen.sweep.runner as runner

    def broken(tasks, out, **options):
        raise ArnnGenError(f"{tasks[0].id}: diverged on purpose")

    monkeypatch.setattr(runner, "run_bundle", broken)
    path = write_sweep(tmp_path, SMALL, True, "small.toml")
    with pytest.raises(ArnnGenError, match="2 of 2 tasks failed \\(none finished\\).*diverged"):
        run_sweep(read_sweep(path), tmp_path / "out", serial=True)
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())["tasks"]
    assert {(e["state"], e["attempts"]) for e in manifest.values()} == {("failed", 1)}
    assert all("diverged on purpose" in e["error"] for e in manifest.values())


def test_a_bundle_stays_within_the_bounds_of_a_training_step():
    """K N^2 couplings within the dense budget, and K x N x the largest draw (the batch, the
    final P(q), the sweep's P(q)) within MAX_BATCH_SPINS, as arnn-gen train requires."""
    from arnn_gen.checks import MAX_BATCH_SPINS, MAX_DENSE_N
    from arnn_gen.learn.train import TrainConfig
    from arnn_gen.sweep.task import bundle_capacity

    for N, batch, samples in ((20, 2000, 20000), (1000, 2000, 20000), (200, 500, 1000),  # noqa: N806
                              (50, 2000, 100000)):  # fmt: skip
        config = TrainConfig(beta=1.0, batch=batch, eval_samples=samples)
        capacity = bundle_capacity(N, config)
        drawn = max(batch, samples, 2000)
        assert capacity * N * drawn <= MAX_BATCH_SPINS and capacity * N * N <= MAX_DENSE_N**2
        assert (capacity + 1) * N * drawn > MAX_BATCH_SPINS or capacity == 1024
    assert bundle_capacity(1000) == MAX_DENSE_N**2 // 1000**2  # the couplings alone
