"""arnn-gen: derive, simplify and emit autoregressive neural networks of the Boltzmann
distribution of pairwise spin systems (I. Biazzo, Commun. Phys. 6, 296 (2023)).

Pipeline (one module per stage, data flowing one way): systems (dense and sparse) ->
derive -> simplify -> ir -> printing / emit -> generated module -> train / evaluate -> cli.
"""

from arnn_gen._version import __version__
from arnn_gen.codegen.emit import load_module, render_module, write_module
from arnn_gen.codegen.ir import ArchitectureIR
from arnn_gen.errors import ArnnGenError
from arnn_gen.exact import (
    ExactResult,
    curie_weiss_exact,
    curie_weiss_mean_field,
    enumerate_exact,
    exact,
    exact_conditionals,
    frontier_exact,
    kaufman_exact,
    onsager_free_energy,
)
from arnn_gen.learn.baselines import BASELINES, make_baseline
from arnn_gen.learn.mcmc import metropolis_samples, neural_metropolis
from arnn_gen.learn.observables import Estimates, estimate
from arnn_gen.learn.train import FitConfig, TrainConfig, fit, train
from arnn_gen.pipeline import Request, Stages, lower, resolve
from arnn_gen.symbolic.derive import Derivation, derive_conditional
from arnn_gen.symbolic.simplify import Reduction, reduce_conditional
from arnn_gen.systems import (
    CurieWeiss,
    Hamiltonian,
    SparseHamiltonian,
    curie_weiss,
    ea2d,
    ea3d,
    from_couplings,
    frontier,
    ising2d,
    read_couplings,
    rrg,
    sherrington_kirkpatrick,
    site_order,
)
from arnn_gen.systems import load as load_system

__all__ = [
    "__version__",
    "BASELINES",
    "Estimates",
    "FitConfig",
    "TrainConfig",
    "estimate",
    "fit",
    "make_baseline",
    "metropolis_samples",
    "neural_metropolis",
    "train",
    "ArchitectureIR",
    "ArnnGenError",
    "Derivation",
    "ExactResult",
    "CurieWeiss",
    "Hamiltonian",
    "Reduction",
    "Stages",
    "curie_weiss",
    "curie_weiss_exact",
    "curie_weiss_mean_field",
    "derive_conditional",
    "enumerate_exact",
    "exact_conditionals",
    "exact",
    "frontier_exact",
    "kaufman_exact",
    "onsager_free_energy",
    "SparseHamiltonian",
    "ea2d",
    "ea3d",
    "ising2d",
    "rrg",
    "read_couplings",
    "site_order",
    "frontier",
    "from_couplings",
    "load_module",
    "load_system",
    "lower",
    "resolve",
    "Request",
    "reduce_conditional",
    "render_module",
    "sherrington_kirkpatrick",
    "write_module",
]
