"""Learning with the emitted modules: variational training with annealing and maximum
likelihood (:mod:`~arnn_gen.learn.train`, :mod:`~arnn_gen.learn.natural`; data-parallel
over torchrun's processes, :mod:`~arnn_gen.learn.distributed`), estimators
(:mod:`~arnn_gen.learn.observables`), the paper's baseline networks
(:mod:`~arnn_gen.learn.baselines`), Monte Carlo (:mod:`~arnn_gen.learn.mcmc`), the paper's
comparisons (:mod:`~arnn_gen.learn.experiments`) and their figures
(:mod:`~arnn_gen.learn.plots`)."""
