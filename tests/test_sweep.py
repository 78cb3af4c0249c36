"""arnn-gen sweep: the sweep file, its tasks, the manifest, resuming (in this process and on
Dask, with a worker killed mid-task), the report, and reproduce as a preset of a sweep."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import torch
from cli_runner import assert_one_line_error, run

from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import enumerate_exact
from arnn_gen.sweep import MANIFEST, expand, read_sweep, run_sweep
from arnn_gen.sweep.report import TABLE_KEYS
from arnn_gen.sweep.task import run_folder
from arnn_gen.systems import sherrington_kirkpatrick

SCHEDULE = """
[schedule]
beta = 1.4
beta_start = 1.0
beta_step = 0.2
steps_per_beta = 4
batch = 64
lr = 1e-2
eval_samples = 128
dtype = "float64"
device = "cpu"
"""

SMALL = (
    'name = "small"\n'
    + SCHEDULE
    + """
[[systems]]
system = "sk"
sizes = [6]
instances = "0-1"
architectures = ["SK_RS", "1L"]
"""
)


def write(tmp_path, text, name="sweep.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def finals(out) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return {r["id"]: (r["rows"], r["final"], r["overlap"]) for r in summary["runs"]}


def test_the_file_expands_into_tasks_in_order(tmp_path):
    sweep = read_sweep(write(tmp_path, SMALL + """
[[systems]]
system = "ea2d"
L = [3]
W = 2
boundary = "open"
architectures = ["SK_1RSB"]

[[systems]]
system = "cw"
sizes = [5, 7]
architectures = ["CW_inf"]
"""))  # fmt: skip
    tasks = expand(sweep)
    assert [t.id for t in tasks] == [
        "sk_n6_s0/SK_RS", "sk_n6_s0/1L", "sk_n6_s1/SK_RS", "sk_n6_s1/1L",
        "ea2d_3x2_s0/SK_1RSB", "cw_n5_s0/CW_inf", "cw_n7_s0/CW_inf",
    ]  # fmt: skip
    assert [t.N for t in tasks] == [6, 6, 6, 6, 6, 5, 7]
    assert sweep.schedule.steps_per_beta == 4 and sweep.schedule.dtype == "float64"
    assert len({t.signature() for t in tasks}) == len(tasks)
    assert tasks[0].signature() == expand(read_sweep(tmp_path / "sweep.toml"))[0].signature()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[schedule]\nbeta = 1.0\n", "at least one [[systems]]"),
        ('[[systems]]\nsystem = "sk"\nsizes = [4]\narchitectures = ["1L"]\n', "[schedule]"),
        (SCHEDULE + '[[systems]]\nsystem = "xy"\n', "system must be one of"),
        (SCHEDULE + '[[systems]]\nsystem = "sk"\nsizes = [4]\narchitectures = ["GPT"]\n',
         "unknown architecture 'GPT'"),
        (SCHEDULE + '[[systems]]\nsystem = "sk"\nsizes = [4]\narchitectures = ["CW_inf"]\n',
         "[[systems]] sk size 4"),
        (SCHEDULE + '[[systems]]\nsystem = "cw"\nsizes = [4]\ninstances = [1]\n'
         'architectures = ["1L"]\n', "do not apply"),
        (SCHEDULE + '[[systems]]\nsystem = "sk"\nsizes = [4, 4]\narchitectures = ["1L"]\n',
         "repeats a value"),
        (SCHEDULE + '[[systems]]\nsystem = "sk"\nsizes = [4]\ninstances = "3-1"\n'
         'architectures = ["1L"]\n', "is empty"),
        (SCHEDULE + '[[systems]]\nsystem = "ea2d"\nsizes = [4]\narchitectures = ["1L"]\n',
         "do not apply"),
        (SCHEDULE + '[[systems]]\nsystem = "sk"\nsizes = [4]\narchitectures = ["1L"]\n'
         '[[systems]]\nsystem = "sk"\nsizes = [4]\narchitectures = ["1L"]\n', "twice"),
        (SCHEDULE.replace("steps_per_beta", "steps") + '[[systems]]\nsystem = "sk"\n'
         'sizes = [4]\narchitectures = ["1L"]\n', "unknown key(s) steps"),
        (SCHEDULE.replace("batch = 64", "batch = -1") + '[[systems]]\nsystem = "sk"\n'
         'sizes = [4]\narchitectures = ["1L"]\n', "batch"),
        ("beta = [", "sweep file"),
        (SCHEDULE + "[[systems]]\nsystem = 'general'\ncouplings = ['none.npz']\n"
         "architectures = ['1L']\n", "does not exist"),
    ],
)  # fmt: skip
def test_a_bad_sweep_file_is_one_line(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ArnnGenError, match=None) as error:
        read_sweep(path)
    assert fragment in str(error.value) and "\n" not in str(error.value)
    assert_one_line_error(run("sweep", path, "--serial", "--out", tmp_path / "o"), 1, fragment)


def test_a_serial_sweep_trains_reports_and_skips_what_is_finished(tmp_path):
    path = write(tmp_path, SMALL)
    out = tmp_path / "out"
    result = run("sweep", path, "--serial", "--out", out)
    assert result.exit_code == 0, result.output
    assert (
        result.stdout.count(" done in ") == 4 and "| sk | SK_RS | 6 | 2 | exact |" in result.stdout
    )
    manifest = json.loads((out / MANIFEST).read_text())
    assert {e["state"] for e in manifest["tasks"].values()} == {"done"}
    summary = json.loads((out / "summary.json").read_text())
    for entry in summary["runs"]:  # the exact reference is the enumerated f of the instance
        exact = enumerate_exact(sherrington_kirkpatrick(6, seed=entry["instance"]), 1.4)
        assert entry["final"]["exact_free_energy"] == pytest.approx(exact.free_energy, rel=1e-12)
        assert entry["overlap"]["beta"] == pytest.approx(1.4)  # the first beta >= 1.3
    row = next(r for r in summary["table"] if r["architecture"] == "1L")
    errors = [r["final"]["relative_error"] for r in summary["runs"] if r["architecture"] == "1L"]
    assert row["final_relative_error"] == pytest.approx(sum(errors) / 2)
    assert row["final_relative_error_spread"] == pytest.approx(abs(errors[0] - errors[1]) / 2**0.5)
    assert (out / "summary.csv").read_text().splitlines()[0] == ",".join(TABLE_KEYS)
    assert (out / "figures" / "relative_error_sk.png").stat().st_size > 1000
    assert (out / "figures" / "overlap_sk_n6.png").stat().st_size > 1000
    assert (out / "sk_n6_s1" / "plots" / "free_energy.png").is_file()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("checkpoint.pt")}
    again = run("sweep", path, "--serial", "--out", out)
    assert again.exit_code == 0 and "4 of 4 tasks already finished" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("checkpoint.pt")} == stamps
    assert json.loads((out / MANIFEST).read_text())["tasks"] == manifest["tasks"]
    report = run("sweep", path, "--report", "--out", out)
    assert report.exit_code == 0 and "| sk | 1L | 6 | 2 | exact |" in report.stdout


def test_an_interrupted_task_resumes_to_the_numbers_of_an_uninterrupted_one(tmp_path):
    sweep = read_sweep(write(tmp_path, SMALL))
    whole = run_sweep(sweep, tmp_path / "whole", serial=True).parent
    out = tmp_path / "broken"
    import arnn_gen.learn.train as training

    original = training.train

    def interrupted(*args, after_beta=None, **kwargs):
        def stop(index, beta):
            if index == 1:
                raise KeyboardInterrupt  # after the checkpoint of the second beta

        return original(*args, after_beta=stop, **kwargs)

    training.train = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(sweep, out, serial=True)
    finally:
        training.train = original
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["tasks"]["sk_n6_s0/SK_RS"]["state"] == "running"
    assert (out / "sk_n6_s0" / "SK_RS" / "checkpoint.pt").is_file()
    run_sweep(sweep, out, serial=True)
    assert finals(out) == finals(whole)
    assert json.loads((out / MANIFEST).read_text())["tasks"]["sk_n6_s0/SK_RS"]["attempts"] == 2


def test_another_definition_under_the_same_output_is_refused_unless_forced(tmp_path):
    path = write(tmp_path, SMALL)
    out = tmp_path / "out"
    assert run("sweep", path, "--serial", "--out", out, "--quiet").exit_code == 0
    changed = write(tmp_path, SMALL.replace("steps_per_beta = 4", "steps_per_beta = 5"))
    assert_one_line_error(run("sweep", changed, "--serial", "--out", out), 1,
                          "of another definition")  # fmt: skip
    forced = run("sweep", changed, "--serial", "--out", out, "--force", "--quiet")
    assert forced.exit_code == 0, forced.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["steps_per_beta"] == 5 and len(summary["runs"]) == 4


def test_cli_errors_of_sweep(tmp_path):
    path = write(tmp_path, SMALL)
    cases = [
        (("sweep", tmp_path / "none.toml"), "does not exist"),
        (("sweep", path, "--serial", "--workers", "2"), "--serial runs here"),
        (("sweep", path, "--workers", "0"), "--workers"),
        (("sweep", path, "--report", "--out", tmp_path / "empty"), "holds no sweep"),
    ]
    for args, fragment in cases:
        assert_one_line_error(run(*args), 1, fragment)


def test_reproduce_is_a_preset_of_sweep_and_resumes(tmp_path):
    out = tmp_path / "part"
    args = ("reproduce", "sk", "--quick", "--device", "cpu", "--out", out, "--instances", "1",
            "--architectures", "1L")  # fmt: skip
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert json.loads((out / MANIFEST).read_text())["tasks"]["sk_n12_s1/1L"]["state"] == "done"
    again = run(*args)
    assert again.exit_code == 0 and "1 of 1 tasks already finished" in again.stdout
    assert json.loads((out / "summary.json").read_text())["mode"] == "quick"


def _sweep_text(steps: int) -> str:
    return f"""
name = "kill"
[schedule]
beta = 1.5
beta_start = 0.5
beta_step = 0.25
steps_per_beta = {steps}
batch = 200
lr = 1e-2
eval_samples = 400
dtype = "float64"
device = "cpu"

[[systems]]
system = "sk"
sizes = [14]
instances = "0-1"
architectures = ["SK_1RSB", "SK_RS"]
"""


def _between_checkpoints(folder) -> bool:
    """A task has written a checkpoint but not its final metrics: it is mid-run."""
    if not (folder / "checkpoint.pt").is_file():
        return False
    try:
        return not json.loads((folder / "metrics.json").read_text()).get("final")
    except (OSError, ValueError):
        return True


@pytest.mark.slow
def test_a_worker_killed_mid_task_loses_only_that_tasks_progress(tmp_path):
    """Four tasks on a local Dask cluster of two workers; while a task is between two
    checkpoints both worker processes are killed (SIGKILL); the nannies restart them, the
    scheduler runs the lost tasks again, they resume from their checkpoints, and every
    result equals that of an uninterrupted sweep run in this process."""
    distributed = pytest.importorskip("distributed")
    sweep = read_sweep(write(tmp_path, _sweep_text(30)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' threads: the same sums, the same numbers
    try:
        whole = run_sweep(sweep, tmp_path / "whole", serial=True).parent
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "killed"
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=50)  # fmt: skip
    try:
        with distributed.Client(cluster) as client:
            before = set(client.run(os.getpid).values())
            outcome = {}

            def sweep_in_background():
                try:
                    outcome["summary"] = run_sweep(sweep, out, scheduler=cluster.scheduler_address,
                                                   threads=1)  # fmt: skip
                except BaseException as error:  # noqa: BLE001 (reported by the assertion below)
                    outcome["error"] = error

            runner = threading.Thread(target=sweep_in_background)
            runner.start()
            interrupted = None
            deadline = time.monotonic() + 120
            while interrupted is None and time.monotonic() < deadline and runner.is_alive():
                for task in expand(sweep):
                    if _between_checkpoints(run_folder(task, out)):
                        interrupted = task.id
                        break
                time.sleep(0.02)
            assert interrupted is not None, "no task was seen between two checkpoints"
            for pid in before:
                os.kill(pid, signal.SIGKILL)
            runner.join(timeout=300)
            assert not runner.is_alive() and "error" not in outcome, outcome
            after = set(client.run(os.getpid).values())
            assert not before & after  # both workers were replaced
    finally:
        cluster.close()
    assert finals(out) == finals(whole)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["tasks"][interrupted]["state"] == "done"


def test_the_example_sweep_files_parse():
    paper = read_sweep("examples/sk_paper.toml")
    tasks = expand(paper)
    assert len(tasks) == 3 * 10 * 6 and paper.schedule.steps_per_beta == 1000
    assert len(paper.schedule.betas()) == 39 and paper.device == "auto"
    assert {t.architecture for t in tasks} == {"SK_RS", "SK_1RSB", "SK_2RSB", "1L", "MADE_21",
                                               "MADE_22"}  # fmt: skip
    assert len(expand(read_sweep("examples/sweep_quick.toml"))) == 8


def test_a_baseline_on_a_large_lattice_is_measured_against_the_frontier_reference(tmp_path):
    """1L holds a 5 x 5 lattice densely (no reference beyond N = 20); the frontier network
    of the same instance knows the exact f by elimination, and the report uses it for both."""
    text = (
        SCHEDULE.replace("steps_per_beta = 4", "steps_per_beta = 2")
        + """
[[systems]]
system = "ea2d"
L = [5]
boundary = "open"
architectures = ["SK_RS", "1L"]
"""
    )
    out = tmp_path / "out"
    run_sweep(read_sweep(write(tmp_path, text)), out, serial=True)
    summary = json.loads((out / "summary.json").read_text())
    runs = {r["architecture"]: r for r in summary["runs"]}
    assert runs["1L"]["final"]["exact_free_energy"] is None
    exact = runs["SK_RS"]["final"]["exact_free_energy"]
    assert exact is not None
    table = {r["architecture"]: r for r in summary["table"]}
    assert table["1L"]["reference"] == "exact"
    f = runs["1L"]["final"]["free_energy"]
    assert table["1L"]["final_relative_error"] == pytest.approx(abs(f - exact) / abs(exact))


def test_couplings_files_are_the_instances_of_a_general_system(tmp_path):
    from arnn_gen.systems import sherrington_kirkpatrick

    (tmp_path / "data").mkdir()
    for seed in (3, 4):
        sherrington_kirkpatrick(5, seed=seed).save(tmp_path / "data" / f"sk{seed}.npz")
    text = (
        SCHEDULE
        + """
[[systems]]
system = "general"
couplings = ["data/sk3.npz", "data/sk4.npz"]
architectures = ["SK_RS"]
"""
    )
    tasks = expand(read_sweep(write(tmp_path, text)))
    assert [t.id for t in tasks] == ["general_n5_i0_sk3/SK_RS", "general_n5_i1_sk4/SK_RS"]
    assert tasks[0].couplings == str(tmp_path / "data" / "sk3.npz")
    signature = tasks[0].signature()
    sherrington_kirkpatrick(5, seed=9).save(tmp_path / "data" / "sk3.npz")  # another system
    assert expand(read_sweep(tmp_path / "sweep.toml"))[0].signature() != signature


def test_several_lattice_instances_keep_their_side(tmp_path):
    text = (
        SCHEDULE
        + """
[[systems]]
system = "ea2d"
L = [4]
instances = "0-2"
architectures = ["1L"]
"""
    )
    tasks = expand(read_sweep(write(tmp_path, text)))
    assert [t.group for t in tasks] == ["ea2d_4x4_s0", "ea2d_4x4_s1", "ea2d_4x4_s2"]
    assert {t.N for t in tasks} == {16}


def test_a_sweep_whose_tasks_all_fail_says_why(tmp_path, monkeypatch):
    import arnn_gen.sweep.runner as runner

    def broken(task, out, **options):
        raise ArnnGenError(f"{task.id}: broken on purpose")

    monkeypatch.setattr(runner, "run_task", broken)
    with pytest.raises(ArnnGenError, match="4 of 4 tasks failed \\(none finished\\).*broken"):
        run_sweep(read_sweep(write(tmp_path, SMALL)), tmp_path / "out", serial=True)
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert {e["state"] for e in manifest["tasks"].values()} == {"failed"}


def test_a_random_start_is_the_same_on_every_worker(tmp_path):
    """init = "random": the emitted module's start is drawn from torch's generator seeded with
    the instance, whatever the worker's generator held before."""
    from arnn_gen.sweep.task import build_model

    text = SMALL.replace('architectures = ["SK_RS", "1L"]',
                         'architectures = ["SK_1RSB"]\ninit = "random"')  # fmt: skip
    first, second = expand(read_sweep(write(tmp_path, text)))
    states = []
    for seed in (5, 6):
        torch.manual_seed(seed)  # the worker's generator, before the task
        states.append(build_model(first, tmp_path / "modules").state_dict())
    for name, value in states[0].items():
        assert torch.equal(value, states[1][name]), name
    other = build_model(second, tmp_path / "modules").state_dict()
    assert not torch.equal(other["a1"], states[0]["a1"])  # another instance, another start


def test_the_triton_backend_of_a_sweep_gives_the_torch_numbers(tmp_path):
    """backend = "triton": the replica forms are emitted with their Triton kernels (run
    here under Triton's interpreter when triton is installed, else their torch code), the
    baselines are not; the numbers are the torch sweep's to rounding, and the backend is
    part of each replica task's definition."""
    torch_sweep = write(tmp_path, SMALL, "torch.toml")
    triton_sweep = write(tmp_path, SMALL.replace('architectures = ["SK_RS", "1L"]',
                                                 'architectures = ["SK_RS", "1L"]\n'
                                                 'backend = "triton"'), "triton.toml")  # fmt: skip
    tasks = {task.id: task for task in expand(read_sweep(triton_sweep))}
    assert {tasks[i].backend for i in tasks} == {"torch", "triton"}
    assert tasks["sk_n6_s0/SK_RS"].backend == "triton" and tasks["sk_n6_s0/1L"].backend == "torch"
    plain = {task.id: task for task in expand(read_sweep(torch_sweep))}
    assert tasks["sk_n6_s0/1L"].signature() == plain["sk_n6_s0/1L"].signature()
    assert tasks["sk_n6_s0/SK_RS"].signature() != plain["sk_n6_s0/SK_RS"].signature()
    runs = [run_sweep(read_sweep(path), tmp_path / path.stem, serial=True).parent
            for path in (torch_sweep, triton_sweep)]  # fmt: skip
    mine, theirs = finals(runs[1]), finals(runs[0])
    assert set(mine) == set(theirs)
    for key, (rows, final, _) in theirs.items():
        for a, b in zip(mine[key][0], rows, strict=True):
            assert a["free_energy"] == pytest.approx(b["free_energy"], rel=1e-8)
        assert mine[key][1]["free_energy"] == pytest.approx(final["free_energy"], rel=1e-8)
    recorded = json.loads((runs[1] / "sk_n6_s0" / "SK_RS" / "task.json").read_text())
    assert recorded["task"]["backend"] == "triton"
    bad = write(tmp_path, SMALL.replace('architectures = ["SK_RS", "1L"]',
                                        'architectures = ["SK_RS"]\nbackend = "cuda"'))  # fmt: skip
    with pytest.raises(ArnnGenError, match="backend must be torch or triton"):
        read_sweep(bad)
