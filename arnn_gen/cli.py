"""Stage 7: the ``arnn-gen`` command line, a thin click layer over the pipeline.

Every failure the user can cause (bad options, bad files, size limits) ends as one line on
stderr, ``arnn-gen: error: ...``, and a non-zero exit status: 2 for usage errors (click's
convention), 1 for everything else. No traceback reaches the user.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path

import click

from ._version import __version__
from .derive import derive_conditional
from .emit import write_module
from .errors import ArnnGenError
from .exact import exact as exact_reference
from .pipeline import MAX_H2ARNN_N, build_system, lower
from .render import render_latex, render_png, render_text
from .simplify import VARIANTS, reduce_conditional, resolve_variant

__all__ = ["main"]

SYSTEMS = tuple(VARIANTS)
ALL_VARIANTS = tuple(sorted({v for variants in VARIANTS.values() for v in variants}))


class _Group(click.Group):
    """A click group whose errors are one line on stderr, never a traceback."""

    def main(self, args=None, prog_name=None, **extra):  # noqa: D401
        try:
            return super().main(args=args, prog_name=prog_name, standalone_mode=False, **extra)
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
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as error:  # a bug, not bad input: say so in one line
            if os.environ.get("ARNN_GEN_DEBUG"):
                raise
            _fail(
                f"internal error ({type(error).__name__}: {error}); "
                "rerun with ARNN_GEN_DEBUG=1 for the traceback and report it",
                3,
            )


def _fail(message: str, code: int) -> None:
    click.echo(f"arnn-gen: error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


def _check_beta(beta: float) -> float:
    if not (math.isfinite(beta) and beta > 0):
        raise ArnnGenError(f"beta must be finite and > 0, got {beta}")
    return beta


def _check_size(N: int | None, *, system: str, variant: str) -> None:  # noqa: N803
    if N is None:
        return
    if N < 1:
        raise ArnnGenError(f"N must be >= 1, got {N}")
    if variant == "exact" and system != "cw" and N > MAX_H2ARNN_N:
        raise ArnnGenError(
            f"the exact variant of {system} (H2ARNN) enumerates 2^N states and is limited to "
            f"N <= {MAX_H2ARNN_N}; got N={N} (use --variant krsb or rs)"
        )


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    )
    try:
        with handle:
            handle.write(data)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


system_option = click.option(
    "--system",
    required=True,
    type=click.Choice(SYSTEMS),
    help="general (couplings from a file), cw (Curie-Weiss) or sk (Sherrington-Kirkpatrick).",
)
variant_option = click.option(
    "--variant",
    type=click.Choice(ALL_VARIANTS),
    default=None,
    help="Architecture (default: general krsb, cw exact, sk krsb).",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="arnn-gen")
def main() -> None:
    """Derive, simplify and emit autoregressive networks of pairwise spin systems."""


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
def derive(system, variant, N, k, fmt, out):  # noqa: N803
    """Print the derived conditional P(x_i=+1|x_<i), then the reduced form of the variant."""
    variant = resolve_variant(system, variant)
    _check_size(N, system=system, variant=variant)
    if k < 0:
        raise ArnnGenError(f"the RSB depth k must be >= 0, got {k}")
    derivation = derive_conditional()
    reduction = reduce_conditional(system, variant, k=k, derivation=derivation)
    sections = [
        ("Exact autoregressive conditional (PHYSICS.md section 2)", derivation),
        (f"Reduced form: {reduction.title()} ({system}, variant {variant})", reduction),
    ]
    if fmt == "png":
        if out is None:
            raise ArnnGenError("--format png needs --out FILE.png")
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
def exact(system, N, beta, J, h, seed, couplings, as_json):  # noqa: N803
    """Exact free energy and observables: the Curie-Weiss formula at any N, enumeration
    (N <= 24) otherwise."""
    _check_beta(beta)
    default_n = 100 if system == "cw" else 20
    hamiltonian = build_system(
        system, N, J=J, h=h, seed=seed, couplings=couplings, default_n=default_n
    )
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
    click.echo(f"magnetization_abs {result.magnetization_abs:.15g}")


@main.command()
@system_option
@variant_option
@click.option("-N", "N", type=int, default=None, help="Spins (default 100; 20 for H2ARNN).")
@click.option("-k", "k", type=int, default=1, show_default=True, help="RSB depth of krsb.")
@click.option("--beta", type=float, default=1.0, show_default=True, help="Emission beta.")
@click.option("--J", "J", type=float, default=1.0, show_default=True, help="Coupling scale.")
@click.option("--h", "h", type=float, default=0.0, show_default=True, help="Uniform field.")
@click.option("--seed", type=int, default=0, show_default=True, help="SK instance seed.")
@click.option("--couplings", type=str, default=None, help="Couplings file (system general).")
@click.option("--out", type=str, default="generated", show_default=True, help="Directory.")
@click.option("--name", type=str, default=None, help="Module name (default from the spec).")
@click.option("--force", is_flag=True, help="Overwrite an existing module.")
def emit(system, variant, N, k, beta, J, h, seed, couplings, out, name, force):  # noqa: N803
    """Emit a standalone PyTorch module (and its .npz sidecar); print the path written."""
    _check_beta(beta)
    variant = resolve_variant(system, variant)
    _check_size(N, system=system, variant=variant)
    if k < 0:
        raise ArnnGenError(f"the RSB depth k must be >= 0, got {k}")
    stages = lower(
        system,
        variant=variant,
        N=N,
        k=k,
        beta=beta,
        J=J,
        h=h,
        seed=seed,
        couplings=couplings,
        name=name,
    )
    path = write_module(stages.ir, stages.source, stages.hamiltonian, out, force=force)
    click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    main()
