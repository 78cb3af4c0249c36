"""A sweep file (TOML) and the training tasks it expands into.

A sweep names systems with their sizes, disorder instances and architectures, and one
annealing schedule; :func:`expand` turns it into independent :class:`SweepTask` s, one per
(system instance, architecture), each trained into its own run folder
``OUT/<group>/<architecture>/`` (:mod:`arnn_gen.sweep.task`). The file::

    name = "sk-paper"                 # optional: the report's title
    out = "runs/sk_paper"             # optional: the output root (--out overrides it)

    [schedule]                        # TrainConfig's fields; beta is required
    beta = 2.0
    beta_start = 0.1
    beta_step = 0.05
    steps_per_beta = 1000
    batch = 2000
    lr = 1e-3
    eval_samples = 20000
    dtype = "float64"
    device = "auto"                   # auto: cuda where there is one

    [[systems]]                       # one table per system; any number of them
    system = "sk"
    sizes = [20, 50]                  # N (the lattices take L = [...], and W)
    instances = "0-9"                 # seeds: a list of integers or "A-B"
    architectures = ["SK_RS", "SK_1RSB", "SK_2RSB", "1L", "MADE_21", "MADE_22"]
    J = 1.0                           # and h, boundary, disorder, degree where they apply
    init = "paramagnetic"             # start of the emitted modules (baselines: random)
    batch_instances = false           # true: train the instances of a size together
    backend = "torch"                 # "triton": the replica forms' Triton kernels

A system ``general`` takes ``couplings = ["a.npz", "b.txt"]`` (its instances, relative to
the sweep file) instead of sizes and instances. Every error is one line naming the key.

``batch_instances = true`` trains the replica networks (SK_RS, SK_1RSB, SK_2RSB) of all the
instances of one size of the table as one module of K instances, in one pass
(:func:`arnn_gen.learn.instances.train_instances`): on ``sk``, and on the couplings files of
``general`` whose network is dense. Each instance is still a task with its own run folder,
and its numbers are those of its unbatched task to rounding; its definition records that
it was trained batched (``batched`` in task.json, and so in its signature). The baselines,
the other systems (cw, the lattices, rrg), frontier networks and ``init = "random"`` are
trained one task at a time, as without the key. It needs Adam, without ``early_stop`` and
``compile``.

``backend = "triton"`` emits the replica forms (SK_RS, SK_1RSB, SK_2RSB, dense or over a
frontier, one instance or several) with their Triton kernels (``emit --backend triton``),
which compute on CUDA; the other architectures, and every one on a CPU, run their torch
code. The backend is part of a task's definition (``backend`` in task.json): a run folder
trained with one backend is not resumed with the other.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from arnn_gen.errors import ArnnGenError
from arnn_gen.learn.train import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (Python 3.10: the same parser as a package)
    import tomli as tomllib

__all__ = [
    "BATCHED",
    "EMITTED",
    "BASELINE_NAMES",
    "MAX_SWEEP_TASKS",
    "SystemEntry",
    "Sweep",
    "SweepTask",
    "read_sweep",
    "parse_sweep",
    "expand",
    "parse_instances",
]

#: Architectures emitted by arnn-gen: title -> (variant, k).
EMITTED = {
    "CW_N": ("exact", None),
    "CW_inf": ("inf", None),
    "SK_RS": ("rs", 0),
    "SK_1RSB": ("krsb", 1),
    "SK_2RSB": ("krsb", 2),
}
#: Architectures whose instances a sweep trains together (batch_instances): the dense
#: replica networks, one module of several SK instances or couplings files.
BATCHED = ("SK_RS", "SK_1RSB", "SK_2RSB")
#: Systems whose instances those modules hold.
_BATCHED_SYSTEMS = ("sk", "general")
#: The paper's baselines (arnn_gen.learn.baselines): MADE_dw for any one-digit d and w.
BASELINE_NAMES = ("1P", "1L", "MADE_21", "MADE_22")
_BASELINE = re.compile(r"1P|1L|MADE_[1-9][1-9]")
#: Most tasks one sweep may expand into (checked before any is built).
MAX_SWEEP_TASKS = 100_000
#: Keys of a [[systems]] table, and the systems each option applies to.
_SYSTEM_OPTIONS = {
    "J": ("cw", "sk", "ising2d"),
    "h": ("cw", "sk", "ea2d", "ea3d", "ising2d", "rrg"),
    "boundary": ("ea2d", "ea3d", "ising2d"),
    "disorder": ("ea2d", "ea3d", "rrg"),
    "degree": ("rrg",),
    "W": ("ea2d", "ising2d"),
}
_SEEDED = ("sk", "ea2d", "ea3d", "rrg")
_INITS = ("paramagnetic", "random")
_BACKENDS = ("torch", "triton")
_SCHEDULE_KEYS = tuple(f.name for f in fields(TrainConfig))


@dataclass(frozen=True)
class SystemEntry:
    """One [[systems]] table: a system, its sizes (N, or lattice sides L), its instances
    (seeds, or couplings files for ``general``) and the architectures to train on each."""

    system: str
    sizes: tuple[int, ...]
    instances: tuple[int | str, ...]
    architectures: tuple[str, ...]
    options: tuple[tuple[str, object], ...] = ()
    init: str = "paramagnetic"
    batch_instances: bool = False
    backend: str = "torch"


@dataclass(frozen=True)
class Sweep:
    """A parsed sweep file: its title, default output root, schedule and systems."""

    name: str
    schedule: TrainConfig
    systems: tuple[SystemEntry, ...]
    out: str | None = None
    device: str = "auto"  # the schedule's device as written: auto, cpu or cuda

    def tasks(self) -> tuple[SweepTask, ...]:
        return expand(self)


@dataclass(frozen=True)
class SweepTask:
    """One training: an architecture on one system instance, trained with ``config``.

    ``size`` is N (the lattices: the side L), ``instance`` a seed (or the index of a
    couplings file, ``couplings`` its path). Its run folder is ``OUT/group/architecture``.
    ``batched``: trained together with the other instances of its size and architecture,
    in one module of several instances (``batch_instances``; :meth:`bundle_key`)."""

    system: str
    size: int
    instance: int
    architecture: str
    config: TrainConfig
    options: tuple[tuple[str, object], ...] = ()
    couplings: str | None = None
    init: str = "paramagnetic"
    N: int = field(default=0)  # noqa: N815 (the number of spins, filled in by expand)
    batched: bool = False
    backend: str = "torch"  # the kernels of its emitted module: "torch" or "triton"

    @property
    def group(self) -> str:
        """The folder of the system instance: ``sk_n20_s3``, ``ea2d_8x8_s0``,
        ``general_n100_i0_<stem>``."""
        if self.system == "general":
            stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(self.couplings or "").stem)[:40]
            return f"general_n{self.N}_i{self.instance}_{stem}"
        if self.system in ("ea2d", "ising2d"):
            width = dict(self.options).get("W") or self.size
            return f"{self.system}_{self.size}x{width}_s{self.instance}"
        if self.system == "ea3d":
            return f"ea3d_{self.size}x{self.size}x{self.size}_s{self.instance}"
        return f"{self.system}_n{self.N}_s{self.instance}"

    @property
    def id(self) -> str:  # noqa: A003
        return f"{self.group}/{self.architecture}"

    def bundle_key(self) -> tuple | None:
        """What the tasks trained in one module share (system, N, architecture, options,
        start, schedule), or None for a task trained alone."""
        if not self.batched:
            return None
        schedule = json.dumps(self.config.to_dict(), sort_keys=True)
        return (self.system, self.N, self.architecture, self.options, self.init, schedule,
                self.backend)  # fmt: skip

    def system_options(self) -> dict:
        """Keyword options of :func:`arnn_gen.pipeline.resolve` for this instance."""
        options = dict(self.options)
        if self.system in ("ea2d", "ea3d", "ising2d"):
            options["L"] = self.size
        elif self.system != "general":
            options["N"] = self.size
        if self.system in _SEEDED:
            options["seed"] = self.instance
        if self.couplings is not None:
            options["couplings"] = self.couplings
        return options

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "group": self.group,
            "system": self.system,
            "N": self.N,
            "size": self.size,
            "instance": self.instance,
            "seed": None if self.couplings is not None else self.instance,
            "architecture": self.architecture,
            "options": dict(self.options),
            "couplings": self.couplings,
            "init": self.init,
            "config": self.config.to_dict(),
            # only when true: the definitions of the tasks trained alone stay as they were
            **({"batched": True} if self.batched else {}),
            **({"backend": self.backend} if self.backend != "torch" else {}),
        }

    def signature(self) -> str:
        """sha256 of what the task computes (system, instance, architecture, schedule but
        not its device): the manifest refuses to mix results of another definition under
        the same id."""
        document = self.to_dict()
        # where it runs is not what it computes: a sweep resumed or reported on a machine
        # of another kind (device "auto") finds its tasks
        document["config"].pop("device")
        if self.couplings is not None:  # the file's bytes, not only its name
            document["couplings"] = hashlib.sha256(Path(self.couplings).read_bytes()).hexdigest()
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_instances(value, where: str) -> tuple[int, ...]:
    """Seeds from a list of integers or a range "A-B" (both ends included).

    >>> parse_instances("0-3", "instances"), parse_instances([5, 2], "instances")
    ((0, 1, 2, 3), (5, 2))
    """
    if isinstance(value, str):
        found = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", value)
        if found is None:
            raise ArnnGenError(f"{where} must be a list of seeds or a range A-B, got {value!r}")
        first = int(found.group(1))
        last = first if found.group(2) is None else int(found.group(2))
        if last < first:
            raise ArnnGenError(f"{where}: the range {value!r} is empty")
        if last - first >= MAX_SWEEP_TASKS:
            raise ArnnGenError(f"{where}: the range {value!r} exceeds {MAX_SWEEP_TASKS} seeds")
        return tuple(range(first, last + 1))
    return _integers(value, where, low=0, high=2**63 - 1)


def _integers(value, where: str, *, low: int, high: int) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ArnnGenError(f"{where} must be a non-empty list of integers, got {value!r}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
            raise ArnnGenError(f"{where} must hold integers in [{low}, {high}], got {item!r}")
    if len(set(value)) != len(value):
        raise ArnnGenError(f"{where} repeats a value: {value}")
    return tuple(value)


def _strings(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ArnnGenError(f"{where} must be a non-empty list of strings, got {value!r}")
    if len(set(value)) != len(value):
        raise ArnnGenError(f"{where} repeats a value: {value}")
    return tuple(value)


def _check_architecture(name: str, where: str) -> str:
    if name in EMITTED or _BASELINE.fullmatch(name):
        return name
    known = ", ".join((*EMITTED, *BASELINE_NAMES))
    raise ArnnGenError(f"{where}: unknown architecture {name!r}; known: {known} (MADE_dw: "
                       "one digit each for depth and width)")  # fmt: skip


def read_sweep(path, *, device: str | None = None) -> Sweep:
    """Parse the sweep file at ``path`` (relative couplings paths are taken from its
    folder). ``device`` overrides the schedule's."""
    path = Path(path)
    if not path.is_file():
        raise ArnnGenError(f"sweep file {path} does not exist")
    if path.stat().st_size > 1 << 20:
        raise ArnnGenError(f"sweep file {path} is larger than 1 MiB")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ArnnGenError(f"sweep file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ArnnGenError(f"sweep file {path}: {str(error).splitlines()[0]}") from None
    return parse_sweep(document, base=path.parent, device=device, name=path.stem)


def parse_sweep(document: dict, *, base=Path("."), device: str | None = None,
                name: str = "sweep") -> Sweep:  # fmt: skip
    """A :class:`Sweep` from the parsed TOML ``document`` (see the module docstring)."""
    unknown = sorted(set(document) - {"name", "out", "schedule", "systems"})
    if unknown:
        raise ArnnGenError(f"sweep file: unknown key(s) {', '.join(unknown)}; known: name, out, "
                           "[schedule], [[systems]]")  # fmt: skip
    name = document.get("name", name)
    out = document.get("out")
    if not isinstance(name, str) or (out is not None and not isinstance(out, str)):
        raise ArnnGenError("sweep file: name and out must be strings")
    schedule, chosen_device = _schedule(document.get("schedule"), device)
    entries = document.get("systems")
    if not isinstance(entries, list) or not entries:
        raise ArnnGenError("sweep file: at least one [[systems]] table is needed")
    systems = tuple(_entry(entry, index, Path(base)) for index, entry in enumerate(entries))
    for index, entry in enumerate(systems):
        if entry.batch_instances:
            _check_batched_schedule(schedule, f"[[systems]] #{index + 1}")
    sweep = Sweep(name=name, schedule=schedule, systems=systems, out=out, device=chosen_device)
    expand(sweep)  # every task valid (sizes, variants, options) before anything runs
    return sweep


def _schedule(table, device: str | None) -> tuple[TrainConfig, str]:
    if not isinstance(table, dict) or "beta" not in table:
        raise ArnnGenError("sweep file: [schedule] with at least beta = ... is needed")
    unknown = sorted(set(table) - set(_SCHEDULE_KEYS))
    if unknown:
        raise ArnnGenError(f"[schedule]: unknown key(s) {', '.join(unknown)}; known: "
                           f"{', '.join(_SCHEDULE_KEYS)}")  # fmt: skip
    options = dict(table)
    chosen = device or options.pop("device", "auto")
    if chosen not in ("auto", "cpu", "cuda"):
        raise ArnnGenError(f"[schedule]: device must be auto, cpu or cuda, got {chosen!r}")
    options["device"] = "cpu" if chosen == "auto" else chosen  # resolved when the sweep runs
    for key, value in options.items():
        if key != "device" and not isinstance(value, int | float | str | bool):
            raise ArnnGenError(f"[schedule]: {key} must be a number, a string or a boolean")
    if isinstance(options["beta"], bool) or not isinstance(options["beta"], int | float):
        raise ArnnGenError(f"[schedule]: beta must be a number, got {options['beta']!r}")
    options["beta_start"] = options.get("beta_start", min(0.1, options["beta"]))
    for key, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ArnnGenError(f"[schedule]: {key} must be finite")
    try:
        return TrainConfig(**options), chosen
    except (TypeError, ValueError) as error:  # a value of the wrong kind
        raise ArnnGenError(f"[schedule]: {' '.join(str(error).split())}") from None


def _check_batched_schedule(schedule: TrainConfig, where: str) -> None:
    """A module of several instances trains with Adam, eagerly, every instance for the
    whole schedule (arnn_gen.learn.instances.train_instances)."""
    reasons = []
    if schedule.optimizer != "adam":
        reasons.append(f"optimizer = {schedule.optimizer!r}")
    if schedule.early_stop is not None:
        reasons.append("early_stop")
    if schedule.compile:
        reasons.append("compile")
    if reasons:
        raise ArnnGenError(f"{where}: batch_instances trains with Adam, without early_stop and "
                           f"compile; the schedule sets {', '.join(reasons)}")  # fmt: skip


def _entry(table, index: int, base: Path) -> SystemEntry:
    where = f"[[systems]] #{index + 1}"
    if not isinstance(table, dict):
        raise ArnnGenError(f"{where} must be a table")
    system = table.get("system")
    from arnn_gen.symbolic.simplify import VARIANTS

    if system not in VARIANTS:
        raise ArnnGenError(f"{where}: system must be one of {', '.join(VARIANTS)}, got {system!r}")
    lattice = system in ("ea2d", "ea3d", "ising2d")
    size_key = "L" if lattice else "sizes"
    allowed = {"system", "architectures", "init", "batch_instances", "backend",
               *(k for k, s in _SYSTEM_OPTIONS.items() if system in s)}  # fmt: skip
    if system == "general":
        allowed |= {"couplings", "format"}
    else:
        allowed.add(size_key)
        if system in _SEEDED:
            allowed.add("instances")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ArnnGenError(f"{where} ({system}): key(s) {', '.join(unknown)} do not apply; "
                           f"it takes {', '.join(sorted(allowed))}")  # fmt: skip
    names = _strings(table.get("architectures"), f"{where}: architectures")
    architectures = tuple(_check_architecture(name, where) for name in names)
    init = table.get("init", "paramagnetic")
    if init not in _INITS:
        raise ArnnGenError(f"{where}: init must be paramagnetic or random, got {init!r}")
    batch_instances = table.get("batch_instances", False)
    if not isinstance(batch_instances, bool):
        raise ArnnGenError(f"{where}: batch_instances must be true or false, got "
                           f"{batch_instances!r}")  # fmt: skip
    backend = table.get("backend", "torch")
    if backend not in _BACKENDS:
        raise ArnnGenError(f"{where}: backend must be torch or triton, got {backend!r}")
    options = {k: table[k] for k in _SYSTEM_OPTIONS if k in table}
    if system == "general":
        files = _strings(table.get("couplings"), f"{where}: couplings")
        instances = tuple(str((base / f) if not Path(f).is_absolute() else Path(f))
                          for f in files)  # fmt: skip
        for file in instances:
            if not Path(file).is_file():
                raise ArnnGenError(f"{where}: couplings file {file} does not exist")
        if "format" in table:
            options["format"] = table["format"]
        sizes: tuple[int, ...] = (0,)
    else:
        if size_key not in table:
            raise ArnnGenError(f"{where} ({system}) needs {size_key} = [...]")
        sizes = _integers(table[size_key], f"{where}: {size_key}", low=1, high=10**6)
        instances = (parse_instances(table["instances"], f"{where}: instances")
                     if "instances" in table else (0,))  # fmt: skip
    return SystemEntry(system, sizes, instances, architectures, tuple(sorted(options.items())),
                       init, batch_instances, backend)  # fmt: skip


def expand(sweep: Sweep) -> tuple[SweepTask, ...]:
    """Every task of the sweep, in the file's order: system, size, instance, architecture.
    Each is resolved by :func:`arnn_gen.pipeline.resolve` (sizes, variants, options), so
    that a bad sweep fails before anything runs; ids must be unique. A task is marked
    ``batched`` where its table asks for it and a module of several instances computes
    what its own module would (:func:`_is_batched`)."""
    from arnn_gen.pipeline import resolve

    count = sum(len(e.sizes) * len(e.instances) * len(e.architectures) for e in sweep.systems)
    if count > MAX_SWEEP_TASKS:
        raise ArnnGenError(f"the sweep expands into {count} tasks; the limit is {MAX_SWEEP_TASKS}")
    tasks, seen, dense = [], set(), {}
    for entry in sweep.systems:
        for size in entry.sizes:
            for position, instance in enumerate(entry.instances):
                couplings = instance if isinstance(instance, str) else None
                task = SweepTask(
                    system=entry.system, size=size,
                    instance=position if couplings else int(instance),
                    architecture=None, config=sweep.schedule, options=entry.options,
                    couplings=couplings, init=entry.init,
                )  # fmt: skip
                request = _resolve(resolve, task, entry)
                # a couplings file's size is read from it
                spins = request.N or _file_size(couplings, dict(entry.options))
                for architecture in entry.architectures:
                    if architecture in EMITTED:  # the variant must apply to the system
                        variant, k = EMITTED[architecture]
                        _resolve(resolve, task, entry, variant=variant, k=k or 0)
                    batched = _is_batched(entry, architecture, task, dense)
                    # the Triton kernels are the replica forms'; the others run torch code
                    backend = entry.backend if architecture in BATCHED else "torch"
                    done = replace(task, architecture=architecture, N=spins, batched=batched,
                                   backend=backend)  # fmt: skip
                    if done.id in seen:
                        raise ArnnGenError(f"the sweep holds the task {done.id} twice")
                    seen.add(done.id)
                    tasks.append(done)
    return tuple(tasks)


def _is_batched(entry: SystemEntry, architecture: str, task: SweepTask, dense: dict) -> bool:
    """Whether the task trains in a module of several instances: its table asks for it, the
    architecture is a replica network of an SK instance (or of a couplings file that takes
    the dense network, not the frontier one), and it starts paramagnetic (a module of
    several instances draws a random start for all of them at once, not the single one's)."""
    if not (entry.batch_instances and architecture in BATCHED and entry.init == "paramagnetic"
            and entry.system in _BATCHED_SYSTEMS):  # fmt: skip
        return False
    if entry.system != "general":
        return True
    key = (task.couplings, dict(entry.options).get("format", "auto"))
    if key not in dense:  # (file, format) -> whether its network is dense, read once
        dense[key] = _has_dense_network(*key)
    return dense[key]


def _has_dense_network(couplings: str, fmt: str) -> bool:
    """Whether the replica network of a couplings file is the dense one (the layout
    arnn_gen.pipeline chooses for it), which a module of several files holds too."""
    from arnn_gen.pipeline import _layout, resolve
    from arnn_gen.systems import read_couplings

    try:
        request = resolve("general", variant="rs", couplings=couplings, format=fmt)
        system = read_couplings(couplings, fmt)
        return _layout(request, system).layout == "dense"
    except ArnnGenError:  # no network of it: its own task says why
        return False


def _resolve(resolve, task: SweepTask, entry: SystemEntry, **variant):
    options = task.system_options()
    fmt = options.pop("format", "auto")
    try:
        return resolve(task.system, format=fmt, **options, **variant)
    except ArnnGenError as error:
        raise ArnnGenError(f"[[systems]] {entry.system} size {task.size}: {error}") from None


def _file_size(couplings: str, options: dict) -> int:
    from arnn_gen.systems import read_couplings

    return read_couplings(couplings, options.get("format", "auto")).N
