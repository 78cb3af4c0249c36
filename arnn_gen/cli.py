"""Stage 7: the ``arnn-gen`` command line, a thin click layer over the pipeline.

Every failure the user can cause (bad options, bad files, size limits) ends as one line on
stderr, ``arnn-gen: error: ...``, and a non-zero exit status: 2 for usage errors (click's
convention), 1 for everything else. No traceback reaches the user.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import threading
from pathlib import Path

import click

from arnn_gen._version import __version__
from arnn_gen.checks import (
    MAX_BATCH_SPINS,
    MAX_TRAINING_STEPS,
    check_beta,
    check_int,
    check_samples,
)
from arnn_gen.codegen.emit import write_module
from arnn_gen.codegen.ir import BACKENDS
from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import MAX_ENUMERATION_N
from arnn_gen.exact import exact as exact_reference
from arnn_gen.files import write_atomically
from arnn_gen.pipeline import (
    BOUNDARIES,
    DISORDERS,
    FORMATS,
    LATTICES,
    ORDERS,
    SPARSE_SYSTEMS,
    build_system,
    lower,
    resolve,
)
from arnn_gen.symbolic.derive import derive_conditional
from arnn_gen.symbolic.display import render_latex, render_png, render_text
from arnn_gen.symbolic.simplify import VARIANTS, reduce_conditional

__all__ = ["main"]

SYSTEMS = tuple(VARIANTS)
ALL_VARIANTS = tuple(sorted({v for variants in VARIANTS.values() for v in variants}))


class _Group(click.Group):
    """A click group whose errors are one line on stderr, never a traceback."""

    def main(self, args=None, prog_name=None, **extra):  # noqa: D401
        # SIGTERM unwinds like Ctrl-C, so that every temporary file is removed on the way out
        # (signal handlers belong to the main thread; elsewhere the caller's stay).
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.getsignal(signal.SIGTERM) if main_thread else None
        if main_thread:
            signal.signal(signal.SIGTERM, _terminated)
        try:
            return super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
        except _Terminated:
            _fail("terminated", 143)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.Abort:
            _fail("aborted", 130)
        except click.ClickException as error:
            _fail(error.format_message(), error.exit_code)
        except ArnnGenError as error:
            _fail(str(error), 1)
        except OSError as error:
            _fail(f"{error.strerror or error}: {error.filename or ''}".rstrip(": "), 1)
        except MemoryError:
            _fail("out of memory: the request is too large for this machine", 1)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as error:  # a bug, not bad input: say so in one line
            if os.environ.get("ARNN_GEN_DEBUG"):
                raise
            _fail(
                f"internal error ({type(error).__name__}: {str(error)[:300]}); "
                "rerun with ARNN_GEN_DEBUG=1 for the traceback and report it",
                3,
            )
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)


class _Terminated(BaseException):
    """SIGTERM, raised where the program is, so that cleanup code runs."""


def _terminated(signum, frame):  # noqa: ARG001
    raise _Terminated()


def _fail(message: str, code: int) -> None:
    click.echo(f"arnn-gen: error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


def _check_seed(seed: int, option: str = "--seed") -> int:
    """A seed of torch's generators: 0 <= seed < 2^64."""
    return check_int(option, seed, 0, 2**64 - 1)


class _Numbers(click.ParamType):
    """A number, or several separated by commas (a tuple): emit's --J and --h, whose
    several values make one module of several Curie-Weiss systems."""

    name = "X[,X...]"

    def convert(self, value, param, ctx):
        if isinstance(value, float | int | tuple):
            return value
        try:
            numbers = tuple(float(item) for item in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a number or numbers separated by commas", param, ctx)
        return numbers[0] if len(numbers) == 1 else numbers


system_option = click.option(
    "--system",
    required=True,
    type=click.Choice(SYSTEMS),
    help="general (couplings from a file), cw (Curie-Weiss), sk (Sherrington-Kirkpatrick), "
    "ea2d, ea3d (Edwards-Anderson), ising2d, rrg (random regular graph).",
)
variant_option = click.option(
    "--variant",
    type=click.Choice(ALL_VARIANTS),
    default=None,
    help="Architecture (default: general krsb, cw exact, sk krsb).",
)


def sparse_options(command, *, file_format: bool = True):
    """The options of the lattices, random regular graphs and couplings files (DESIGN.md's
    table), shared by emit, exact, derive and mcmc; validated by pipeline.resolve. derive
    reads no couplings file (its --format is the output's): ``file_format`` False."""
    options = (
        click.option("-L", "L", type=int, default=None,
                     help="Lattice side (ea2d, ising2d: L rows of W sites; ea3d: L^3)."),
        click.option("-W", "W", type=int, default=None, help="Lattice width (default L)."),
        click.option("--boundary", type=click.Choice(BOUNDARIES), default="periodic",
                     show_default=True, help="Lattice boundary conditions."),
        click.option("--disorder", type=click.Choice(DISORDERS), default="gaussian",
                     show_default=True, help="Couplings of ea2d, ea3d, rrg: N(0, 1) or +-1."),
        click.option("--degree", type=int, default=3, show_default=True,
                     help="Degree of the random regular graph (rrg)."),
        click.option("--format", "fmt_file", type=click.Choice(FORMATS), default="auto",
                     show_default=True, help="Format of the --couplings file."),
        click.option("--order", type=click.Choice(ORDERS), default="auto", show_default=True,
                     help="Site order of a sparse system's network (docs/physics.md 7)."),
    )  # fmt: skip
    if not file_format:
        options = tuple(option for option in options if option is not options[5])
    for option in reversed(options):
        command = option(command)
    return command


#: The system options that apply only to some systems: a user who gives one to another
#: system is told so, rather than having it ignored.
APPLIES = {
    "boundary": LATTICES,
    "disorder": ("ea2d", "ea3d", "rrg"),
    "degree": ("rrg",),
    "J": ("cw", "sk", "ising2d", "general"),
    "seed": ("sk", "ea2d", "ea3d", "rrg", "general"),
}


def _check_applicable(system: str) -> None:
    """Refuse an option given on the command line that ``system`` does not take."""
    context = click.get_current_context()
    for name, systems in APPLIES.items():
        given = context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE
        if given and system not in systems:
            option = {"J": "--J"}.get(name, f"--{name}")
            raise ArnnGenError(f"{option} does not apply to --system {system}")


def _sparse(L, W, boundary, disorder, degree, order, fmt_file="auto"):  # noqa: N803
    """The sparse options as keywords of pipeline.resolve (after checking that the system
    takes every option given)."""
    _check_applicable(click.get_current_context().params["system"])
    return {"L": L, "W": W, "boundary": boundary, "disorder": disorder, "degree": degree,
            "format": fmt_file, "order": order}  # fmt: skip


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="arnn-gen")
def main() -> None:
    """Derive, simplify and emit autoregressive networks of pairwise spin systems."""
    from arnn_gen.allocator import keep_freed_memory

    keep_freed_memory()  # Note [Freed memory and page faults] in arnn_gen/allocator.py


@main.command()
@system_option
@variant_option
@click.option("-N", "N", type=int, default=None, help="Substitute a concrete system size.")
@click.option("-k", "k", type=int, default=1, show_default=True, help="RSB depth of krsb.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("latex", "text", "png")),
    default="latex",
    show_default=True,
)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to FILE.")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@functools.partial(sparse_options, file_format=False)
def derive(system, variant, N, k, fmt, out, force, **sparse):  # noqa: N803
    """Print the derived conditional P(x_i=+1|x_<i), then the reduced form of the variant
    (for a sparse system's replica variants: over the frontier, docs/physics.md section 7)."""
    request = resolve(system, variant=variant, N=N, k=k, symbolic=True, **_sparse(**sparse))
    variant = request.variant
    if system in LATTICES:
        N = None  # noqa: N806 (a lattice's formulas are shown for generic N)
    if fmt == "png" and out is None:
        raise click.UsageError("--format png needs --out FILE.png")
    if out is not None:
        _checked_out(out, force)
    derivation = derive_conditional()
    layout = "frontier" if system in SPARSE_SYSTEMS else "dense"
    reduction = reduce_conditional(system, variant, k=k, derivation=derivation, layout=layout)
    sections = [
        ("Exact autoregressive conditional (docs/physics.md section 2)", derivation),
        (f"Reduced form: {reduction.title()} ({system}, variant {variant})", reduction),
    ]
    if fmt == "png":
        if out is None:
            raise click.UsageError("--format png needs --out FILE.png")
        write_atomically(Path(out), render_png(sections, N))
        click.echo(out)
        return
    text = (render_latex if fmt == "latex" else render_text)(sections, N)
    if out is None:
        click.echo(text, nl=False)
    else:
        write_atomically(Path(out), text.encode())
        click.echo(out)


@main.command()
@system_option
@click.option("-N", "N", type=int, default=None, help="Spins (default: cw 100, sk 20).")
@click.option("--beta", type=float, default=1.0, show_default=True)
@click.option("--J", "J", type=float, default=1.0, show_default=True, help="Coupling scale.")
@click.option("--h", "h", type=float, default=0.0, show_default=True, help="Uniform field.")
@click.option("--seed", type=int, default=0, show_default=True, help="SK instance seed.")
@click.option("--couplings", type=str, default=None, help="Couplings file (system general).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@sparse_options
def exact(system, N, beta, J, h, seed, couplings, as_json, **sparse):  # noqa: N803
    """Exact free energy and observables: the Curie-Weiss formula at any N; frontier
    elimination for sparse systems whose frontier is at most 24 sites wide (docs/physics.md
    section 7), Kaufman's formula for the periodic 2D Ising ferromagnet; enumeration
    (N <= 24) otherwise."""
    check_beta(beta)
    # The options are checked by resolve, with the variant whose defaults and size bound fit
    # a reference: any N for cw (CW_inf's), small lattices for the sparse systems (exact's).
    variant = {"cw": "inf", **dict.fromkeys(SPARSE_SYSTEMS, "exact")}.get(system)
    request = resolve(
        system, variant=variant, N=N, J=J, h=h, seed=seed, couplings=couplings, symbolic=True,
        **_sparse(**sparse),
    )  # fmt: skip
    enumerated = system == "sk"
    hamiltonian = build_system(
        system, None if system in LATTICES else N, default_n=100 if system == "cw" else 20,
        max_n=MAX_ENUMERATION_N if enumerated else None,
        purpose="exact enumeration (2^N states)" if enumerated else "",
        **request.system_options(),
    )  # fmt: skip
    result = exact_reference(hamiltonian, beta)
    record = result.to_dict()
    record["system"] = system
    if as_json:
        click.echo(json.dumps(record, sort_keys=True))
        return
    click.echo(f"system            {system} ({result.method}), N = {result.N}, beta = {beta}")
    click.echo(f"log_z             {result.log_z:.15g}")
    click.echo(f"free_energy       {result.free_energy:.15g}   (per spin)")
    click.echo(f"energy            {result.energy:.15g}   (per spin)")
    click.echo(f"entropy           {result.entropy:.15g}   (per spin)")
    absolute = result.magnetization_abs
    click.echo(f"magnetization_abs {'n/a' if absolute is None else format(absolute, '.15g')}")


@main.command()
@system_option
@variant_option
@click.option("-N", "N", type=int, default=None, help="Spins (default 100; 20 for H2ARNN).")
@click.option("-k", "k", type=int, default=1, show_default=True, help="RSB depth of krsb.")
@click.option("--beta", type=float, default=1.0, show_default=True, help="Emission beta.")
@click.option("--J", "J", type=_Numbers(), default=1.0, show_default=True,
              help="Coupling scale (cw: a,b,...: one module of those systems).")  # fmt: skip
@click.option("--h", "h", type=_Numbers(), default=0.0, show_default=True,
              help="Uniform field (cw: a,b,...: one module of those systems).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True, help="SK instance seed.")
@click.option("--couplings", type=str, default=None,
              help="Couplings file (system general); several: one module of all.")  # fmt: skip
@click.option("--instances", type=str, default=None, metavar="A-B",
              help="SK seeds (A-B or a,b,c): one module of all those instances.")  # fmt: skip
@click.option("--out", type=str, default="generated", show_default=True, help="Directory.")
@click.option("--name", type=str, default=None, help="Module name (default from the spec).")
@click.option("--force", is_flag=True, help="Overwrite an existing module.")
@click.option("--backend", type=click.Choice(BACKENDS), default="torch", show_default=True,
              help="Kernels: torch, or triton (replica forms; the triton extra).")  # fmt: skip
@click.argument("more_couplings", nargs=-1, metavar="[MORE_COUPLINGS]...")
@sparse_options
def emit(system, variant, N, k, beta, J, h, seed, couplings, instances, out, name, force,  # noqa: N803
         backend, more_couplings, **sparse):  # fmt: skip
    """Emit a standalone PyTorch module (and its .npz sidecar); print the path written.
    `--couplings a.npz b.npz ...` or `--instances 0-9` (SK seeds) emit one module of all
    those instances, with a leading instance dimension."""
    if more_couplings and couplings is None:
        raise click.UsageError(f"unexpected argument {more_couplings[0]!r}: several couplings "
                               "files follow --couplings")  # fmt: skip
    files = (couplings, *more_couplings) if more_couplings else couplings
    request = resolve(system, variant=variant, N=N, k=k, beta=beta, J=J, h=h, seed=seed,
                      couplings=files, name=name, instances=instances, backend=backend,
                      **_sparse(**sparse))  # fmt: skip
    stages = lower(request)
    path = write_module(stages.ir, stages.source, stages.hamiltonian, out, force=force)
    click.echo(str(path))


def _device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise ArnnGenError("--device cuda: no CUDA device is available")
    return choice


def _model_from(module_path: str, *, beta: float | None = None, **options):
    """Model() of an emitted module file, passing only the options its constructor takes."""
    import inspect

    from arnn_gen.codegen.emit import load_module

    module = load_module(module_path)
    try:
        accepted = inspect.signature(module.Model).parameters
    except (TypeError, ValueError):
        raise ArnnGenError(f"{module_path}: Model is not a class arnn-gen can build") from None
    chosen = {k: v for k, v in options.items() if k in accepted and v is not None}
    if beta is not None:
        chosen["beta"] = beta
    try:
        return module.Model(**chosen)
    except ArnnGenError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as error:  # noqa: BLE001 (the module or its sidecar is bad input)
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise ArnnGenError(f"cannot build the model of {module_path}: {reason}") from None


def _one_system(model, module_path: str, command: str) -> None:
    """sample and fit take a module of one system, not one of several instances."""
    if hasattr(model, "INSTANCES"):
        raise ArnnGenError(
            f"{module_path} holds {model.INSTANCES} instances; {command} takes a module of one "
            "system: emit it without --instances (an instance's trained state is "
            "RUN/instance_<seed>/model.pt)"
        )


def _run_folder(path: Path, *, resume: bool, force: bool) -> Path:
    """A run folder to write: a new or empty one, or with --resume the run to continue;
    with --force an existing run's results are removed first."""
    if resume:
        if not path.is_dir():
            raise ArnnGenError(f"--resume {path}: the run folder does not exist")
        return path
    if path.exists() and not path.is_dir():
        raise ArnnGenError(f"run folder {path} is a file")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise ArnnGenError(
                f"run folder {path} exists and is not empty; use --resume {path} to continue "
                "it or --force to replace it"
            )
        for name in RUN_FILES:
            (path / name).unlink(missing_ok=True)
    return path


#: Samples drawn per call of the model by `sample` (its memory is O(SAMPLE_CHUNK N)).
SAMPLE_CHUNK = 10000

#: What train and fit write into a run folder (removed first by --force).
RUN_FILES = ("checkpoint.pt", "model.pt", "config.json", "metrics.json", "metrics.csv",
             "history.csv", "fit.json")  # fmt: skip


def _save_npy(path: Path, array) -> None:
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    write_atomically(path, buffer.getvalue())


def _checked_out(path: str, force: bool) -> Path:
    out = Path(path)
    if out.exists() and not force:
        raise ArnnGenError(f"{out} exists; use --force to overwrite it")
    return out


@main.command()
@click.argument("module_path", metavar="MODULE.py")
@click.option("--beta", type=float, required=True, help="Target inverse temperature.")
@click.option("--beta-start", type=float, default=None,
              help="First beta of the annealing  [default: 0.1, or --beta if lower]")  # fmt: skip
@click.option("--beta-step", type=float, default=0.05, show_default=True)
@click.option("--steps-per-beta", type=int, default=1000, show_default=True)
@click.option("--warmup-steps", type=int, default=0, show_default=True,
              help="Extra steps at the first beta.")  # fmt: skip
@click.option("--batch", type=int, default=2000, show_default=True)
@click.option("--lr", type=float, default=None,
              help="Learning rate (default: natural 0.2; Adam 1e-3, for replica forms wider "
                   "than 50 later sites 1e-3 * 50 / width).")  # fmt: skip
@click.option("--optimizer", type=click.Choice(("adam", "natural")), default="adam",
              show_default=True, help="natural: per-site Fisher (replica forms).")  # fmt: skip
@click.option("--damping", type=float, default=None,
              help="The natural gradient's damping lambda (default 1e-3).")  # fmt: skip
@click.option("--lr-min", type=float, default=None,
              help="Each beta's learning rate falls from --lr to this (cosine).")  # fmt: skip
@click.option("--follow-beta/--no-follow-beta", default=True, show_default=True,
              help="Scale the parameters the module names BETA_SCALED with beta.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--early-stop", type=float, default=None, help="Stop a beta once the spread of f < this."
)
@click.option("--eval-samples", type=int, default=20000, show_default=True)
@click.option("--init", type=click.Choice(("paramagnetic", "random")), default="paramagnetic")
@click.option("--device", type=click.Choice(("auto", "cpu", "cuda")), default="auto")
@click.option("--dtype", type=click.Choice(("float32", "float64")), default="float32")
@click.option(
    "--compile",
    "use_compile",
    is_flag=True,
    help="torch.compile the hidden layers (replica modules): faster after warm-up.",
)
@click.option("--out", type=str, default=None, help="Run folder (default runs/<module>).")
@click.option("--resume", "resume_dir", type=str, default=None, metavar="RUN_DIR",
              help="Continue the run in RUN_DIR from its last checkpoint.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace the results in an existing run folder.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--distributed", is_flag=True,
              help="Data-parallel over the G processes torchrun starts: --batch / G samples "
                   "each; rank 0 writes the run.")  # fmt: skip
def train(module_path, beta, beta_start, beta_step, steps_per_beta, warmup_steps, batch, lr,
          optimizer, damping, lr_min, follow_beta, seed, early_stop, eval_samples, init, device,
          dtype, use_compile, out, resume_dir, force, quiet, distributed):  # fmt: skip
    """Variational training with beta annealing (REINFORCE, Adam); writes a run folder.

    Data-parallel: torchrun --standalone --nproc-per-node G -m arnn_gen train ... --distributed
    """
    from arnn_gen.learn.train import TrainConfig
    from arnn_gen.learn.train import train as run_training

    check_beta(beta)
    if beta_start is None:
        beta_start = min(0.1, beta)
    elif check_beta(beta_start, "--beta-start") > beta:
        raise ArnnGenError(f"--beta-start {beta_start} is above --beta {beta}: the annealing "
                           "rises from --beta-start to --beta")  # fmt: skip
    if resume_dir is not None and force:
        raise ArnnGenError("give either --resume RUN_DIR or --force, not both")
    _check_seed(seed)
    config = TrainConfig(
        beta=beta, beta_start=beta_start, beta_step=beta_step, steps_per_beta=steps_per_beta,
        batch=batch, lr=lr, lr_min=lr_min, follow_beta=follow_beta, seed=seed,
        early_stop=early_stop, eval_samples=eval_samples,
        device=_device(device), dtype=dtype, compile=use_compile,
        optimizer=optimizer,
        warmup_steps=warmup_steps, **({} if damping is None else {"damping": damping}),
    )  # fmt: skip
    if resume_dir is not None and out is not None and Path(out) != Path(resume_dir):
        raise ArnnGenError("give either --out for a new run or --resume RUN_DIR, not both")
    if resume_dir is not None:
        run_dir = Path(resume_dir)
    else:
        run_dir = Path(out) if out is not None else Path("runs") / Path(module_path).stem
    model = _model_from(module_path, beta=config.betas()[0], init=init)
    count = getattr(model, "INSTANCES", 1)  # a module of several instances: K runs at once
    if batch * model.N * count > MAX_BATCH_SPINS:
        raise ArnnGenError(f"--batch {batch} of N = {model.N} spins ({count} instances) exceeds "
                           f"{MAX_BATCH_SPINS} spins per step")  # fmt: skip
    resume = resume_dir is not None
    if hasattr(model, "INSTANCES"):
        if distributed:
            raise ArnnGenError("a module of several instances trains in one process: "
                               "leave out --distributed")  # fmt: skip
        _run_folder(run_dir, resume=resume, force=force)
        folders = [run_dir / f"instance_{label}" for label in model.INSTANCE_LABELS]
        for folder in folders if force else ():
            _run_folder(folder, resume=False, force=True)
        results = run_training(model, config, run_dir, resume=resume, progress=not quiet)
        from arnn_gen.learn.plots import save_plots

        for folder, result in zip(folders, results, strict=True):
            save_plots([folder], folder)
            click.echo(f"{folder}: beta = {beta}, {_final_line(result.final)}")
        return
    if not distributed:
        _run_folder(run_dir, resume=resume, force=force)
        result = run_training(model, config, run_dir, resume=resume, progress=not quiet)
    else:
        from arnn_gen.learn.distributed import data_parallel

        with data_parallel(config.device) as parallel:
            parallel.on_writer(lambda: _run_folder(run_dir, resume=resume, force=force))
            result = run_training(model, config, run_dir, resume=resume, progress=not quiet,
                                  parallel=parallel)  # fmt: skip
        if not parallel.is_writer:
            return  # rank 0 plots and prints
    from arnn_gen.learn.plots import save_plots

    save_plots([run_dir], run_dir)
    click.echo(f"{run_dir}: beta = {beta}, {_final_line(result.final)}")


def _final_line(final: dict) -> str:
    """The final estimate of a run in one line."""
    line = f"f = {final['free_energy']:.8f} +- {final['free_energy_sem']:.1e}"
    if final.get("exact_free_energy") is not None:
        exact, error = final["exact_free_energy"], final["relative_error"]
        line += f" (exact {exact:.8f}, relative error {error:.2e})"
    return f"{line}, ESS = {final['ess']:.0f}"


@main.command()
@click.argument("module_path", metavar="MODULE.py")
@click.argument("samples_path", metavar="SAMPLES.npy")
@click.option("--epochs", type=int, default=100, show_default=True)
@click.option("--batch", type=int, default=1000, show_default=True)
@click.option("--lr", type=float, default=1e-2, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--beta", type=float, default=None, help="Model beta (default: emission beta).")
@click.option("--learn-couplings", is_flag=True, help="Learn the first layer from small values.")
@click.option("--device", type=click.Choice(("auto", "cpu", "cuda")), default="auto")
@click.option("--out", type=str, default=None, help="Run folder (default runs/<module>_fit).")
@click.option("--force", is_flag=True, help="Replace the results in an existing run folder.")
@click.option("--quiet", is_flag=True)
def fit(module_path, samples_path, epochs, batch, lr, seed, beta, learn_couplings, device, out,
        force, quiet):  # fmt: skip
    """Maximum likelihood on samples; --learn-couplings for the inverse problem."""
    import torch

    from arnn_gen.learn.train import FitConfig, fit_model

    if beta is not None:
        check_beta(beta)
    _check_seed(seed)
    check_int("--epochs", epochs, 1, MAX_TRAINING_STEPS)
    config = FitConfig(epochs=epochs, batch=batch, lr=lr, seed=seed, device=_device(device))
    run_dir = Path(out) if out is not None else Path("runs") / f"{Path(module_path).stem}_fit"
    samples = _load_samples(samples_path)
    model = _model_from(
        module_path, beta=beta, init="random", learn_couplings=learn_couplings or None
    )
    _one_system(model, module_path, "fit")
    if learn_couplings and not isinstance(getattr(model, "J", None), torch.nn.Parameter):
        raise ArnnGenError(f"{module_path}: this architecture has no learnable first layer")
    if samples.shape[1] != model.N:
        raise ArnnGenError(f"{samples_path} holds samples of {samples.shape[1]} spins; "
                           f"{module_path} has N = {model.N}")  # fmt: skip
    if epochs * -(-len(samples) // batch) > MAX_TRAINING_STEPS:
        raise ArnnGenError(f"--epochs {epochs} over {len(samples)} samples in batches of "
                           f"{batch} exceed {MAX_TRAINING_STEPS} steps")  # fmt: skip
    _run_folder(run_dir, resume=False, force=force)
    losses = fit_model(model, samples, config, run_dir, learn_couplings=learn_couplings,
                       progress=not quiet)  # fmt: skip
    click.echo(f"{run_dir}: -log likelihood per spin {losses[-1] / model.N:.6f} "
               f"after {epochs} epochs on {len(samples)} samples")  # fmt: skip


def _load_samples(path: str):
    import numpy as np

    if not Path(path).is_file():
        raise ArnnGenError(f"samples file {path} does not exist")
    try:
        with open(path, "rb") as handle:
            if handle.read(6) != b"\x93NUMPY":
                raise ValueError("not a .npy array (save samples with numpy.save)")
            handle.seek(0)
            samples = np.load(handle, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        reason = " ".join(str(error).split())[:200] or type(error).__name__
        raise ArnnGenError(f"cannot read samples file {path}: {reason}") from None
    if (
        not isinstance(samples, np.ndarray)
        or samples.dtype.kind not in "biuf"
        or samples.ndim != 2
        or not np.isin(samples, (-1, 1)).all()
    ):
        raise ArnnGenError(f"{path} must hold a [S, N] array of -1 and +1")
    if samples.shape[0] == 0 or samples.shape[1] == 0:
        raise ArnnGenError(f"{path} holds no samples (shape {samples.shape})")
    return samples


@main.command()
@click.argument("module_path", metavar="MODULE.py")
@click.option("--checkpoint", type=str, default=None, help="model.pt or checkpoint.pt of a run.")
@click.option("-n", "count", type=int, required=True, help="Number of samples.")
@click.option("--out", type=str, required=True, help="Output .npy file.")
@click.option("--beta", type=float, default=None, help="Model beta (default: emission beta).")
@click.option("--mh-steps", type=int, default=0, show_default=True,
              help="Neural Metropolis-Hastings steps with the model as proposal.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def sample(module_path, checkpoint, count, out, beta, mh_steps, seed, force):
    """Draw samples from an emitted module (optionally trained) into a .npy file."""
    import torch

    check_samples("-n", count)
    check_int("--mh-steps", mh_steps, 0, MAX_TRAINING_STEPS)
    _check_seed(seed)
    if beta is not None:
        check_beta(beta)
    target = _checked_out(out, force)
    model = _model_from(module_path, beta=beta)
    _one_system(model, module_path, "sample")
    check_samples("-n", count, model.N)
    if checkpoint is not None:
        from arnn_gen.learn.train import apply_state, load_state

        apply_state(model, load_state(checkpoint, model), checkpoint)
    generator = torch.Generator().manual_seed(seed)
    if mh_steps:
        from arnn_gen.learn.mcmc import neural_metropolis

        # Chains are independent: run them SAMPLE_CHUNK at a time (memory O(chunk N)).
        parts, accepted = [], 0.0
        for first in range(0, count, SAMPLE_CHUNK):
            chains = min(SAMPLE_CHUNK, count - first)
            result = neural_metropolis(model, chains=chains, steps=mh_steps, generator=generator)
            parts.append(result.samples.to(torch.int8))
            accepted += result.acceptance_rate * chains
        samples, note = torch.cat(parts), f", acceptance rate {accepted / count:.4f}"
    else:
        with torch.no_grad():
            samples = torch.cat([
                model.sample(min(SAMPLE_CHUNK, count - first), generator=generator).to(torch.int8)
                for first in range(0, count, SAMPLE_CHUNK)
            ])  # fmt: skip
        note = ""
    _save_npy(target, samples.to(torch.int8).cpu().numpy())
    click.echo(f"{target}: {count} samples{note}")


@main.command()
@system_option
@click.option("-N", "N", type=int, default=None, help="Spins (default 100).")
@click.option("--J", "J", type=float, default=1.0, show_default=True)
@click.option("--h", "h", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="SK instance seed.")
@click.option("--couplings", type=str, default=None)
@click.option("-n", "count", type=int, required=True, help="Number of chains (samples).")
@click.option("--beta", type=float, required=True)
@click.option("--sweeps", type=int, required=True, help="Sweeps of every chain.")
@click.option("--chain-seed", type=int, default=0, show_default=True)
@click.option("--out", type=str, required=True, help="Output .npy file.")
@click.option("--force", is_flag=True)
@sparse_options
def mcmc(system, N, J, h, seed, couplings, count, beta, sweeps, chain_seed, out, force, **sparse):  # noqa: N803
    """Single-spin-flip Metropolis over many independent chains: one sample per chain."""
    import torch

    from arnn_gen.learn.mcmc import metropolis_samples

    check_beta(beta)
    check_samples("-n", count)
    check_int("--sweeps", sweeps, 0, MAX_TRAINING_STEPS)
    _check_seed(chain_seed, "--chain-seed")
    target = _checked_out(out, force)
    request = resolve(system, N=N, J=J, h=h, seed=seed, couplings=couplings,
                      **_sparse(**sparse))  # fmt: skip
    hamiltonian = build_system(system, None if system in LATTICES else N, default_n=100,
                               **request.system_options())  # fmt: skip
    if hasattr(hamiltonian, "to_dense"):  # Metropolis reads dense couplings: N <= 16384
        hamiltonian = hamiltonian.to_dense()
    if count * hamiltonian.N > MAX_BATCH_SPINS:
        raise ArnnGenError(f"-n {count} chains of N = {hamiltonian.N} spins exceed "
                           f"{MAX_BATCH_SPINS} spins in memory; run fewer chains")  # fmt: skip
    generator = torch.Generator().manual_seed(chain_seed)
    samples = metropolis_samples(hamiltonian, beta, count=count, sweeps=sweeps, generator=generator)
    _save_npy(target, samples.to(torch.int8).numpy())
    click.echo(f"{target}: {count} samples of {system} N={hamiltonian.N} at beta={beta}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, metavar="RUN_DIR...")
@click.option("--out", type=str, default=None, help="Folder (default: the first RUN_DIR).")
def plot(run_dirs, out):
    """F vs beta with the exact curve, relative error, P(q), training curves (PNG and PDF)."""
    from arnn_gen.learn.plots import save_plots

    for path in save_plots(run_dirs, out or run_dirs[0]):
        click.echo(str(path))


def _int_list(option: str, text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(item) for item in text.split(",")]
    except ValueError:
        raise ArnnGenError(f"{option} takes comma-separated integers, got {text!r}") from None


def dask_options(command):
    """--scheduler, --workers and --threads of sweep and reproduce (Note [Threads of a
    sweep] in arnn_gen.sweep.runner)."""
    options = [
        click.option("--scheduler", type=str, default=None, metavar="ADDRESS",
                     help="A running Dask scheduler (e.g. tcp://host:8786) instead of a "
                     "local cluster."),
        click.option("--workers", type=int, default=None,
                     help="Workers of the local Dask cluster (default: cores, or GPUs)."),
        click.option("--threads", type=int, default=None,
                     help="torch threads per task (default: cores / workers; 1 on a "
                     "--scheduler cluster)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


@main.command()
@click.argument("system", type=click.Choice(("cw", "sk")))
@click.option("--quick", is_flag=True, help="Small sizes, short schedules: a few minutes.")
@click.option("--device", type=click.Choice(("auto", "cpu", "cuda")), default="auto")
@click.option("--out", type=str, default=None, help="Folder (default runs/reproduce_<system>).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option(
    "--sizes",
    type=str,
    default=None,
    help="Only these of the preset's sizes, comma-separated (e.g. 20,50).",
)
@click.option(
    "--instances",
    type=str,
    default=None,
    help="Only these of the preset's SK instance seeds, comma-separated.",
)
@click.option(
    "--architectures",
    type=str,
    default=None,
    help="Only these of the preset's architectures, comma-separated.",
)
@click.option(
    "--compile",
    "use_compile",
    is_flag=True,
    help="torch.compile the replica modules (as train --compile): pays on long runs.",
)
@dask_options
@click.option("--force", is_flag=True, help="Replace runs made with another schedule.")
def reproduce(system, quick, device, out, quiet, sizes, instances, architectures, use_compile,
              scheduler, workers, threads, force):  # fmt: skip
    """The paper's comparison for cw or sk (docs/physics.md section 6): runs, plots, summary.
    --sizes, --instances and --architectures run a part of it (the full protocol in pieces).
    A preset of `sweep`: the same --out again skips what has finished; runs here, one after
    the other, unless --scheduler or --workers send them to Dask."""
    from dataclasses import replace

    from arnn_gen.learn.experiments import preset, run_experiment, select

    experiment = preset(system, quick=quick, device=_device(device))
    experiment = replace(experiment, config=replace(experiment.config, compile=use_compile))
    experiment = select(experiment, sizes=_int_list("--sizes", sizes),
                        seeds=_int_list("--instances", instances),
                        architectures=None if architectures is None
                        else [a.strip() for a in architectures.split(",")])  # fmt: skip
    _check_dask_options(workers, threads)
    folder = Path(out) if out is not None else Path("runs") / f"reproduce_{system}"
    summary = run_experiment(experiment, folder, progress=not quiet and scheduler is None
                             and workers is None, force=force, scheduler=scheduler,
                             workers=workers, threads=threads,
                             echo=None if quiet else click.echo)  # fmt: skip
    click.echo(summary.read_text(), nl=False)
    click.echo(str(summary))


def _check_dask_options(workers, threads) -> None:
    if workers is not None:
        check_int("--workers", workers, 1, 4096)
    if threads is not None:
        check_int("--threads", threads, 1, 4096)


@main.command()
@click.argument("sweep_path", metavar="SWEEP.toml")
@click.option("--out", type=str, default=None,
              help="Output root (default: the file's `out`, else runs/<file name>).")  # fmt: skip
@click.option("--device", type=click.Choice(("auto", "cpu", "cuda")), default=None,
              help="Override the schedule's device.")  # fmt: skip
@dask_options
@click.option("--serial", is_flag=True, help="Run the tasks here, one after the other (no Dask).")
@click.option("--report", "report_only", is_flag=True,
              help="Only aggregate the finished runs into the report.")  # fmt: skip
@click.option("--force", is_flag=True, help="Replace runs made with another definition.")
@click.option("--quiet", is_flag=True, help="No line per finished task.")
def sweep(sweep_path, out, device, scheduler, workers, threads, serial, report_only, force, quiet):
    """Run a sweep file's trainings on Dask (a local cluster by default), resumably: the same
    command again skips finished tasks and resumes interrupted ones; then the report
    (summary.md/.csv/.json, figures/). See docs/sweeps.md."""
    from dataclasses import replace

    from arnn_gen.sweep import expand, read_sweep, run_sweep, write_report
    from arnn_gen.sweep.runner import MANIFEST

    _check_dask_options(workers, threads)
    if serial and (scheduler is not None or workers is not None):
        raise ArnnGenError("--serial runs here: give it without --scheduler and --workers")
    plan = read_sweep(sweep_path, device=device)
    if plan.device == "auto":
        plan = replace(plan, schedule=replace(plan.schedule, device=_device("auto")))
    elif plan.device == "cuda":
        _device("cuda")
    folder = Path(out or plan.out or Path("runs") / Path(sweep_path).stem)
    title = f"arnn-gen sweep {plan.name}"
    if report_only:
        if not (folder / MANIFEST).is_file():
            raise ArnnGenError(f"{folder} holds no sweep ({MANIFEST} is missing)")
        from arnn_gen.sweep.runner import Manifest

        manifest = Manifest(folder, plan).document  # its recorded tasks, checked as it reads
        summary = write_report(folder, expand(plan), title=title, manifest=manifest)
    else:
        summary = run_sweep(plan, folder, scheduler=scheduler, workers=workers, threads=threads,
                            serial=serial, force=force, progress=False,
                            echo=None if quiet else click.echo, title=title)  # fmt: skip
    click.echo(summary.read_text(), nl=False)
    click.echo(str(summary))


@main.command()
@click.option("--quick", is_flag=True, help="CI-sized: small N and batch, few repeats.")
@click.option("--device", type=click.Choice(("auto", "cpu", "cuda")), default="cpu")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--out", type=str, default="benchmarks", show_default=True,
              help="Folder for bench.json.")  # fmt: skip
def bench(quick, device, threads, repeats, out):
    """Time sample, log_prob and a training step against the per-site baseline and the
    elementwise floor; write bench.json (docs/performance.md quotes it). Runs
    benchmarks/harness.py of the repository checkout (python benchmarks/harness.py has
    every option)."""
    import importlib.util

    import arnn_gen

    if threads < 1 or repeats < 1:
        raise ArnnGenError("--threads and --repeats must be >= 1")
    # benchmarks/ is not installed: the checkout this package runs from, else the current one
    candidates = [Path(arnn_gen.__file__).resolve().parents[1] / "benchmarks" / "harness.py",
                  Path.cwd() / "benchmarks" / "harness.py"]  # fmt: skip
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise ArnnGenError(
            "arnn-gen bench runs in a checkout of the repository (benchmarks/ is not "
            "installed); run it from the root of a checkout, or python benchmarks/harness.py there"
        )
    spec = importlib.util.spec_from_file_location("benchmarks_harness", found)
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    harness.run_benchmarks(quick=quick, out_dir=Path(out), device=_device(device),
                           threads=threads, repeats=repeats)  # fmt: skip
    click.echo(str(Path(out) / "bench.json"))


if __name__ == "__main__":  # pragma: no cover
    main()
