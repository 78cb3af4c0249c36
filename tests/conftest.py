"""Shared fixtures: emitted modules imported from a fresh folder, as a user would."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

# Without CUDA, Triton's kernels (emit --backend triton) run on the CPU under its interpreter,
# which must be chosen before triton is first imported: its language functions are built
# for it then (tests/test_triton.py).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from arnn_gen.codegen.emit import load_module, write_module
from arnn_gen.pipeline import lower


def pytest_collection_modifyitems(config, items):
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs CUDA")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def emitted(tmp_path):
    """emitted(system, **options) -> the module, written to tmp_path, copied alone (with its
    sidecar) into an empty folder and imported from there."""
    counter = iter(range(1000))

    def make(system, **options):
        stages = lower(system, **options)
        build = tmp_path / f"build{next(counter)}"
        path = write_module(stages.ir, stages.source, stages.hamiltonian, build)
        alone = tmp_path / f"alone{next(counter)}"
        alone.mkdir()
        for produced in build.iterdir():
            shutil.copy(produced, alone / produced.name)
        module = load_module(alone / path.name)
        module.stages = stages
        return module

    return make


@pytest.fixture(scope="module")
def emit(tmp_path_factory):
    """emit(system, variant, **options) -> (Model class, Hamiltonian), cached per module."""
    cache = {}

    def make(system, variant, **options):
        key = (system, variant, tuple(sorted(options.items())))
        if key not in cache:
            stages = lower(system, variant=variant, **options)
            out = tmp_path_factory.mktemp(f"{system}_{variant}")
            path = write_module(stages.ir, stages.source, stages.hamiltonian, out)
            cache[key] = (load_module(path).Model, stages.hamiltonian)
        return cache[key]

    return make
