"""Stage 6: training. Variational free energy with beta annealing, and maximum likelihood.

Input: a model (an emitted module's ``Model`` or a baseline: ``N``, ``beta``, ``sample``,
``log_prob``, ``energy``) and a :class:`TrainConfig`. Output: a run folder

    config.json      the configuration and what was trained
    history.csv      beta, step, free_energy, free_energy_std of every training step
    metrics.csv      one row per beta (METRIC_KEYS), also in metrics.json with the final
    metrics.json     estimate on eval_samples samples and the overlap distribution P(q)
    checkpoint.pt    model, optimizer and generator state after every beta (atomic)
    model.pt         the final model state

Variational training (docs/physics.md section 5): x ~ Q by ancestral sampling, L = log Q(x) +
beta H(x), gradient E_Q[(L - mean L) grad log Q] (REINFORCE with the batch-mean baseline),
Adam or the natural gradient (:mod:`arnn_gen.learn.natural`); beta runs from beta_start to beta in
steps of beta_step with steps_per_beta steps each (warmup_steps more at the first), and
with follow_beta the parameters a model names BETA_SCALED are carried from each beta to
the next by the factor beta'/beta. Every beta ends with an estimate on eval_samples samples.
With the same seed and device, a run gives the same numbers, and a run resumed from its
checkpoint ends in the same state as one that was never interrupted. Data-parallel training
over G processes (torchrun, ``--distributed``) is :mod:`arnn_gen.learn.distributed`.
"""

from __future__ import annotations

import csv
import functools
import inspect
import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from arnn_gen.checks import MAX_BETAS, MAX_SAMPLES, MAX_TRAINING_STEPS
from arnn_gen.errors import ArnnGenError
from arnn_gen.files import write_atomically
from arnn_gen.learn.distributed import DataParallel, generator_state
from arnn_gen.learn.natural import NATURAL_DAMPING, NATURAL_LR, SiteNaturalGradient
from arnn_gen.learn.observables import Estimates, effective_sample_size, estimate, overlap_histogram

__all__ = [
    "METRIC_KEYS",
    "OVERLAP_FINAL_SAMPLES",
    "OPTIMIZERS",
    "TrainConfig",
    "FitConfig",
    "TrainResult",
    "beta_schedule",
    "default_learning_rate",
    "logit_width",
    "exact_free_energy",
    "reference_free_energy",
    "follow_beta",
    "hamiltonian_of",
    "identity_of",
    "check_identity",
    "apply_state",
    "train",
    "fit",
    "fit_model",
    "load_checkpoint",
    "load_state",
    "metrics_row",
    "reinforce_loss",
    "sample_with_log_prob",
]

#: Columns of metrics.csv / rows of metrics.json, exact values when known.
METRIC_KEYS = (
    "beta",
    "free_energy",
    "free_energy_std",
    "free_energy_sem",
    "free_energy_is",
    "free_energy_is_sem",
    "ess",
    "samples",
    "energy",
    "entropy",
    "magnetization_abs",
    "exact_free_energy",
    "relative_error",
    "relative_error_sem",
    "relative_error_is",
    "relative_error_is_sem",
)
#: Optimizers of variational training and their base learning rates (default_learning_rate).
OPTIMIZERS = {"adam": 1e-3, "natural": NATURAL_LR}
#: The widest logit (later sites summed over) at which the replica forms keep Adam's base
#: rate; above it their default falls as 1 / width (default_learning_rate).
ADAM_REFERENCE_WIDTH = 50
#: Exact references by enumeration up to this size (the CW formula covers any N).
MAX_REFERENCE_N = 20
#: Exact references by frontier elimination up to this width: O(N 2^w) per beta.
MAX_REFERENCE_WIDTH = 20
_CHECKPOINT_VERSION = 1


def _positive(name: str, value, *, integer: bool = False, allow_zero: bool = False):
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ArnnGenError(f"{name} must be {'an integer' if integer else 'a number'}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ArnnGenError(f"{name} must be finite and {'>=' if allow_zero else '>'} 0")
    return value


#: Most samples of the final P(q) histogram of a run (fewer with fewer --eval-samples).
OVERLAP_FINAL_SAMPLES = 20000


@dataclass(frozen=True)
class TrainConfig:
    """Variational training with annealing (defaults: the paper's protocol)."""

    beta: float
    beta_start: float = 0.1
    beta_step: float = 0.05
    steps_per_beta: int = 1000
    warmup_steps: int = 0  # extra steps at the first beta, before its steps_per_beta
    batch: int = 2000
    lr: float | None = None  # None: default_learning_rate of the model (for_model)
    lr_min: float | None = None  # each beta's lr falls from lr to lr_min (cosine); None: fixed
    follow_beta: bool = True  # scale the model's BETA_SCALED parameters with beta (annealing)
    optimizer: str = "adam"  # or "natural": SiteNaturalGradient (replica modules)
    damping: float = NATURAL_DAMPING  # the natural gradient's lambda
    seed: int = 0
    early_stop: float | None = None  # stop a beta once the spread of f is below this
    eval_samples: int = 20000
    device: str = "cpu"
    dtype: str = "float32"
    compile: bool = False  # torch.compile the model where it offers enable_compile()

    def __post_init__(self) -> None:
        _positive("beta", self.beta)
        _positive("beta_start", self.beta_start)
        _positive("beta_step", self.beta_step)
        _positive("steps_per_beta", self.steps_per_beta, integer=True, allow_zero=True)
        _positive("warmup_steps", self.warmup_steps, integer=True, allow_zero=True)
        _positive("batch", self.batch, integer=True)
        if self.optimizer not in OPTIMIZERS:
            raise ArnnGenError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, "
                               f"got {self.optimizer!r}")  # fmt: skip
        if self.lr is not None:  # None: set by for_model, once the model is known
            _positive("lr", self.lr)
        _positive("damping", self.damping)
        if self.lr_min is not None and _positive("lr_min", self.lr_min) > (self.lr or math.inf):
            raise ArnnGenError(f"lr_min ({self.lr_min}) must not exceed lr ({self.lr})")
        _positive("eval_samples", self.eval_samples, integer=True)
        if self.eval_samples < 2:
            raise ArnnGenError(f"eval_samples must be >= 2 (overlaps need two samples), "
                               f"got {self.eval_samples}")  # fmt: skip
        if self.eval_samples > MAX_SAMPLES or self.batch > MAX_SAMPLES:
            raise ArnnGenError(f"batch and eval_samples must be <= {MAX_SAMPLES}")
        grid = math.floor((self.beta - self.beta_start) / self.beta_step) + 2
        if grid > MAX_BETAS:
            raise ArnnGenError(
                f"the annealing grid from {self.beta_start} to {self.beta} in steps of "
                f"{self.beta_step} has {grid - 1} betas; the limit is {MAX_BETAS}"
            )
        if grid * self.steps_per_beta + self.warmup_steps > MAX_TRAINING_STEPS:
            raise ArnnGenError(f"the schedule exceeds {MAX_TRAINING_STEPS} training steps")
        if self.early_stop is not None:
            _positive("early_stop", self.early_stop)
        if self.dtype not in ("float32", "float64"):
            raise ArnnGenError(f"dtype must be float32 or float64, got {self.dtype!r}")

    def for_model(self, model) -> TrainConfig:
        """This configuration with its learning rate set: the one given, else
        :func:`default_learning_rate` of ``model`` (what the trainer runs, and what its
        run folder and checkpoints record)."""
        if self.lr is not None:
            return self
        return replace(self, lr=default_learning_rate(model, self))

    def betas(self) -> tuple[float, ...]:
        return beta_schedule(self.beta_start, self.beta, self.beta_step)

    def to_dict(self) -> dict:
        return asdict(self)

    def steps_at(self, index: int) -> int:
        """Training steps at the index-th beta: the warm-up joins the first one."""
        return self.steps_per_beta + (self.warmup_steps if index == 0 else 0)

    def total_steps(self) -> int:
        return self.steps_per_beta * len(self.betas()) + self.warmup_steps

    def lr_at(self, index: int, step: int) -> float:
        """The learning rate of a step at the index-th beta: lr during the warm-up, then,
        with lr_min, a cosine from lr down to lr_min over the beta's steps_per_beta steps."""
        step -= self.warmup_steps if index == 0 else 0
        if self.lr_min is None or step < 0 or self.steps_per_beta < 2:
            return self.lr
        progress = step / (self.steps_per_beta - 1)
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * progress))


def logit_width(model) -> int:
    """The most later sites whose terms one logit of ``model`` sums: FRONTIER_WIDTH for a
    network over a frontier, else N - 1 (a dense network: site 0 sums over all the others)."""
    width = getattr(model, "FRONTIER_WIDTH", None)
    return int(width) if width is not None else max(int(model.N) - 1, 1)


def default_learning_rate(model, config: TrainConfig) -> float:
    """The learning rate a run of ``model`` takes when none is given.

    The natural gradient: NATURAL_LR. Adam: 1e-3 (the paper's), except for the networks
    whose parameters follow beta (BETA_SCALED, with config.follow_beta: the replica forms,
    dense or over a frontier), where it is 1e-3 min(1, ADAM_REFERENCE_WIDTH / w), w =
    :func:`logit_width`. Adam moves every weight by about its learning rate per step, and a
    logit sums a_0 g over w later sites, so a step's noise in the logits grows as lr w
    (measured: linear in N from 20 to 100); the replica forms reach each beta by follow_beta
    rather than by Adam's steps, so their step can be sized for its noise, while the
    baselines (1L, MADE), whose weights must grow with beta through Adam alone, keep 1e-3.
    docs/RESULTS.md ("N = 100") has the measurements.
    """
    if config.optimizer != "adam":
        return OPTIMIZERS[config.optimizer]
    if not (config.follow_beta and getattr(model, "BETA_SCALED", ())):
        return OPTIMIZERS["adam"]
    return OPTIMIZERS["adam"] * min(1.0, ADAM_REFERENCE_WIDTH / logit_width(model))


def beta_schedule(start: float, stop: float, step: float) -> tuple[float, ...]:
    """start, start + step, ... up to stop, which is always the last value.

    Values are rounded to 12 digits so that 0.1 + 0.05 k prints as it reads; a start above
    stop gives (stop,).

    >>> beta_schedule(0.1, 0.3, 0.05)
    (0.1, 0.15, 0.2, 0.25, 0.3)
    >>> beta_schedule(0.1, 0.32, 0.1)  # the target is always the last beta
    (0.1, 0.2, 0.3, 0.32)
    """
    if start >= stop:
        return (float(stop),)
    count = math.floor((stop - start) / step + 1e-9)
    values = [round(start + step * k, 12) for k in range(count + 1)]
    if not math.isclose(values[-1], stop, rel_tol=0, abs_tol=1e-9):
        values.append(float(stop))
    return tuple(values)


@dataclass(frozen=True)
class TrainResult:
    rows: tuple[dict, ...]
    final: dict
    run_dir: Path | None


def hamiltonian_of(model):
    """The Hamiltonian a model samples, in float64: baselines hold it; emitted modules give
    the couplings and fields they were built with (``system_arrays()``, float64, never the
    copy rounded to the model's dtype; the frontier networks' ``system_edges()``, a sparse
    system) or, for the Curie-Weiss modules, the two numbers.
    A "cw" module with arrays comes back as the Curie-Weiss system when the arrays are
    uniform, so that its exact reference is the formula at any N."""
    from arnn_gen import systems

    held = getattr(model, "hamiltonian", None)
    if held is not None:
        return held
    N = model.N  # noqa: N806
    J, h = getattr(model, "J", None), getattr(model, "h", None)  # noqa: N806
    if isinstance(J, float):  # CW_N / CW_inf modules: J_ij = J / N, h_i = h
        return systems.CurieWeiss(N, J, h)
    edges = getattr(model, "system_edges", None)
    if callable(edges):  # a frontier network: the sparse system, in the user's site order
        from arnn_gen.systems.sparse import SparseHamiltonian

        pairs, weights, fields = (array.numpy() for array in edges())
        kind, provenance = getattr(model, "KIND", "general"), getattr(model, "PROVENANCE", {})
        try:  # the emitted system, named: its exact references may need the provenance
            return SparseHamiltonian(N, pairs, weights, fields, kind, provenance)
        except ArnnGenError:  # couplings given to the constructor: another system
            return SparseHamiltonian(N, pairs, weights, fields)
    arrays = getattr(model, "system_arrays", None)
    if callable(arrays):
        couplings, fields = (array.numpy() for array in arrays())
    else:
        couplings = getattr(model, "couplings", J).detach().double().cpu().numpy()
        fields = getattr(model, "fields", h).detach().double().cpu().numpy()
    if getattr(model, "SYSTEM", None) == "cw" and N > 1:
        uniform = systems.CurieWeiss(N, float(couplings[0, 1]) * N, float(fields[0]))
        off_diagonal = couplings[~np.eye(N, dtype=bool)]
        if np.allclose(off_diagonal, uniform.coupling / N, rtol=1e-12, atol=0) and np.allclose(
            fields, uniform.field, rtol=1e-12, atol=0
        ):
            return uniform
    return systems.from_couplings(couplings, fields)


def identity_of(model) -> dict:
    """What a checkpoint must match: the architecture, N, and the Hamiltonian and IR
    signatures an emitted module declares (HAMILTONIAN_SIGNATURE, IR_SIGNATURE; for other
    models the signature of the Hamiltonian they hold)."""
    kind = type(model)
    hamiltonian = getattr(kind, "HAMILTONIAN_SIGNATURE", None)
    if hamiltonian is None:
        hamiltonian = hamiltonian_of(model).signature()
    return {
        "architecture": getattr(kind, "TITLE", kind.__name__),
        "N": int(model.N),
        "hamiltonian_signature": hamiltonian,
        "ir_signature": getattr(kind, "IR_SIGNATURE", None),
    }


def check_identity(recorded, model, where) -> None:
    """Refuse a checkpoint or run folder made with another module (one line naming both)."""
    if not isinstance(recorded, dict):
        return  # written before runs recorded their module: nothing to compare
    current = identity_of(model)
    labels = {"architecture": "architecture", "N": "N",
              "hamiltonian_signature": "Hamiltonian", "ir_signature": "IR"}  # fmt: skip
    for key, label in labels.items():
        then, now = recorded.get(key), current[key]
        if then is not None and now is not None and then != now:
            short = (lambda v: str(v)[:16]) if key.endswith("signature") else str
            raise ArnnGenError(
                f"{where} was made with {label} {short(then)}, but the module has {label} "
                f"{short(now)}: use the module that made it"
            )


def exact_free_energy(model, beta: float) -> float | None:
    """Exact f per spin when it is known cheaply (``arnn_gen.exact.reference_log_z``): the
    CW formula (any N), enumeration (N <= 20), frontier elimination of elimination width at
    most MAX_REFERENCE_WIDTH, Kaufman's formula for the periodic 2D Ising ferromagnet."""
    return reference_free_energy(hamiltonian_of(model), beta)


def reference_free_energy(hamiltonian, beta: float) -> float | None:
    """:func:`exact_free_energy` of a system rather than of a model."""
    from arnn_gen.exact import reference_log_z

    dense = not hasattr(hamiltonian, "edges")
    if dense and hamiltonian.kind != "cw" and hamiltonian.N > MAX_REFERENCE_N:
        return None  # a dense system beyond enumeration at every beta
    log_z = reference_log_z(hamiltonian, beta, max_width=MAX_REFERENCE_WIDTH)
    return None if log_z is None else -log_z / (beta * hamiltonian.N)


@torch.no_grad()
def follow_beta(model, old_beta: float, new_beta: float) -> None:
    """Multiply the parameters a model names in ``BETA_SCALED`` by new_beta / old_beta (the
    replica forms: the innermost layer and the residual, which are beta times a function of
    the couplings at the paramagnetic start, docs/physics.md section 4). Annealing calls it when
    it moves on to the next beta, so that those parameters keep pace with beta instead of
    lagging behind it by what the optimizer can move them; models without BETA_SCALED are
    left as they are."""
    ratio = new_beta / old_beta
    for name in getattr(model, "BETA_SCALED", ()):
        getattr(model, name).mul_(ratio)


def sample_with_log_prob(model, batch: int, generator=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x [B, N] ~ Q, log Q(x) [B] with autograd): from the model's own one-pass
    ``sample_with_log_prob`` when it has one (the replica modules: no second forward pass,
    a fused backward), else ``sample`` then ``log_prob``."""
    if hasattr(model, "sample_with_log_prob"):
        return model.sample_with_log_prob(batch, generator=generator)
    with torch.no_grad():
        x = model.sample(batch, generator=generator)
    return x, model.log_prob(x, **own_samples(model))


def own_samples(model) -> dict:
    """Keyword arguments for log_prob/energy on samples the model drew itself: emitted
    modules skip their input check (``validate=False``); other models take none."""
    return {"validate": False} if _takes_validate(type(model)) else {}


@functools.lru_cache(maxsize=64)
def _takes_validate(kind: type) -> bool:
    """Whether a model class's log_prob takes ``validate`` (asked once per class: the
    trainer asks at every step)."""
    method = getattr(kind, "log_prob", None)
    try:
        return method is not None and "validate" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def reinforce_loss(
    model,
    x: torch.Tensor,
    beta: float,
    log_q: torch.Tensor | None = None,
    *,
    parallel: DataParallel | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(surrogate loss, L) for a batch x ~ Q: grad of the loss is the REINFORCE estimate
    E[(L - mean L) grad log Q] of beta grad F[Q] (docs/physics.md section 5). ``log_q``: log Q(x)
    with autograd when already known (sample_with_log_prob), else model.log_prob(x).

    With ``parallel`` (x: this rank's b of the B samples), mean L is that of the global batch,
    the loss is this rank's mean times b / B, so that the ranks' gradients sum to the
    gradient of all B samples, and L is the global batch's [B], in rank order."""
    unchecked = own_samples(model)
    if log_q is None:
        log_q = model.log_prob(x, **unchecked)  # [b]
    with torch.no_grad():
        L = log_q + beta * model.energy(x, **unchecked).to(log_q.dtype)  # [b]
    if parallel is None:
        return ((L - L.mean()) * log_q).mean(), L
    everyone = parallel.gather(L)  # [B]
    return ((L - everyone.mean()) * log_q).mean() * (len(L) / len(everyone)), everyone


def _check_finite(estimates: Estimates, beta: float) -> None:
    """Non-finite estimates are an error, never a metrics row."""
    for key in ("free_energy", "free_energy_is"):
        value = getattr(estimates, key)
        if not math.isfinite(value):
            raise ArnnGenError(
                f"training diverged at beta = {beta}: the estimate {key} is {value}; "
                "lower --lr or train in --dtype float64 (the last checkpoint is kept)"
            )


def metrics_row(estimates: Estimates, exact_f: float | None) -> dict:
    """A metrics row: the estimates, and with an exact f its relative errors
    |f - f_exact| / |f_exact| (variational and importance-sampled) with their standard errors
    (the estimates' standard errors over |f_exact|), so that a table can tell an error from
    the noise of its estimate."""
    record = {key: getattr(estimates, key) for key in METRIC_KEYS if hasattr(estimates, key)}
    record["exact_free_energy"] = exact_f
    for suffix, value, sem in (
        ("", estimates.free_energy, estimates.free_energy_sem),
        ("_is", estimates.free_energy_is, estimates.free_energy_is_sem),
    ):
        known = exact_f is not None and exact_f != 0
        record[f"relative_error{suffix}"] = abs(value - exact_f) / abs(exact_f) if known else None
        record[f"relative_error{suffix}_sem"] = sem / abs(exact_f) if known else None
    return record


def _csv(rows, keys) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(keys), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in keys})
    return buffer.getvalue().encode()


def _save_torch(path: Path, payload) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomically(path, buffer.getvalue())


def _read_torch(path):
    path = Path(path)
    if not path.is_file():
        raise ArnnGenError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 (any unpickling failure means a bad file)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "empty or truncated"
        raise ArnnGenError(f"cannot read checkpoint {path}: {reason[:200]}") from None


def _is_checkpoint(payload) -> bool:
    return isinstance(payload, dict) and payload.get("version") == _CHECKPOINT_VERSION


def load_checkpoint(path) -> dict:
    """A checkpoint written by :func:`train`; a clear error when missing or unreadable."""
    payload = _read_torch(path)
    if not _is_checkpoint(payload):
        raise ArnnGenError(f"{path} is not an arnn-gen checkpoint")
    return payload


class _Progress:
    """A tqdm bar over all training steps (nothing when quiet)."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled and total > 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="step", dynamic_ncols=True)

    def update(self, beta, step, free_energy, spread, ess=None):
        if self.bar is None:
            return
        info = {"beta": f"{beta:.3g}", "step": step, "F": f"{free_energy:.5f}+-{spread:.1e}"}
        if ess is not None:
            info["ESS"] = f"{ess:.0f}"
        self.bar.set_postfix(info, refresh=False)
        self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _step_figures(L: torch.Tensor, beta: float, N: int) -> tuple[float, float, float]:  # noqa: N803
    """(mean, std) of the free-energy estimates L / (beta N) of a batch (std 0 for one
    sample) and its ESS = (sum w)^2 / sum w^2, w = exp(-L), read from the device in one
    transfer: one synchronisation per training step instead of one per figure."""
    f = (L.detach() / (beta * N)).double()
    log_w = -L.detach().double()  # importance weights w = exp(-L) of the batch
    ess = effective_sample_size(log_w)
    spread = f.std() if len(f) > 1 else f.new_zeros(())
    mean, spread, ess = torch.stack([f.mean(), spread, ess]).tolist()
    return mean, spread, ess


def label_of(model) -> str:
    """The architecture's name: an emitted module's TITLE (SK_1RSB, CW_N, ...), a
    baseline's name (1L, MADE_21, ...), else the class name."""
    return getattr(model, "TITLE", None) or getattr(model, "name", None) or type(model).__name__


def train(
    model: torch.nn.Module,
    config: TrainConfig,
    run_dir=None,
    *,
    resume: bool = False,
    progress: bool = True,
    label: str | None = None,
    after_beta: Callable[[int, float], None] | None = None,
    before_checkpoint: Callable[[int, float], None] | None = None,
    parallel: DataParallel | None = None,
) -> TrainResult:
    """Anneal and train ``model`` variationally; write the run folder when given.

    ``after_beta(index, beta)`` is called after each beta's checkpoint (tests interrupt a
    run there), ``before_checkpoint(index, beta)`` before it (a sweep records P(q) there,
    so that a run resumed from that checkpoint never misses it). With ``resume``, the run
    continues from ``run_dir/checkpoint.pt``.
    With ``parallel`` this process is one rank of a data-parallel training
    (:mod:`arnn_gen.learn.distributed`): it draws its share of every batch and estimate,
    all ranks return the same result, and only rank 0 writes the run folder and draws the
    progress bar.
    A module of several instances (``emit --instances``) is trained by
    :func:`arnn_gen.learn.instances.train_instances`: a list of one TrainResult per
    instance, each written to ``run_dir/instance_<label>/``.
    """
    from arnn_gen.learn.instances import is_batched, train_instances

    config = config.for_model(model)
    if is_batched(model):  # K instances: one TrainResult each, RUN/instance_<label>/
        if parallel is not None or after_beta is not None or before_checkpoint is not None:
            raise ArnnGenError("a module of several instances trains in one process, "
                               "without callbacks")  # fmt: skip
        return train_instances(model, config, run_dir, resume=resume, progress=progress,
                               label=label)  # fmt: skip
    if parallel is not None and config.optimizer == "natural":
        raise ArnnGenError(
            "the natural gradient does not run data-parallel (its Fisher blocks need the "
            "whole batch in one process): use --optimizer adam with --distributed"
        )
    device = torch.device(config.device) if parallel is None else parallel.device
    model.to(device=device, dtype=getattr(torch, config.dtype))
    if config.compile and hasattr(model, "enable_compile"):
        model.enable_compile()
    run = Path(run_dir) if run_dir is not None else None
    leader = parallel is None or parallel.is_writer
    writes = run is not None and leader
    optimizer = _optimizer(model, config)
    if parallel is None:
        batch, generator = config.batch, torch.Generator(device=device).manual_seed(config.seed)
    else:
        batch, generator = parallel.share(config.batch), parallel.generator(config.seed)
    betas = config.betas()
    rows: list[dict] = []
    history: list[dict] = []
    start = 0
    identity = identity_of(model)
    if resume:
        if run is None:
            raise ArnnGenError("resume needs the run folder")
        payload = load_checkpoint(run / "checkpoint.pt")
        check_identity(payload.get("identity"), model, run / "checkpoint.pt")
        if payload["config"] != config.to_dict():
            raise ArnnGenError(f"{run} was made with another configuration; cannot resume it")
        apply_state(model, payload["model"], run / "checkpoint.pt")
        if optimizer is not None:
            optimizer.load_state_dict(payload["optimizer"])
        rank, size = (0, 1) if parallel is None else (parallel.rank, parallel.world_size)
        generator.set_state(generator_state(payload, rank, size, run / "checkpoint.pt"))
        rows, history, start = list(payload["rows"]), list(payload["history"]), payload["done"]
    if parallel is not None:
        parallel.broadcast_parameters(model)
    if writes:
        run.mkdir(parents=True, exist_ok=True)
        meta = {
            "label": label or label_of(model),
            "system": getattr(
                model, "SYSTEM", getattr(getattr(model, "hamiltonian", None), "kind", None)
            ),
            "N": model.N,
            "config": config.to_dict(),
            "identity": identity,
        }
        write_atomically(run / "config.json", json.dumps(meta, indent=2, sort_keys=True).encode())

    remaining = sum(config.steps_at(index) for index in range(start, len(betas)))
    bar = _Progress(remaining if optimizer else 0, progress and leader)
    try:
        for index in range(start, len(betas)):
            beta = betas[index]
            if config.follow_beta and index > 0:
                follow_beta(model, betas[index - 1], beta)
            model.beta = beta
            for step in range(config.steps_at(index) if optimizer else 0):
                for group in optimizer.param_groups:
                    group["lr"] = config.lr_at(index, step)
                L = _training_step(model, optimizer, batch, beta, generator, parallel)
                mean, spread, ess = _step_figures(L, beta, model.N)
                history.append(
                    {"beta": beta, "step": step, "free_energy": mean, "free_energy_std": spread}
                )
                bar.update(beta, step, mean, spread, ess)
                if config.early_stop is not None and spread < config.early_stop:
                    break
            estimates = _estimate(model, beta, config, generator, parallel)
            _check_finite(estimates, beta)
            rows.append(metrics_row(estimates, exact_free_energy(model, beta)))
            if before_checkpoint is not None:  # what it records belongs to this beta's state
                before_checkpoint(index, beta)
            streams = {}
            if run is not None and parallel is not None:  # every rank's, for rank 0 to save
                streams = {"generators": parallel.generator_states(generator)}
            if writes:
                payload = {
                    "version": _CHECKPOINT_VERSION,
                    "identity": identity,
                    "config": config.to_dict(),
                    "done": index + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict() if optimizer else {},
                    "generator": generator.get_state(),
                    **streams,
                    "rows": rows,
                    "history": history,
                }
                _save_torch(run / "checkpoint.pt", payload)
                _write_metrics(run, rows, history, None, label or label_of(model), model)
            if after_beta is not None:
                after_beta(index, beta)
    finally:
        bar.close()

    model.beta = betas[-1]
    final_estimates = _estimate(model, betas[-1], config, generator, parallel)
    _check_finite(final_estimates, betas[-1])
    final = metrics_row(final_estimates, exact_free_energy(model, betas[-1]))
    with torch.no_grad():
        if parallel is None:
            x = model.sample(min(config.eval_samples, OVERLAP_FINAL_SAMPLES), generator=generator)
        else:
            x = parallel.sample(model, min(config.eval_samples, OVERLAP_FINAL_SAMPLES), generator)
    edges, density = overlap_histogram(x)
    final["overlap_edges"] = [float(v) for v in edges]
    final["overlap_density"] = [float(v) for v in density]
    if writes:
        _save_torch(run / "model.pt", model.state_dict())
        _write_metrics(run, rows, history, final, label or label_of(model), model)
    return TrainResult(tuple(rows), final, run)


def _estimate(model, beta: float, config: TrainConfig, generator, parallel) -> Estimates:
    """The estimate on eval_samples samples, drawn config.batch at a time (data-parallel: by
    all ranks together, each its share of them, the batch's share at a time)."""
    if parallel is None:
        return estimate(model, beta=beta, samples=config.eval_samples,
                        batch_size=config.batch, generator=generator)  # fmt: skip
    return parallel.estimate(model, beta=beta, samples=config.eval_samples,
                             batch_size=config.batch // parallel.world_size,
                             generator=generator)  # fmt: skip


def _optimizer(model, config: TrainConfig):
    """Adam over the trainable parameters, or the natural gradient; None when nothing trains."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        return None
    if config.optimizer == "natural":
        natural = SiteNaturalGradient(model, lr=config.lr, damping=config.damping)
        natural.check_size(config.batch)
        return natural
    return torch.optim.Adam(parameters, lr=config.lr)


def _training_step(
    model, optimizer, batch: int, beta: float, generator, parallel: DataParallel | None = None
) -> torch.Tensor:
    """One step on a fresh batch x ~ Q; returns L = log Q(x) + beta H(x) [B]. Data-parallel:
    x is this rank's share, the gradients are summed over the ranks (reinforce_loss divides
    by the global batch) and L is the global batch's."""
    if isinstance(optimizer, SiteNaturalGradient):
        with torch.no_grad():
            x, log_q = sample_with_log_prob(model, batch, generator)
            _, L = reinforce_loss(model, x, beta, log_q)
        optimizer.step(x, L)
        return L
    x, log_q = sample_with_log_prob(model, batch, generator)
    loss, L = reinforce_loss(model, x, beta, log_q, parallel=parallel)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if parallel is not None:
        parallel.sum_gradients(model)
    optimizer.step()
    return L


def _write_metrics(run: Path, rows, history, final, label, model) -> None:
    document = {
        "label": label,
        "system": getattr(model, "SYSTEM", None),
        "N": model.N,
        "rows": rows,
        "final": final,
    }
    config = json.loads((run / "config.json").read_text())
    document["config"] = config["config"]
    document["system"] = config["system"]
    write_atomically(run / "metrics.json", json.dumps(document, indent=1).encode())
    write_atomically(run / "metrics.csv", _csv(rows, METRIC_KEYS))
    write_atomically(
        run / "history.csv", _csv(history, ("beta", "step", "free_energy", "free_energy_std"))
    )


@dataclass(frozen=True)
class FitConfig:
    """Maximum likelihood on samples (the inverse problem of docs/physics.md section 5)."""

    epochs: int = 100
    batch: int = 1000
    lr: float = 1e-2
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        _positive("epochs", self.epochs, integer=True)
        _positive("batch", self.batch, integer=True)
        _positive("lr", self.lr)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def fit(model, samples, config: FitConfig, *, progress: bool = False) -> list[float]:
    """Minimise -mean log Q(x) over ``samples`` [S, N] (+-1) with Adam in shuffled
    mini-batches; returns the mean negative log-likelihood per sample of every epoch."""
    samples = torch.as_tensor(np.asarray(samples), dtype=getattr(torch, config.dtype))
    if samples.dim() != 2 or samples.shape[1] != model.N:
        raise ArnnGenError(f"samples must have shape [S, {model.N}], got {tuple(samples.shape)}")
    if not bool(((samples == 1) | (samples == -1)).all()):
        raise ArnnGenError("samples must hold only -1 and +1")
    device = torch.device(config.device)
    model.to(device=device, dtype=getattr(torch, config.dtype))
    samples = samples.to(device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ArnnGenError("this model has no trainable parameters to fit")
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    losses = []
    bar = _Progress(config.epochs, progress)
    for epoch in range(config.epochs):
        order = torch.randperm(len(samples), generator=generator).to(device)
        total = 0.0
        for first in range(0, len(samples), config.batch):
            batch = samples[order[first : first + config.batch]]
            loss = -model.log_prob(batch).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(samples))
        bar.update(float(getattr(model, "beta", 0.0)), epoch, losses[-1] / model.N, 0.0)
    bar.close()
    return losses


def load_state(path, model=None) -> dict:
    """The model state in a run's ``model.pt`` or ``checkpoint.pt``. With ``model``, the
    run must have been made with the same module (:func:`check_identity`): a checkpoint
    records it, a ``model.pt`` is checked against the ``config.json`` beside it."""
    path = Path(path)
    payload = _read_torch(path)
    if _is_checkpoint(payload):
        if model is not None:
            check_identity(payload.get("identity"), model, path)
        return payload["model"]
    if (
        isinstance(payload, dict)
        and payload
        and all(isinstance(v, torch.Tensor) for v in payload.values())
    ):
        config = path.with_name("config.json")
        if model is not None and config.is_file():
            try:
                recorded = json.loads(config.read_text()).get("identity")
            except (OSError, ValueError, AttributeError):
                recorded = None
            check_identity(recorded, model, path)
        return payload
    raise ArnnGenError(f"{path} holds no model state")


def apply_state(model, state, where) -> None:
    """``model.load_state_dict(state)``, with a one-line error when they do not fit."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ArnnGenError(
            f"{where} does not fit this module (another architecture or N?): {first[:200]}"
        ) from None


#: Standard deviation of the first layer's small random start in the inverse problem.
INVERSE_START_STD = 1e-2


def fit_model(model, samples, config: FitConfig, run_dir=None, *, learn_couplings=False,
              progress=False) -> list[float]:  # fmt: skip
    """:func:`fit`, writing ``config.json``, ``fit.json`` (losses) and ``model.pt`` to
    ``run_dir``. With ``learn_couplings`` the first layer (a parameter J, h of the model)
    restarts from small random symmetric couplings (std INVERSE_START_STD) and zero fields,
    as in the paper's inverse problem (docs/physics.md section 5)."""
    identity = identity_of(model)
    if learn_couplings:
        generator = torch.Generator().manual_seed(config.seed)
        with torch.no_grad():
            noise = torch.randn(model.N, model.N, generator=generator, dtype=torch.float64)
            noise = torch.triu(noise, 1) * INVERSE_START_STD
            model.J.copy_(noise + noise.T)
            model.h.zero_()
    losses = fit(model, samples, config, progress=progress)
    if run_dir is not None:
        run = Path(run_dir)
        run.mkdir(parents=True, exist_ok=True)
        meta = {"config": config.to_dict(), "learn_couplings": learn_couplings,
                "samples": len(samples), "N": model.N, "identity": identity}  # fmt: skip
        write_atomically(run / "config.json", json.dumps(meta, indent=2).encode())
        per_spin = [loss / model.N for loss in losses]
        write_atomically(run / "fit.json", json.dumps({"nll_per_spin": per_spin}).encode())
        _save_torch(run / "model.pt", model.state_dict())
    return losses
