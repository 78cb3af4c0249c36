"""Emitted modules check their inputs (DESIGN.md, Emitted module contract): every public
method that takes spins x refuses anything but a real tensor [B, N] of -1 and +1 with a
one-line ValueError, unless called with validate=False, and sample / sample_with_log_prob
refuse a batch size that is not a positive integer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

N = 6

#: family -> emit(system, variant, **options): one module of each template family.
FAMILIES = {
    "sk_exact": ("sk", "exact", {"N": N, "seed": 1}),  # H2ARNN
    "cw_exact": ("cw", "exact", {"N": N, "h": 0.2}),  # CW_N
    "cw_inf": ("cw", "inf", {"N": N, "h": 0.2}),  # CW_inf
    "sk_rs": ("sk", "rs", {"N": N, "seed": 1}),  # SK_RS
    "sk_krsb1": ("sk", "krsb", {"N": N, "k": 1, "seed": 1}),  # SK_1RSB
}

#: The public methods that take x, where a family has them.
X_METHODS = ("forward", "log_prob", "energy", "network_logits", "site_log_prob_grads")


def _with_nan(x):
    x = x.clone()
    x[1, 2] = math.nan
    return x


def _with_inf(x):
    x = x.clone()
    x[0, 0] = math.inf
    return x


#: name -> bad x made from valid spins x [B, N] (float64), and the end of its message.
BAD_SPINS = {
    "zeros_and_ones": (lambda x: (x + 1) / 2, "got values other than -1 and +1"),
    "plus_minus_two": (lambda x: 2 * x, "got values other than -1 and +1"),
    "one_half": (lambda x: x.masked_fill(x > 0, 0.5), "got values other than -1 and +1"),
    "nan": (_with_nan, "got values other than -1 and +1"),
    "inf": (_with_inf, "got values other than -1 and +1"),
    "int8_zeros": (lambda x: ((x + 1) / 2).to(torch.int8), "got values other than -1 and +1"),
    "uint8_zeros": (lambda x: (x > 0).to(torch.uint8), "got values other than -1 and +1"),
    "bool": (lambda x: x > 0, "got dtype torch.bool"),
    "complex": (lambda x: x.to(torch.complex128), "got dtype torch.complex128"),
    "one_dimensional": (lambda x: x[0], f"got shape ({N},)"),
    "three_dimensional": (lambda x: x[None], f"got shape (1, 4, {N})"),
    "too_wide": (lambda x: torch.cat([x, x[:, :1]], 1), f"got shape (4, {N + 1})"),
    "too_narrow": (lambda x: x[:, :-1], f"got shape (4, {N - 1})"),
    "list": (lambda x: x.tolist(), "got list"),
}

BAD_BATCH_SIZES = [-1, 0, True, False, 2.5, np.True_, torch.tensor(True), "3", None]


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, emit):
    """(the generated module's globals, model in float64, valid spins x [4, N] float64)."""
    system, variant, options = FAMILIES[request.param]
    model_class, _ = emit(system, variant, **options)
    model = model_class(dtype=torch.float64)
    x = model.sample(4, generator=torch.Generator().manual_seed(0))
    return model_class.log_prob.__globals__, model, x


def _methods(model):
    return [getattr(model, name) for name in X_METHODS if hasattr(model, name)]


@pytest.mark.parametrize("bad", list(BAD_SPINS))
def test_bad_spins_are_a_one_line_value_error(family, bad):
    _, model, x = family
    make, ending = BAD_SPINS[bad]
    value = make(x)
    before = value.clone() if isinstance(value, torch.Tensor) else None
    for method in [model, *_methods(model)]:
        with pytest.raises(ValueError) as error:
            method(value)
        message = str(error.value)
        assert "\n" not in message
        assert message == f"x must be a [B, {N}] tensor of -1 and +1, {ending}", method
    if before is not None:  # the user's tensor is left as it was
        torch.testing.assert_close(value, before, rtol=0, atol=0, equal_nan=True)


def test_validate_false_skips_the_check(family):
    _, model, x = family
    zeros_and_ones = (x + 1) / 2
    for method in _methods(model):
        method(zeros_and_ones, validate=False)  # computes something, raises nothing
        with pytest.raises(ValueError):
            method(zeros_and_ones)
    assert model(zeros_and_ones, validate=False).shape == (4, N)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int8, torch.int64])
def test_valid_spins_of_any_real_dtype(family, dtype):
    _, model, x = family
    spins = x.to(dtype)
    before = spins.clone()
    expected = model.log_prob(x)
    assert torch.equal(model.log_prob(spins), expected)
    assert torch.equal(model.energy(spins), model.energy(x))
    assert torch.equal(model(spins), model(x))
    assert spins.dtype == dtype and torch.equal(spins, before)  # not converted in place


def test_an_empty_batch_of_spins(family):
    _, model, _ = family
    empty = torch.empty(0, N, dtype=torch.float64)
    assert model.log_prob(empty).shape == (0,)
    assert model.energy(empty).shape == (0,)
    assert model(empty).shape == (0, N)


def test_each_call_checks_once_and_sampling_checks_nothing(family, monkeypatch):
    """Internal calls (log_prob calling forward, sample_with_log_prob) pass validate=False:
    a public call checks its x once, and sampling checks none of its own spins."""
    namespace, model, x = family
    calls = []
    check = namespace["_check_spins"]
    monkeypatch.setitem(namespace, "_check_spins", lambda *args: calls.append(1) or check(*args))
    for method in _methods(model):
        calls.clear()
        method(x)
        assert len(calls) == 1, method
        calls.clear()
        method(x, validate=False)
        assert calls == [], method
    calls.clear()
    log_q = model.log_prob(x.clone().requires_grad_())  # through forward's autograd
    if log_q.requires_grad:  # CW_N has no parameters
        log_q.sum().backward()
    model.sample(3)
    if hasattr(model, "sample_with_log_prob"):
        model.sample_with_log_prob(3)[1].sum().backward()
        learning = type(model)(dtype=torch.float64, learn_couplings=True)  # sample + log_prob
        learning.sample_with_log_prob(3)[1].sum().backward()
    assert len(calls) == 1


@pytest.mark.parametrize("batch_size", BAD_BATCH_SIZES, ids=repr)
def test_bad_batch_sizes_are_a_one_line_value_error(family, batch_size):
    _, model, _ = family
    samplers = [model.sample]
    if hasattr(model, "sample_with_log_prob"):
        samplers.append(model.sample_with_log_prob)
    for sampler in samplers:
        with pytest.raises(ValueError) as error:
            sampler(batch_size)
        message = str(error.value)
        assert "\n" not in message
        assert message.startswith("batch_size must be a positive integer, got ")


@pytest.mark.parametrize("batch_size", [np.int64(3), torch.tensor(3), 3])
def test_integer_like_batch_sizes(family, batch_size):
    _, model, _ = family
    x = model.sample(batch_size)
    assert x.shape == (3, N) and set(x.unique().tolist()) <= {-1.0, 1.0}
    if hasattr(model, "sample_with_log_prob"):
        x, log_q = model.sample_with_log_prob(batch_size)
        assert x.shape == (3, N) and log_q.shape == (3,)
