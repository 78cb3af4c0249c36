"""Exact thermodynamics: the references every numerical test of arnn-gen compares against.

``enumeration``
    the sum over all 2^N configurations, the Curie-Weiss formula at any N and its mean-field
    limit, the exact conditionals, and :func:`exact`, which picks the route.
"""

from arnn_gen.exact.enumeration import (
    MAX_ENUMERATION_N,
    ExactResult,
    MeanField,
    curie_weiss_exact,
    curie_weiss_mean_field,
    enumerate_configurations,
    enumerate_exact,
    exact,
    exact_conditionals,
    log_boltzmann,
    solve_magnetization,
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
]
