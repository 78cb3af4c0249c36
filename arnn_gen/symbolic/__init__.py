"""The symbolic stages: SymPy derives the exact autoregressive conditional
(:mod:`~arnn_gen.symbolic.derive`), mean-field and replica reductions simplify it
(:mod:`~arnn_gen.symbolic.simplify`) in the vocabulary of neural networks
(:mod:`~arnn_gen.symbolic.nn_functions`), and :mod:`~arnn_gen.symbolic.display` shows
both as LaTeX, text or PNG."""
