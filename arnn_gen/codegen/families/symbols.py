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
           "XI", "LOG_RHO_PLUS", "LOG_RHO_MINUS", "RESIDUAL", "SPIN", "LOGIT",
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
    MAGNETIZATION: "M",
    OFFSET: "LINEAR_REGIME_OFFSET",  # a module-level constant of the replica modules
}
