"""Exact thermodynamics: the references every numerical test of arnn-gen compares against.

``enumeration``
    :class:`ExactResult`; the sum over all 2^N configurations (N <= 24), the Curie-Weiss
    formula at any N and its mean-field limit, the exact conditionals and log P(x).
``frontier``
    frontier elimination along a site order (docs/physics.md section 7): log Z, <H>, <x_i>
    and <|M|> of sparse systems at any N in O(N 2^w) for elimination width w <= 24; the exact
    conditionals and the bias tables of the sparse exact network.
``ising2d``
    closed forms (docs/physics.md section 8): Kaufman's log Z of the L x W Ising torus,
    Onsager's N -> infinity free energy, and the annealed SK bound and limit.
``dispatch``
    :func:`exact`, which picks the route for a system, and :func:`reference_log_z`, the
    log Z a training run compares with at every beta.
"""

from arnn_gen.exact.dispatch import exact, reference_log_z
from arnn_gen.exact.enumeration import (
    MAX_ENUMERATION_N,
    ExactResult,
    MeanField,
    curie_weiss_exact,
    curie_weiss_mean_field,
    enumerate_configurations,
    enumerate_exact,
    exact_conditionals,
    log_boltzmann,
    solve_magnetization,
)
from arnn_gen.exact.frontier import (
    MAX_FRONTIER_TABLE_ENTRIES,
    MAX_FRONTIER_WIDTH,
    MAX_MAGNETIZATION_WORK,
    FrontierTables,
    elimination_width,
    frontier_conditionals,
    frontier_exact,
    frontier_log_prob,
    frontier_log_z,
    frontier_tables,
)
from arnn_gen.exact.ising2d import (
    BETA_C,
    kaufman_exact,
    kaufman_log_z,
    onsager_free_energy,
    sk_annealed_free_energy,
    sk_annealed_log_z,
)

__all__ = [
    "MAX_ENUMERATION_N",
    "ExactResult",
    "MeanField",
    "enumerate_configurations",
    "enumerate_exact",
    "log_boltzmann",
    "exact_conditionals",
    "curie_weiss_exact",
    "curie_weiss_mean_field",
    "solve_magnetization",
    "exact",
    "reference_log_z",
    "MAX_FRONTIER_WIDTH",
    "MAX_MAGNETIZATION_WORK",
    "MAX_FRONTIER_TABLE_ENTRIES",
    "FrontierTables",
    "elimination_width",
    "frontier_exact",
    "frontier_log_z",
    "frontier_log_prob",
    "frontier_conditionals",
    "frontier_tables",
    "BETA_C",
    "kaufman_log_z",
    "kaufman_exact",
    "onsager_free_energy",
    "sk_annealed_log_z",
    "sk_annealed_free_energy",
]
