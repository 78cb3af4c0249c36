"""Property-based tests of the file readers and the command line against DESIGN.md's
"Errors" contract, over drawn inputs (hypothesis).

(a) ``systems.load`` on random text edge lists and random bytes named ``.npz`` either
    returns a Hamiltonian or raises ArnnGenError with a one-line message: no other exception,
    and nothing allocated beyond a bound. Sizes past the documented limits must be refused
    before J exists, so the reader runs in a worker process whose address space is limited
    (RLIMIT_AS) to what it had after import plus ``LOAD_MEMORY_BOUND``.
(b) ``arnn-gen exact | emit | derive | sample | mcmc | train | fit`` over drawn arguments
    (sizes, betas, seeds, names, output paths, input files that are valid, garbage, missing
    or corrupt): the exit status is 0, 1 or 2; a failure prints exactly one stderr line
    ``arnn-gen: error: ...`` (a success at most one); never a traceback; nothing is created
    outside the working folder; no temporary file is left behind; no existing file is changed
    without ``--force``. Each run gets a fresh working folder (``root/cwd``, inputs included)
    and ``root`` must hold nothing else afterwards.

Every CLI example runs in its own process. By default that process is forked from a server
that imported arnn_gen (and torch) once: the same ``main`` the console script calls, a fresh
process state, real file descriptors and exit status, at ~0.1 s instead of ~2 s a run. Set
``ARNN_GEN_PROPERTY_RUNNER=subprocess`` to run each example as ``python -m arnn_gen.cli``
instead (slow; ``test_fork_runner_matches_a_real_process`` checks that both agree).
``ARNN_GEN_PROPERTY_EXAMPLES`` multiplies every example count (e.g. 10 for a long search).
Each CLI run has its address space limited as the reader worker's (``CLI_MEMORY_BOUND``), so
a size that is not checked fails as a MemoryError-turned-exit-3 instead of exhausting the
machine, and each run must finish within ``CLI_TIMEOUT`` seconds.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import itertools
import json
import keyword
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        sys.platform != "linux", reason="the runners use fork, /proc and RLIMIT_AS (Linux)"
    ),
]

SCALE = float(os.environ.get("ARNN_GEN_PROPERTY_EXAMPLES", "1"))
RUNNER = os.environ.get("ARNN_GEN_PROPERTY_RUNNER", "fork")
LOAD_MEMORY_BOUND = 3 * 1024**3  # bytes beyond the reader's size after import
CLI_MEMORY_BOUND = 4 * 1024**3  # bytes beyond the CLI's size after import
SUBPROCESS_MEMORY_LIMIT = 8 * 1024**3  # whole address space of a `python -m` run
LOAD_TIMEOUT = 30.0
CLI_TIMEOUT = 20.0


def _examples(count: int) -> int:
    return max(1, round(count * SCALE))


def _settings(count: int):
    return settings(
        max_examples=_examples(count),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ARNN_GEN_DEBUG", "PYTHONSTARTUP")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return env


# --------------------------------------------------------------------------------------
# Worker processes: a reader under RLIMIT_AS, and a fork server for the CLI
# --------------------------------------------------------------------------------------

_VM_SIZE = r'''
import sys
# `python -c` puts the working folder first on sys.path; the console script does not, and a
# run's folder may hold files such as numpy.py (emit --name numpy --out .).
sys.path = [path for path in sys.path if path != ""]

import resource

def limit_address_space(extra):
    """RLIMIT_AS = this process's size now + extra (Linux /proc; no limit elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            size = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize:"))
    except (OSError, StopIteration):
        return None
    resource.setrlimit(resource.RLIMIT_AS, (size + extra, size + extra))
    return size
'''

_LOAD_WORKER = (
    _VM_SIZE
    + r"""
import json, sys, traceback
from arnn_gen import systems
from arnn_gen.errors import ArnnGenError

limit_address_space(int(sys.argv[1]))
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    path = json.loads(line)
    try:
        loaded = systems.load(path)
        if isinstance(loaded, systems.Hamiltonian):
            reply = {"outcome": "hamiltonian", "N": int(loaded.N)}
        else:
            reply = {"outcome": "other", "error": f"returned a {type(loaded).__name__}"}
    except ArnnGenError as error:
        reply = {"outcome": "error", "message": str(error)}
    except BaseException as error:  # noqa: BLE001 - reported, the property fails
        reply = {
            "outcome": "other",
            "error": f"{type(error).__name__}: {error}"[:400],
            "traceback": traceback.format_exc()[-1500:],
        }
    print(json.dumps(reply), flush=True)
"""
)

_FORK_SERVER = (
    _VM_SIZE
    + r"""
import atexit, json, os, sys, traceback
import arnn_gen.cli
from arnn_gen.cli import main
# What the commands import lazily, imported once here so that each child starts fast.
for name in ("torch", "arnn_gen.learn.train", "arnn_gen.learn.mcmc", "arnn_gen.learn.plots",
             "arnn_gen.codegen.emit", "arnn_gen.symbolic.derive", "arnn_gen.symbolic.display",
             "arnn_gen.exact", "arnn_gen.learn.natural"):
    try:
        __import__(name)
    except Exception:
        pass
extra = int(sys.argv[1])
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the run: as `arnn-gen ARGS` started in request["cwd"]
        code = 1
        try:
            os.chdir(request["cwd"])
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
                handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(handle, fd)
                os.close(handle)
            limit_address_space(extra)
            sys.argv = ["arnn-gen", *request["args"]]
            try:
                main(args=request["args"], prog_name="arnn-gen")
                code = 0
            except SystemExit as done:  # what the interpreter does with it
                if done.code is None:
                    code = 0
                elif isinstance(done.code, int):
                    code = done.code
                else:
                    print(done.code, file=sys.stderr)
                    code = 1
            except BaseException:  # an uncaught exception: the interpreter's traceback
                traceback.print_exc()
                code = 1
            try:
                atexit._run_exitfuncs()
            except BaseException:
                traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code & 0xFF)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)
"""
)


class _Worker:
    """A Python process answering one JSON line per JSON line it reads."""

    def __init__(self, source: str, *args: str):
        self.argv = [sys.executable, "-c", source, *args]
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=_child_env(),
                cwd=tempfile.gettempdir(),
            )
            assert self._read(120) == {"ready": True}, "the worker process did not start"
        return self.process

    def _read(self, timeout: float) -> dict | None:
        assert self.process is not None and self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the worker process died")
        return json.loads(line)

    def send(self, request) -> None:
        process = self._start()
        assert process.stdin is not None
        process.stdin.write(json.dumps(request) + "\n")
        process.stdin.flush()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None


class _Reader(_Worker):
    def __init__(self):
        super().__init__(_LOAD_WORKER, str(LOAD_MEMORY_BOUND))

    def load(self, path: Path) -> dict:
        self.send(str(path))
        try:
            reply = self._read(LOAD_TIMEOUT)
        except RuntimeError:
            self.stop()
            return {"outcome": "other", "error": "the reader process died (a signal?)"}
        if reply is None:
            self.stop()
            return {"outcome": "other", "error": f"load did not finish in {LOAD_TIMEOUT} s"}
        return reply


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    timed_out: bool = False


class _ForkRunner(_Worker):
    def __init__(self):
        super().__init__(_FORK_SERVER, str(CLI_MEMORY_BOUND))

    def run(self, args, cwd: Path, streams: Path) -> Result:
        out, err = streams / "stdout", streams / "stderr"
        self.send({"args": list(args), "cwd": str(cwd), "stdout": str(out), "stderr": str(err)})
        started = self._read(30)
        assert started is not None and "pid" in started, "the fork server did not answer"
        done = self._read(CLI_TIMEOUT)
        timed_out = done is None
        if timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.kill(started["pid"], signal.SIGKILL)
            done = self._read(30)
            assert done is not None, "the fork server did not reap a killed run"
        return Result(
            done["status"],
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
            timed_out,
        )


class _SubprocessRunner:
    def run(self, args, cwd: Path, streams: Path) -> Result:
        def limit() -> None:
            import resource

            limit = (SUBPROCESS_MEMORY_LIMIT, SUBPROCESS_MEMORY_LIMIT)
            resource.setrlimit(resource.RLIMIT_AS, limit)

        try:
            # -P (3.11+): no working folder on sys.path, as with the console script
            safe_path = ["-P"] if sys.version_info >= (3, 11) else []
            done = subprocess.run(
                [sys.executable, *safe_path, "-m", "arnn_gen.cli", *args],
                cwd=cwd,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=CLI_TIMEOUT,
                env=_child_env(),
                stdin=subprocess.DEVNULL,
                preexec_fn=limit,
            )
        except subprocess.TimeoutExpired as expired:

            def text(data) -> str:
                return data.decode(errors="replace") if isinstance(data, bytes) else data or ""

            return Result(-9, text(expired.stdout), text(expired.stderr), True)
        return Result(done.returncode, done.stdout, done.stderr)

    def stop(self) -> None:
        pass


@pytest.fixture(scope="module")
def reader():
    worker = _Reader()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def fork_runner():
    runner = _ForkRunner()
    yield runner
    runner.stop()


@pytest.fixture(scope="module")
def runner(fork_runner):
    return _SubprocessRunner() if RUNNER == "subprocess" else fork_runner


def _mix(valid, bad=(), garbage=()):
    """Mostly ``valid`` (13 in 20), often ``bad`` (6 in 20: parses, but out of range or past
    a bound), sometimes ``garbage`` (1 in 20: does not even parse, so most of a case would go
    untested). Each is a strategy or a list of values; hypothesis shrinks towards ``valid``."""

    def strategy(values):
        if isinstance(values, st.SearchStrategy):
            return values
        return st.sampled_from(list(values)) if values else None

    parts = [strategy(valid), strategy(bad), strategy(garbage)]

    def pick(i: int):
        if i == 19 and parts[2] is not None:
            return parts[2]
        if i >= 13 and parts[1] is not None:
            return parts[1]
        return parts[0]

    return st.integers(0, 19).flatmap(pick)


# --------------------------------------------------------------------------------------
# (a) file readers
# --------------------------------------------------------------------------------------

HUGE_INDICES = [16384, 16385, 10**6, 10**7, 10**12, 2**63, 10**30]
INDEX = _mix(
    st.integers(0, 7).map(str),
    [str(i) for i in (-1, -(10**12), *HUGE_INDICES)],
    ["a", "1.5", "1e3", "0x3", "٣", "", "+2", "-0", "nan"],
)
VALUE = _mix(
    st.floats(-3, 3, allow_nan=False).map(repr),
    ["nan", "-nan", "inf", "-inf", "1e308", "1e309", "-0.0", "1_0", "٣"],
    ["abc", "0x1p3", "1,5"],
)
# N itself: never 1000..16384 (legitimate but gigabytes); 16385 and up must be refused.
N_TOKEN = _mix(
    st.integers(1, 8).map(str),
    ["0", "-1", "16385", "1000000", "10000000", "1000000000000", "1" + "0" * 30],
    ["2.5", "1e3", "abc", "nan", ""],
)
GARBAGE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=16)
LINE = st.one_of(
    st.builds("N {}".format, N_TOKEN),
    st.builds("{} {} {}".format, INDEX, INDEX, VALUE),
    st.builds("h {} {}".format, INDEX, VALUE),
    st.builds("{} # {}".format, st.builds("{} {} {}".format, INDEX, INDEX, VALUE), GARBAGE),
    st.sampled_from(["", "   ", "# comment", "#", "N", "h 1", "0 1", "0 1 1 1", "N 3 4", "\t"]),
    st.lists(st.one_of(INDEX, VALUE, GARBAGE), max_size=5).map(" ".join),
    GARBAGE,
)
EDGE_TEXT = st.one_of(
    st.lists(LINE, max_size=12).map(lambda lines: "\n".join(lines).encode("utf-8")),
    st.lists(LINE, max_size=6).map(lambda lines: "\r\n".join(lines).encode("utf-8")),
    st.binary(max_size=200),  # invalid UTF-8 too
    st.just(b""),
)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _npy_header_only(shape, descr: str = "<f8") -> bytes:
    """An .npy header that claims ``shape`` with no (or too little) data after it."""
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + b"\0" * 64


def _zip(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _symmetric(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.normal(size=(n, n)), 1)
    return upper + upper.T


def _valid_npz(n: int = 6, seed: int = 0) -> bytes:
    return _zip(
        {
            "J.npy": _npy(_symmetric(n, seed)),
            "h.npy": _npy(np.zeros(n)),
            "kind.npy": _npy(np.array("general")),
            "provenance.npy": _npy(np.array("{}")),
        }
    )


def _filled(shape, dtype: str, fill: float) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        return np.full(shape, fill).astype(dtype)


ARRAY = st.one_of(
    st.builds(lambda n, seed: _symmetric(n, seed), st.integers(0, 8), st.integers(0, 3)),
    st.builds(
        _filled,
        st.sampled_from([(), (0,), (3,), (3, 3), (3, 4), (2, 2, 2), (8, 8), (1, 1)]),
        st.sampled_from(["<f8", "<f4", ">f8", "<i8", "|b1", "<c16", "<U3", "<f2"]),
        st.sampled_from([0.0, 1.0, float("nan"), float("inf"), -1.0]),
    ),
    st.just(np.array([{"a": 1}, None], dtype=object)),  # a pickle inside the archive
)
STRING_MEMBER = st.one_of(
    st.sampled_from(["general", "cw", "sk", "bogus", ""]).map(np.array),
    st.sampled_from(
        ["{}", "[]", "null", "not json", '{"J": 1, "h": 0}', '{"J": 1, "h": 0, "seed": -1}',
         '{"J": "x", "h": 0}', '{"J": 1e999, "h": 0}', '{"J": 1, "h": 0, "seed": 1.5}']
    ).map(np.array),
    ARRAY,
)  # fmt: skip
MEMBER = st.sampled_from(["J.npy", "h.npy", "kind.npy", "provenance.npy", "x.npy", "J", "h"])
ARCHIVE = st.dictionaries(
    MEMBER,
    st.one_of(ARRAY.map(_npy), STRING_MEMBER.map(_npy), st.binary(max_size=64)),
    max_size=5,
).map(_zip)
HUGE_HEADER = st.builds(
    lambda shape, with_h: _zip(
        {"J.npy": _npy_header_only(shape), **({"h.npy": _npy(np.zeros(3))} if with_h else {})}
    ),
    st.sampled_from(
        [(16385, 16385), (10**6, 10**6), (10**12, 10**12), (2**62, 2**62), (8, 10**12),
         (10**12, 8), (3, 3), (10**6,), (0, 10**12)]
    ),
    st.booleans(),
)  # fmt: skip
MUTATED = st.builds(
    lambda data, cut, flips: _mutate(data, cut, flips),
    st.sampled_from([_valid_npz(), _valid_npz(3, 1)]),
    st.integers(0, 2000),
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=4),
)


def _with_compression_method(data: bytes, method: int) -> bytes:
    """``data`` (a zip) with every member's compression method field set to ``method``."""
    patched = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):  # local, central
        start = patched.find(signature)
        while start >= 0:
            patched[start + offset : start + offset + 2] = method.to_bytes(2, "little")
            start = patched.find(signature, start + 4)
    return bytes(patched)


def _mutate(data: bytes, cut: int, flips) -> bytes:
    mutable = bytearray(data[: max(1, cut)] if cut < len(data) else data)
    for position, value in flips:
        mutable[position % len(mutable)] = value
    return bytes(mutable)


UNSUPPORTED = st.builds(  # implode, deflate64, AES: methods zipfile cannot read
    _with_compression_method, st.just(_valid_npz()), st.sampled_from([6, 9, 99])
)
NPZ_BYTES = st.one_of(
    st.binary(max_size=300),
    ARCHIVE,
    HUGE_HEADER,
    MUTATED,
    UNSUPPORTED,
    st.just(_valid_npz()),
    st.just(b""),
)

_counter = itertools.count()


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


def _check_load(reader: _Reader, folder: Path, name: str, data: bytes) -> None:
    path = folder / f"{next(_counter)}_{name}"
    path.write_bytes(data)
    try:
        reply = reader.load(path)
    finally:
        path.unlink()
    assert reply["outcome"] != "other", (
        f"load of {name} {data[:200]!r}...: {reply.get('error')}\n{reply.get('traceback', '')}"
    )
    if reply["outcome"] == "error":
        message = reply["message"]
        assert message.strip() and "\n" not in message.strip(), f"not one line: {message!r}"
    else:
        assert reply["N"] >= 1


@_settings(150)
@given(data=EDGE_TEXT, suffix=st.sampled_from([".txt", ".edges", ".TXT", ""]))
@example(data=b"N 1000000000000\n", suffix=".txt")
@example(data=b"0 1000000000000 1.0\n", suffix=".txt")
@example(data=b"h 100000 1.0\n", suffix=".txt")
@example(data=b"N 16385\n", suffix=".txt")
@example(data=b"0 1 nan\n", suffix=".txt")
@example(data=b"-1 0 1\n", suffix=".txt")
@example(data=b"", suffix=".txt")
def test_load_edge_list_returns_a_system_or_arnn_gen_error(reader, scratch, data, suffix):
    _check_load(reader, scratch, f"edges{suffix}", data)


@_settings(150)
@given(data=NPZ_BYTES)
@example(data=_zip({"J.npy": _npy_header_only((10**6, 10**6))}))
@example(data=_zip({"J.npy": _npy_header_only((2**62, 2**62))}))
@example(data=_zip({"J.npy": _npy(np.array([{"a": 1}], dtype=object))}))
@example(data=b"PK\x03\x04garbage")
@example(data=_zip({"J.npy": _npy(_symmetric(3, 0)), "kind": b"not an array"}))
@example(data=_zip({"J": b"not an array"}))
@example(data=_with_compression_method(_valid_npz(), 99))
def test_load_npz_returns_a_system_or_arnn_gen_error(reader, scratch, data):
    _check_load(reader, scratch, "couplings.npz", data)


@_settings(30)
@given(data=st.one_of(NPZ_BYTES, EDGE_TEXT), suffix=st.sampled_from([".npz", ".txt"]))
def test_load_any_bytes_under_either_suffix(reader, scratch, data, suffix):
    _check_load(reader, scratch, f"crossed{suffix}", data)


# --------------------------------------------------------------------------------------
# (b) the command line
# --------------------------------------------------------------------------------------

MODULE = "sk_krsb1_n6"  # what `arnn-gen emit --system sk -N 6` writes


@dataclass(frozen=True)
class Case:
    """``arnn-gen ARGS`` run in a fresh folder holding ``files`` (relative path, spec).

    A spec is ``("bytes", data)``, ``("dir",)``, ``("fixture", key, appended_bytes)`` (an
    input the ``fixtures`` fixture made, then those bytes) or ``("head", key, count)`` (its
    first ``count`` bytes)."""

    args: tuple[str, ...]
    files: tuple[tuple[str, tuple], ...] = ()

    def command(self) -> str:
        return "arnn-gen " + shlex.join(self.args)


@dataclass
class Outcome:
    case: Case
    result: Result
    violations: list[str] = field(default_factory=list)

    def report(self) -> str:
        files = ", ".join(f"{path}={spec[0]}" for path, spec in self.case.files) or "none"
        return (
            f"{self.case.command()}\n  files: {files}\n  exit {self.result.code}"
            f"{' (timed out)' if self.result.timed_out else ''}\n"
            f"  stderr: {self.result.stderr[-1500:]!r}\n  stdout: {self.result.stdout[-300:]!r}\n"
            f"  violates: {'; '.join(self.violations)}"
        )


def _emit_fixture(runner, folder: Path, *args: str) -> Path:
    result = runner.run(["emit", "--out", str(folder), *args], folder, folder)
    assert result.code == 0, result.stderr
    return folder / result.stdout.strip().splitlines()[-1]


class Fixtures(dict):
    """key -> bytes of the inputs that examples copy into their folders (short repr, for
    hypothesis's report of a falsifying example)."""

    def __repr__(self) -> str:
        return f"Fixtures({sorted(self)})"


@pytest.fixture(scope="module")
def fixtures(fork_runner, tmp_path_factory) -> Fixtures:
    return make_fixtures(fork_runner, tmp_path_factory.mktemp("fixtures"))


def make_fixtures(fork_runner, folder: Path) -> Fixtures:
    """Emitted modules (sk N=6 and, for mismatches, N=5), their trained checkpoints, samples."""
    module = _emit_fixture(fork_runner, folder, "--system", "sk", "-N", "6")
    assert module.name == f"{MODULE}.py"
    other = _emit_fixture(fork_runner, folder, "--system", "sk", "-N", "5", "--seed", "3")
    files = Fixtures(
        {
            "module.py": module.read_bytes(),
            "module.npz": module.with_suffix(".npz").read_bytes(),
            "other.npz": other.with_suffix(".npz").read_bytes(),
        }
    )
    for key, path in (("", module), ("other_", other)):
        run = folder / f"{key}run"
        train = [
            "train", str(path), "--beta", "0.3", "--beta-start", "0.3", "--steps-per-beta", "1",
            "--batch", "8", "--eval-samples", "8", "--quiet", "--device", "cpu", "--out", str(run),
        ]  # fmt: skip
        result = fork_runner.run(train, folder, folder)
        assert result.code == 0, result.stderr
        files[f"{key}model.pt"] = (run / "model.pt").read_bytes()
        files[f"{key}checkpoint.pt"] = (run / "checkpoint.pt").read_bytes()
    rng = np.random.default_rng(0)
    for key, array in {
        "samples.npy": rng.choice(np.array([-1, 1], dtype=np.int8), size=(12, 6)),
        "samples_n5.npy": rng.choice(np.array([-1, 1], dtype=np.int8), size=(12, 5)),
        "samples_01.npy": rng.integers(0, 2, size=(12, 6)).astype(np.int8),
        "samples_float.npy": rng.choice([-1.0, 1.0, 0.5], size=(12, 6)),
        "samples_3d.npy": np.ones((2, 3, 6), dtype=np.int8),
        "samples_empty.npy": np.ones((0, 6), dtype=np.int8),
        "samples_object.npy": np.array([[1, -1]], dtype=object),
    }.items():
        files[key] = _npy(array)
    return files


def _materialize(cwd: Path, files, fixtures: dict[str, bytes]) -> None:
    for relative, spec in files:
        path = cwd / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if spec[0] == "dir":
            path.mkdir(exist_ok=True)
        elif spec[0] == "bytes":
            path.write_bytes(spec[1])
        elif spec[0] == "head":
            path.write_bytes(fixtures[spec[1]][: spec[2]])
        else:
            path.write_bytes(fixtures[spec[1]] + spec[2])


def _snapshot(root: Path) -> dict[str, str | None]:
    """relative path -> sha256 of a file's bytes (None for a folder, "link" for a link)."""
    entries: dict[str, str | None] = {}
    for directory, folders, names in os.walk(root):
        for name in folders + names:
            path = Path(directory) / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                entries[relative] = "link"
            elif path.is_dir():
                entries[relative] = None
            else:
                entries[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return entries


def _is_temporary(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return name.endswith(".tmp") or name.startswith("tmp")


def contract_violations(
    case: Case, result: Result, before: dict, after: dict, cwd: Path
) -> list[str]:
    """What DESIGN.md "Errors" forbids, as it can be seen from outside the process."""
    problems = []
    if result.timed_out:
        problems.append(f"did not finish within {CLI_TIMEOUT} s")
    if result.code not in (0, 1, 2):
        problems.append(f"exit status {result.code}, not 0, 1 or 2")
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        if "Traceback" in text:
            problems.append(f"a traceback on {stream}")
    lines = result.stderr.rstrip("\n").splitlines() if result.stderr.strip() else []
    if result.code != 0:
        if len(lines) != 1 or not lines[0].startswith("arnn-gen: error: "):
            problems.append(f"{len(lines)} stderr lines, not one 'arnn-gen: error: ...'")
    elif len(lines) > 1:
        problems.append(f"{len(lines)} stderr lines after a success")
    new = sorted(set(after) - set(before))
    outside = [p for p in new if p != "cwd" and not p.startswith("cwd/")]
    if outside:
        problems.append(f"created outside the working folder: {outside}")
    temporaries = [p for p in new if _is_temporary(p)]
    if temporaries:
        problems.append(f"temporaries left behind: {temporaries}")
    if "--force" not in case.args:
        changed = [p for p, digest in before.items() if after.get(p, "gone") != digest]
        if changed:
            problems.append(f"existing files changed or removed without --force: {changed}")
    if case.args[:1] == ("emit",) and result.code == 0:
        problems += _emit_violations(result, cwd)
    return problems


def _emit_violations(result: Result, cwd: Path) -> list[str]:
    """A successful emit printed the path of an importable module with a valid name."""
    # The path is the whole output (it may hold a newline: --out $'a\nb') or its last line.
    printed = [result.stdout.removesuffix("\n"), *result.stdout.splitlines()[-1:]]
    written = next((cwd / p for p in printed if p and (cwd / p).is_file()), None)
    if written is None:
        return [f"emit printed {result.stdout!r}, not the path of the module it wrote"]
    problems = []
    if not written.stem.isidentifier() or keyword.iskeyword(written.stem):
        problems.append(f"emit wrote module {written.name!r}: not an importable module name")
    try:
        ast.parse(written.read_bytes())
    except SyntaxError as error:
        problems.append(f"emitted module does not parse: {error}")
    return problems


_cases = itertools.count()


@pytest.fixture(scope="module")
def cases_root(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


def run_case(runner, fixtures, base: Path, case: Case) -> Outcome:
    root = base / f"case{next(_cases)}"
    cwd = root / "cwd"
    cwd.mkdir(parents=True)
    streams = base / f"streams{next(_cases)}"  # outside root: the run never sees it
    streams.mkdir()
    try:
        _materialize(cwd, case.files, fixtures)
        before = _snapshot(root)
        result = runner.run(case.args, cwd, streams)
        after = _snapshot(root)
        return Outcome(case, result, contract_violations(case, result, before, after, cwd))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(streams, ignore_errors=True)


def check(runner, fixtures, base: Path, case: Case) -> None:
    outcome = run_case(runner, fixtures, base, case)
    assert not outcome.violations, outcome.report()


# Option values, each a string as typed on the command line. Valid sizes stay small (<= 8)
# so that nothing runs long; invalid ones include what is past every documented bound.
HUGE = ["10000000", "1" + "0" * 21, str(2**63)]  # past every bound on sizes and counts
UNPARSED_INT = ["abc", "", "2.5", "1e3"]
N_VALUES = _mix(st.integers(1, 8).map(str), ["0", "-1", *HUGE], UNPARSED_INT)
N_VALUES_CLOSED_FORM = _mix(  # also sizes the Curie-Weiss formula takes, dense J refuses
    st.integers(1, 8).map(str), ["0", "-1", "16385", "1000000", *HUGE], UNPARSED_INT
)
BETA_VALUES = _mix(
    ["0.5", "1", "2", "0.05"],
    ["0", "-1", "-0.0", "nan", "inf", "-inf", "1e300", "1e-300", "1e309"],
    ["abc", "", "1,5"],
)
REAL_VALUES = _mix(["1", "0.5", "0", "-1"], ["nan", "inf", "-inf", "1e308"], ["abc"])
K_VALUES = _mix(["1", "0", "2", "3"], ["-1", "1000000", "1" + "0" * 21], ["abc"])
SEED_VALUES = _mix(
    ["0", "1", "42", str(2**32 - 1)], ["-1", str(2**32), str(2**63), "1" + "0" * 21], ["1.5"]
)
# Counts past MAX_SAMPLES (1e8); 1e7 is within the bounds and would only test this machine.
COUNT_VALUES = _mix(["1", "5", "2"], ["0", "-1", "100000000000", *HUGE[1:]], ["abc", ""])
NAME_VALUES = _mix(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True),
    ["class", "def", "None", "import", "lambda", "a b", "a\nb", 'a"b', "a'b", "", "1abc",
     "x.y", "a-b", "../escape", "../../escape", "é", "__init__", "torch", "a" * 300, "a\\b"],
)  # fmt: skip
COUPLINGS = st.one_of(
    st.sampled_from(["missing.txt", "cdir", "valid.txt", "valid.npz", "empty.txt"]),
    EDGE_TEXT.map(lambda data: ("c.txt", data)),
    NPZ_BYTES.map(lambda data: ("c.npz", data)),
)
_VALID_EDGES = b"N 6\n0 1 0.5\n1 2 -0.3\n2 5 1.0\n4 5 0.2\nh 3 0.1\n"
_NAMED_FILES = {
    "valid.txt": ("bytes", _VALID_EDGES),
    "valid.npz": ("bytes", _valid_npz()),
    "empty.txt": ("bytes", b""),
    "cdir": ("dir",),
    "existing.npy": ("bytes", b"an earlier result"),
    "existing.txt": ("bytes", b"an earlier result"),
    "adir": ("dir",),
    "existing_dir": ("dir",),
    "existing_dir/keep.txt": ("bytes", b"an earlier result"),
    "existing_file": ("bytes", b"an earlier result"),
}
# The emitted module (as m/sk_krsb1_n6.py) in one of these states:
MODULE_STATES = {
    "good": (("fixture", "module.py", b""), ("fixture", "module.npz", b"")),
    "syntax_error": (("fixture", "module.py", b"\ndef (:\n"), ("fixture", "module.npz", b"")),
    "no_sidecar": (("fixture", "module.py", b""), None),
    "corrupt_sidecar": (("fixture", "module.py", b""), ("bytes", b"PK\x03\x04 not a zip")),
    "truncated_sidecar": (("fixture", "module.py", b""), ("head", "module.npz", 200)),
    "other_sidecar": (("fixture", "module.py", b""), ("fixture", "other.npz", b"")),
    "raises": (("bytes", b"raise RuntimeError('boom')\n"), None),
    "not_a_model": (("bytes", b"x = 1\n"), None),
    "binary": (("bytes", b"\x00\xff\xfe garbage"), None),
}
MODULE_PATH = f"m/{MODULE}.py"
CHECKPOINTS = {
    "model.pt": ("fixture", "model.pt", b""),
    "checkpoint.pt": ("fixture", "checkpoint.pt", b""),
    "other_model.pt": ("fixture", "other_model.pt", b""),  # another module's
    "other_checkpoint.pt": ("fixture", "other_checkpoint.pt", b""),
    "garbage.pt": ("bytes", b"not a checkpoint"),
    "truncated.pt": ("head", "model.pt", 300),
}
SAMPLES = [
    "samples.npy", "samples_n5.npy", "samples_01.npy", "samples_float.npy", "samples_3d.npy",
    "samples_empty.npy", "samples_object.npy", "garbage.npy", "missing.npy",
]  # fmt: skip


class _Builder:
    """Collects the arguments and input files of one drawn case."""

    def __init__(self, draw, *command: str):
        self.draw = draw
        self.args: list[str] = list(command)
        self.files: dict[str, tuple] = {}

    def present(self, one_in: int = 40) -> bool:
        """For a required option: True but for 1 in ``one_in`` (a case with a missing option
        tests little else, and a case has several required options)."""
        # The largest value, not 0: hypothesis draws the smallest value of a range more often.
        return self.draw(st.integers(0, one_in - 1)) < one_in - 1

    def option(self, flag: str, values, required: bool = False) -> str | None:
        present = self.present() if required else self.draw(st.booleans())
        if not present:
            return None
        value = self.draw(values)
        self.args += [flag, value]
        return value

    def flag(self, flag: str) -> None:
        if self.draw(st.booleans()):
            self.args.append(flag)

    def file(self, relative: str) -> str:
        """Make a named input (or pre-existing output) exist, if it is one of _NAMED_FILES."""
        for name, spec in _NAMED_FILES.items():
            if name == relative or name.startswith(relative + "/"):
                self.files[name] = spec
        return relative

    def couplings(self) -> None:
        if not self.draw(st.booleans()):
            return
        choice = self.draw(COUPLINGS)
        if isinstance(choice, tuple):
            name, data = choice
            self.files[name] = ("bytes", data)
        else:
            name = self.file(choice)
        self.args += ["--couplings", name]

    def system(self) -> str:
        system = self.draw(_mix(["sk", "cw", "general"], (), ["bogus"]))
        if self.present():
            self.args += ["--system", system]
        return system

    def module(self) -> None:
        broken = [state for state in MODULE_STATES if state != "good"]
        state = self.draw(_mix(["good"], broken, ["missing", "directory"]))
        if state == "directory":
            self.files[MODULE_PATH] = ("dir",)
        elif state != "missing":
            source, sidecar = MODULE_STATES[state]
            self.files[MODULE_PATH] = source
            if sidecar is not None:
                self.files[f"m/{MODULE}.npz"] = sidecar
        self.args.append(MODULE_PATH)

    def out(self, choices, required: bool = False) -> None:
        value = self.option("--out", _mix(choices[:1], choices[1:]), required=required)
        if value is not None:
            self.file(value)

    def case(self) -> Case:
        return Case(tuple(self.args), tuple(sorted(self.files.items())))


VARIANTS = _mix(["krsb", "exact", "rs", "inf"], (), ["bogus"])


@st.composite
def exact_cases(draw):
    b = _Builder(draw, "exact")
    b.system()
    b.option("-N", N_VALUES_CLOSED_FORM)
    b.option("--beta", BETA_VALUES)
    b.option("--J", REAL_VALUES)
    b.option("--h", REAL_VALUES)
    b.option("--seed", SEED_VALUES)
    b.couplings()
    b.flag("--json")
    return b.case()


@st.composite
def emit_cases(draw):
    b = _Builder(draw, "emit")
    b.system()
    b.option("--variant", VARIANTS)
    b.option("-N", N_VALUES_CLOSED_FORM)
    b.option("-k", K_VALUES)
    b.option("--beta", BETA_VALUES)
    b.option("--J", REAL_VALUES)
    b.option("--h", REAL_VALUES)
    b.option("--seed", SEED_VALUES)
    b.couplings()
    b.option("--name", NAME_VALUES)
    b.out(["out", ".", "a/b", "existing_dir", "existing_file", "with space", "new\nline", ""])
    b.flag("--force")
    return b.case()


@st.composite
def derive_cases(draw):
    b = _Builder(draw, "derive")
    b.system()
    b.option("--variant", VARIANTS)
    b.option("-N", N_VALUES_CLOSED_FORM)
    b.option("-k", K_VALUES)
    b.option("--format", _mix(["latex", "text", "png"], (), ["bogus"]))
    b.out(["d.tex", "d.png", "existing.txt", "adir", "no/such/d.txt", "", "new\nline.txt"])
    return b.case()


@st.composite
def mcmc_cases(draw):
    b = _Builder(draw, "mcmc")
    b.system()
    b.option("-N", N_VALUES)
    b.option("--J", REAL_VALUES)
    b.option("--h", REAL_VALUES)
    b.option("--seed", SEED_VALUES)
    b.couplings()
    b.option("-n", COUNT_VALUES, required=True)
    b.option("--beta", BETA_VALUES, required=True)
    b.option("--sweeps", _mix(["0", "1", "3"], ["-1", "10000000000"], ["abc"]), True)
    b.option("--chain-seed", SEED_VALUES)
    b.out(["s.npy", "existing.npy", "adir", "sub/s.npy", "s", "new\nline.npy", ""], True)
    b.flag("--force")
    return b.case()


@st.composite
def sample_cases(draw):
    b = _Builder(draw, "sample")
    b.module()
    b.option("-n", COUNT_VALUES, required=True)
    b.out(["s.npy", "existing.npy", "adir", "sub/s.npy", "s", "new\nline.npy", ""], True)
    b.option("--beta", BETA_VALUES)
    b.option("--mh-steps", _mix(["0", "1", "3"], ["-1", "10000000000"], ["abc"]))
    b.option("--seed", SEED_VALUES)
    if draw(st.booleans()):
        usual = ["model.pt", "checkpoint.pt"]
        others = [name for name in CHECKPOINTS if name not in usual]
        checkpoint = draw(_mix(usual, others, ["missing.pt", "cdir"]))
        if checkpoint in CHECKPOINTS:
            b.files[f"ckpt/{checkpoint}"] = CHECKPOINTS[checkpoint]
            checkpoint = f"ckpt/{checkpoint}"
        else:
            b.file(checkpoint)
        b.args += ["--checkpoint", checkpoint]
    b.flag("--force")
    return b.case()


@st.composite
def train_cases(draw):
    b = _Builder(draw, "train")
    b.module()
    beta = _mix(["0.3", "0.5"], ["0", "-1", "nan", "inf", "1e300"], ["abc"])
    b.option("--beta", beta, required=True)
    b.option("--beta-start", _mix(["0.3", "0.1"], ["0", "-1", "nan", "2"]))
    b.option("--beta-step", _mix(["0.1", "1"], ["0", "-0.1", "nan", "1e-300"]))
    # Always given: the defaults (1000 steps, batch 2000, 20000 samples) take minutes.
    many = ["10000000000", "1" + "0" * 21]
    b.args += ["--steps-per-beta", draw(_mix(["1", "2"], ["0", "-1", *many]))]
    b.args += ["--batch", draw(_mix(["8", "1"], ["0", "-1", *many]))]
    b.args += ["--eval-samples", draw(_mix(["8", "1"], ["0", "-1", *many]))]
    b.option("--warmup-steps", _mix(["0", "1"], ["-1", *many]))
    b.option("--lr", _mix(["0.01"], ["0", "-1", "nan", "inf"]))
    b.option("--lr-min", _mix(["0.001"], ["-1", "nan", "1"]))
    b.option("--optimizer", _mix(["adam", "natural"], (), ["bogus"]))
    b.option("--damping", _mix(["0.001"], ["0", "-1", "nan"]))
    b.option("--init", _mix(["random", "paramagnetic"], (), ["bogus"]))
    b.option("--dtype", _mix(["float64", "float32"], (), ["float16"]))
    b.option("--early-stop", _mix(["0.1"], ["-1", "nan"]))
    b.option("--seed", SEED_VALUES)
    b.out(["run", "existing_dir", "existing_file", "new\nline", ""])
    b.flag("--force")
    b.args += ["--quiet", "--device", "cpu"]
    return b.case()


@st.composite
def fit_cases(draw):
    b = _Builder(draw, "fit")
    b.module()
    samples = draw(_mix(SAMPLES[:1], SAMPLES[1:-1], SAMPLES[-1:]))
    if samples == "garbage.npy":
        b.files[samples] = ("bytes", b"\x93NUMPY garbage")
    elif samples != "missing.npy":
        b.files[samples] = ("fixture", samples, b"")
    b.args.append(samples)
    many = ["10000000000", "1" + "0" * 21]
    b.args += ["--epochs", draw(_mix(["1", "2"], ["0", "-1", *many], ["abc"]))]
    b.args += ["--batch", draw(_mix(["4", "1"], ["0", "-1", *many]))]
    b.option("--lr", _mix(["0.01"], ["0", "-1", "nan", "inf"]))
    b.option("--seed", SEED_VALUES)
    b.option("--beta", BETA_VALUES)
    b.flag("--learn-couplings")
    b.out(["fitrun", "existing_dir", "existing_file", ""])
    b.flag("--force")
    b.args += ["--quiet", "--device", "cpu"]
    return b.case()


def _case(*args: str, files: dict[str, tuple] | None = None) -> Case:
    return Case(args, tuple(sorted((files or {}).items())))


def _module(state: str) -> dict[str, tuple]:
    source, sidecar = MODULE_STATES[state]
    return {MODULE_PATH: source, **({} if sidecar is None else {f"m/{MODULE}.npz": sidecar})}


@_settings(25)
@given(case=exact_cases())
@example(case=_case("exact", "--system", "sk", "-N", "1" + "0" * 21))
@example(case=_case("exact", "--system", "cw", "--beta", "nan"))
def test_exact_keeps_the_error_contract(runner, fixtures, cases_root, case):
    check(runner, fixtures, cases_root, case)


@_settings(25)
@given(case=emit_cases())
@example(case=_case("emit", "--system", "sk", "-N", "1" + "0" * 21, "--out", "out"))
@example(case=_case("emit", "--system", "sk", "-N", "6", "--name", "class", "--out", "out"))
@example(case=_case("emit", "--system", "sk", "-N", "6", "--name", "../../escape"))
def test_emit_keeps_the_error_contract(runner, fixtures, cases_root, case):
    check(runner, fixtures, cases_root, case)


@_settings(20)
@given(case=derive_cases())
@example(case=_case("derive", "--system", "sk", "-k", "1000000"))
@example(
    case=_case("derive", "--system", "cw", "--out", "existing.txt",
               files={"existing.txt": _NAMED_FILES["existing.txt"]})
)  # fmt: skip
def test_derive_keeps_the_error_contract(runner, fixtures, cases_root, case):
    check(runner, fixtures, cases_root, case)


@_settings(25)
@given(case=mcmc_cases())
@example(
    case=_case("mcmc", "--system", "sk", "-N", "5", "-n", "100000000000", "--beta", "1",
               "--sweeps", "1", "--out", "s.npy")
)  # fmt: skip
@example(
    case=_case("mcmc", "--system", "sk", "-N", "5", "-n", "3", "--beta", "1", "--sweeps", "1",
               "--chain-seed", "1" + "0" * 21, "--out", "s.npy")
)  # fmt: skip
def test_mcmc_keeps_the_error_contract(runner, fixtures, cases_root, case):
    check(runner, fixtures, cases_root, case)


@_settings(25)
@given(case=sample_cases())
@example(
    case=_case("sample", MODULE_PATH, "-n", "3", "--out", "s.npy",
               files=_module("syntax_error"))
)  # fmt: skip
@example(
    case=_case("sample", MODULE_PATH, "-n", "3", "--out", "s.npy",
               files=_module("corrupt_sidecar"))
)  # fmt: skip
@example(
    case=_case("sample", MODULE_PATH, "-n", "3", "--out", "s.npy", "--seed", "1" + "0" * 21,
               files=_module("good"))
)  # fmt: skip
@example(
    case=_case("sample", MODULE_PATH, "-n", "3", "--out", "s.npy", "--checkpoint", "o.pt",
               files={"o.pt": CHECKPOINTS["other_model.pt"], **_module("good")})
)  # fmt: skip
def test_sample_keeps_the_error_contract(runner, fixtures, cases_root, case):
    check(runner, fixtures, cases_root, case)


@_settings(12)
@given(case=train_cases())
@example(
    case=_case("train", MODULE_PATH, "--beta", "0.3", "--beta-start", "0.3", "--steps-per-beta",
               "1", "--batch", "8", "--eval-samples", "8", "--seed", "1" + "0" * 21, "--quiet",
               "--device", "cpu", files=_module("good"))
)  # fmt: skip
def test_train_keeps_the_error_contract(runner, fixtures, cases_root, case):
    check(runner, fixtures, cases_root, case)


@_settings(20)
@given(case=fit_cases())
@example(
    case=_case("fit", MODULE_PATH, "samples.npy", "--epochs", "1" + "0" * 21, "--batch", "4",
               "--quiet", "--device", "cpu",
               files={"samples.npy": ("fixture", "samples.npy", b""), **_module("good")})
)  # fmt: skip
def test_fit_keeps_the_error_contract(runner, fixtures, cases_root, case):
    check(runner, fixtures, cases_root, case)


@pytest.mark.parametrize(
    "args",
    [
        ("exact", "--system", "cw", "-N", "abc"),
        ("exact", "--system", "sk", "-N", "5", "--json"),
        ("mcmc", "--system", "sk", "-N", "4", "-n", "2", "--beta", "1", "--sweeps", "1"),
        ("emit", "--system", "sk", "-N", "6", "--out", "out"),
    ],
)
def test_fork_runner_matches_a_real_process(fork_runner, fixtures, cases_root, args):
    """The fast runner tells the same as `python -m arnn_gen.cli`: status and stderr."""
    case = Case(args)
    forked = run_case(fork_runner, fixtures, cases_root, case)
    real = run_case(_SubprocessRunner(), fixtures, cases_root, case)
    assert (forked.result.code, forked.result.stderr) == (real.result.code, real.result.stderr)
    assert forked.result.stdout == real.result.stdout
    assert forked.violations == real.violations
