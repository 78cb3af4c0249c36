"""Code generation: the architecture's intermediate representation
(:mod:`~arnn_gen.codegen.ir`, pure data), the strict SymPy-to-torch printer
(:mod:`~arnn_gen.codegen.printing`) and the emitter that renders the Jinja templates into a
standalone module (:mod:`~arnn_gen.codegen.emit`)."""
