"""Check a reader's answer to a chapter's exercise against the package's own function.

Each exercise gives a stub that raises NotImplementedError, a check cell that calls `check`,
and a folded solution whose cell proves, with `matches`, that the check accepts a right answer
and rejects the mistake readers actually make.
"""

from typing import Callable

import numpy as np
import torch

NOT_DONE = "not done yet: fill in the function above, run its cell, then run this cell again"


def _as_arrays(value) -> list[np.ndarray]:
    """A result (tensor, array, number, or a tuple of them) as a list of float64 arrays."""
    if isinstance(value, (tuple, list)):
        return [array for part in value for array in _as_arrays(part)]
    if isinstance(value, torch.Tensor):
        return [value.detach().cpu().double().numpy()]
    return [np.asarray(value, dtype=np.float64)]


def first_difference(answer: Callable, reference: Callable,
                     make_inputs: Callable[[np.random.Generator], tuple], trials: int = 20,
                     seed: int = 0, rtol: float = 1e-5, atol: float = 1e-6) -> str | None:
    """None if `answer(*inputs)` equals `reference(*inputs)` on `trials` random inputs, else a
    sentence saying where they first differ.

    `make_inputs(rng)` draws one tuple of arguments from a numpy Generator. It is called twice
    per trial with the same seed, so an answer that changes its inputs in place cannot change
    what the reference sees. Results are compared with np.allclose(rtol, atol), shapes exactly.
    A NotImplementedError raised by the answer (an unfilled stub) is passed on.
    """
    for trial in range(trials):
        expected = _as_arrays(reference(*make_inputs(np.random.default_rng(seed + trial))))
        got = _as_arrays(answer(*make_inputs(np.random.default_rng(seed + trial))))
        if len(got) != len(expected):
            return f"it returns {len(got)} values where {len(expected)} are expected"
        for index, (mine, theirs) in enumerate(zip(got, expected)):
            where = f"output {index}" if len(expected) > 1 else "the output"
            if mine.shape != theirs.shape:
                return f"{where} has shape {mine.shape}, expected {theirs.shape}"
            if not np.allclose(mine, theirs, rtol=rtol, atol=atol, equal_nan=True):
                error = float(np.nanmax(np.abs(mine - theirs)))
                return f"{where} differs by up to {error:.3g} on random input {trial}"
    return None


def matches(answer: Callable, reference: Callable,
            make_inputs: Callable[[np.random.Generator], tuple], **options) -> bool:
    """True if the answer agrees with the reference on random inputs (see first_difference)."""
    return first_difference(answer, reference, make_inputs, **options) is None


def check(answer: Callable, reference: Callable,
          make_inputs: Callable[[np.random.Generator], tuple], **options) -> str:
    """The verdict a check cell prints: not done yet, correct, or where the answer is wrong."""
    try:
        difference = first_difference(answer, reference, make_inputs, **options)
    except NotImplementedError:
        return NOT_DONE
    if difference is None:
        trials = options.get("trials", 20)
        return f"correct: your function agrees with the package's on {trials} random inputs"
    return f"not yet right: {difference}"
