"""arnn-gen: derive, simplify and emit autoregressive neural networks of the Boltzmann
distribution of pairwise spin systems (I. Biazzo, Commun. Phys. 6, 296 (2023)).

Pipeline (one module per stage, data flowing one way): systems -> derive -> simplify ->
ir -> printing / emit -> generated module -> train / evaluate -> cli.
"""

from ._version import __version__
from .baselines import BASELINES, make_baseline
from .derive import Derivation, derive_conditional
from .emit import load_module as load
from .emit import render_module, write_module
from .errors import ArnnGenError
from .exact import (
    ExactResult,
    curie_weiss_exact,
    curie_weiss_mean_field,
    enumerate_exact,
    exact_conditionals,
)
from .ir import ArchitectureIR
from .mcmc import metropolis_samples, neural_metropolis
from .observables import Estimates, estimate
from .pipeline import Stages, lower
from .simplify import Reduction, reduce_conditional
from .systems import (
    Hamiltonian,
    curie_weiss,
    from_couplings,
    sherrington_kirkpatrick,
)
from .systems import load as load_hamiltonian
from .train import FitConfig, TrainConfig, fit, train

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
    "Hamiltonian",
    "Reduction",
    "Stages",
    "curie_weiss",
    "curie_weiss_exact",
    "curie_weiss_mean_field",
    "derive_conditional",
    "enumerate_exact",
    "exact_conditionals",
    "from_couplings",
    "load",
    "load_hamiltonian",
    "lower",
    "reduce_conditional",
    "render_module",
    "sherrington_kirkpatrick",
    "write_module",
]
