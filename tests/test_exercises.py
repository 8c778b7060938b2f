"""The exercise checker accepts right answers, rejects wrong ones and spots unfilled stubs."""

import numpy as np
import torch

from naturaldreamer.exercises import NOT_DONE, check, first_difference, matches


def _inputs(rng: np.random.Generator) -> tuple:
    return (torch.tensor(rng.normal(size=(3, 4))),)


def test_identical_functions_match():
    assert matches(torch.tanh, lambda x: torch.tanh(x), _inputs)
    assert check(torch.tanh, torch.tanh, _inputs).startswith("correct")


def test_a_small_error_is_found_and_located():
    difference = first_difference(lambda x: torch.tanh(x) + 1e-3, torch.tanh, _inputs)
    assert difference is not None and "0.001" in difference and "input 0" in difference


def test_an_unfilled_stub_is_not_done_yet():
    def stub(x):
        raise NotImplementedError

    assert check(stub, torch.tanh, _inputs) == NOT_DONE


def test_shapes_and_tuple_outputs_are_compared():
    assert "shape" in first_difference(lambda x: x.sum(), lambda x: x.sum(-1), _inputs)
    pair = lambda x: (x.sum(-1), x.max())  # noqa: E731
    assert matches(pair, pair, _inputs)
    assert not matches(lambda x: (x.sum(-1),), pair, _inputs)
    assert not matches(lambda x: (x.sum(-1), x.min()), pair, _inputs)


def test_an_answer_that_changes_its_input_cannot_fool_the_reference():
    def in_place(x):
        return x.mul_(2)

    # The reference sees a fresh copy of the same input, so doubling in place is caught.
    assert not matches(in_place, lambda x: x, _inputs)
    assert matches(in_place, lambda x: 2 * x, _inputs)
