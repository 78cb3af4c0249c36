"""The symbols of the printed formulas and the Python names the templates give them.

The families write each formula in scalar stand-ins for the template's local variables
(z, a, b, ... below) and in the symbols of the derivation (beta, N, J, h, ...); the IR
carries this table to the emitter (``ArchitectureIR.symbol_names``), which therefore needs
nothing from the symbolic stages.
"""

from __future__ import annotations

import sympy as sp

from arnn_gen.symbolic.derive import SYMBOLS
from arnn_gen.symbolic.simplify import MAGNETIZATION, OFFSET, RSYM

__all__ = ["Z", "A", "B", "W", "C", "PHI", "Y", "U", "SHARED_EXP", "SHARED_SIGMOID", "OMEGA",
           "XI", "LOG_RHO_PLUS", "LOG_RHO_MINUS", "RESIDUAL", "SPIN", "LOGIT", "PHI_LATER",
           "TO_SITE", "LATER_PAIRS", "FIELD_BOUND", "COLUMN_NORM", "LOWEST",
           "HALF", "LOG_Z_UP", "LOG_Z_DOWN", "PLUS", "MINUS", "LOG_Z", "LOG_Z_PEAK",
           "SYMBOL_NAMES"]  # fmt: skip

#: Scalar stand-ins for the template's local variables in the formulas of the families.
Z, A, B, W, C, PHI, Y, U = sp.symbols("z a b w c phi_site y u")
SHARED_EXP = sp.Symbol("e")  # exp(-|u|), shared by a layer's output and slope
SHARED_SIGMOID = sp.Symbol("s")  # sigmoid(u), the same in eager code on the CPU
OMEGA = sp.Symbol("omega")  # omega_i of CW_inf in its printed logit
XI = sp.Symbol("xi")  # a spin of H2ARNN's configuration table
LOG_RHO_PLUS, LOG_RHO_MINUS = sp.symbols("log_rho_plus log_rho_minus")  # a logit's two terms
RESIDUAL = sp.Symbol("residual")  # a logit's residual, where the template evaluates it first
SPIN, LOGIT = sp.symbols("x logit")  # a spin x_i and the logit of P(x_i = +1 | x_<i)
PHI_LATER = sp.Symbol("phi_later")  # the cavity fields phi_{i,l} of the later sites l > i
TO_SITE, LATER_PAIRS = sp.symbols("to_site later_pairs")  # H2ARNN's two contractions w J
FIELD_BOUND = sp.Symbol("field_bound")  # |h_l| + sum_s |J_{s,l}| >= |phi_{i,l}|
COLUMN_NORM = sp.Symbol("column_norm")  # sum_s |J_{s,l}|, the 1-norm of a column of J
LOWEST = sp.Symbol("z_low")  # the lowest output of the layer below
# CW_N's binomial recursion (families/cw_exact.py). The SymPy names order the printed terms
# as "log_z_down - half" and "plus - minus": one subtraction each, no negation.
HALF = sp.Symbol("r/2")  # r(mu) / 2, the residual halved
LOG_Z_UP, LOG_Z_DOWN = sp.symbols("log_z_up log_z_down")  # F_n(mu + 1), F_n(mu - 1)
PLUS, MINUS = sp.Symbol("x=+1"), sp.Symbol("x=-1")  # the terms of the first later spin
LOG_Z, LOG_Z_PEAK = sp.symbols("log_z log_z_peak")  # F_n(mu) and its largest value

#: Python names the templates give to the symbols of the formulas.
SYMBOL_NAMES: dict[sp.Basic, str] = {
    SYMBOLS.beta: "beta",
    SYMBOLS.N: "N",
    RSYM.J: "J",
    RSYM.h: "h",
    RSYM.n: "n",
    RSYM.k: "k",
    RSYM.M: "M",
    RSYM.sign: "sign",
    RSYM.m: "m",
    RSYM.coupling: "coupling",
    Z: "z",
    A: "a",
    B: "b",
    W: "w",
    C: "c",
    PHI: "phi_site",
    Y: "y",
    U: "u",
    XI: "xi",
    OMEGA: "omega",
    LOG_RHO_PLUS: "log_rho_plus",
    LOG_RHO_MINUS: "log_rho_minus",
    RESIDUAL: "residual",
    SPIN: "x",
    LOGIT: "logit",
    PHI_LATER: "phi_later",
    TO_SITE: "to_site",
    LATER_PAIRS: "later_pairs",
    FIELD_BOUND: "field_bound",
    COLUMN_NORM: "column_norm",
    LOWEST: "z_low",
    MAGNETIZATION: "M",
    OFFSET: "OUTER_LAYER_OFFSET",  # a module-level constant of the replica modules
    HALF: "half",
    LOG_Z_UP: "log_z_up",
    LOG_Z_DOWN: "log_z_down",
    PLUS: "plus",
    MINUS: "minus",
    LOG_Z: "log_z",
    LOG_Z_PEAK: "log_z_peak",
}
