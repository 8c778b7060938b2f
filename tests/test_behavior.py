"""λ-returns, return normalisation and the behaviour update."""

import numpy as np
import pytest
import torch

from naturaldreamer.behavior import Moments, lambda_returns


def numpy_lambda_returns(rewards, values, continues, discount, lam):
    """Plain-loop reference, written independently from the recursion in the docstring."""
    T = len(rewards)
    returns = np.zeros(T)
    for t in range(T):
        # Expanded form: Σ_k of λ^k-weighted n-step returns, each bootstrapped from v_{t+n}.
        total, weight_left = 0.0, 1.0
        for n in range(1, T - t + 1):
            n_step = 0.0
            factor = 1.0
            for k in range(n):
                n_step += factor * rewards[t + k]
                factor *= discount * continues[t + k]
            n_step += factor * values[t + n]
            weight = (1 - lam) * lam ** (n - 1) if n < T - t else lam ** (n - 1)
            total += weight * n_step
            weight_left -= weight
        assert abs(weight_left) < 1e-12
        returns[t] = total
    return returns


def test_lambda_returns_hand_worked_three_steps():
    # r = (1, 0, 2), v = (0, 1, 2, 4), c = (1, 1, 0.5), γ = 0.9, λ = 0.5. Backwards:
    # R_3 = v_3 = 4
    # R_2 = 2 + 0.9·0.5·(0.5·4 + 0.5·4)   = 2 + 0.45·4      = 3.8
    # R_1 = 0 + 0.9·1·(0.5·2 + 0.5·3.8)   = 0.9·2.9         = 2.61
    # R_0 = 1 + 0.9·1·(0.5·1 + 0.5·2.61)  = 1 + 0.9·1.805   = 2.6245
    returns = lambda_returns(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 1.0, 2.0, 4.0]),
                             torch.tensor([1.0, 1.0, 0.5]), 0.9, 0.5)
    torch.testing.assert_close(returns, torch.tensor([2.6245, 2.61, 3.8]))


def test_lambda_returns_against_numpy_loop():
    rng = np.random.default_rng(0)
    for lam in (0.0, 0.5, 0.95, 1.0):
        r, v = rng.normal(size=15), rng.normal(size=16)
        c = rng.uniform(size=15)
        got = lambda_returns(torch.tensor(r), torch.tensor(v), torch.tensor(c), 0.997, lam)
        np.testing.assert_allclose(got.numpy(), numpy_lambda_returns(r, v, c, 0.997, lam),
                                   rtol=1e-10, atol=1e-10)


def test_lambda_zero_bootstraps_from_the_next_state():
    # The mistake in a popular port: (1 − λ)·v of the *same* state. With λ = 0, r = 0, c = 1
    # that returns the critic's own values; the correct target is the next state's value.
    values = torch.tensor([[5.0, 7.0, 11.0]])
    returns = lambda_returns(torch.zeros(1, 2), values, torch.ones(1, 2), 1.0, 0.0)
    torch.testing.assert_close(returns, torch.tensor([[7.0, 11.0]]))


def test_lambda_returns_batched_shapes():
    returns = lambda_returns(torch.zeros(4, 3, 15), torch.ones(4, 3, 16), torch.ones(4, 3, 15),
                             1.0, 0.95)
    assert returns.shape == (4, 3, 15)
    torch.testing.assert_close(returns, torch.ones(4, 3, 15))


def test_moments_against_numpy_percentiles():
    rng = np.random.default_rng(1)
    moments = Moments(decay=0.99, low=0.05, high=0.95, floor=1.0)
    low = high = 0.0
    for _ in range(300):
        batch = rng.normal(3.0, 20.0, size=(64, 15))
        offset, scale = moments(torch.tensor(batch, dtype=torch.float32))
        low = 0.99 * low + 0.01 * np.percentile(batch, 5)
        high = 0.99 * high + 0.01 * np.percentile(batch, 95)
        np.testing.assert_allclose(float(offset), low, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(float(scale), max(1.0, high - low), rtol=1e-4, atol=1e-4)
    assert float(scale) > 1.0  # dense returns: the scale leaves its floor


def test_moments_scale_stays_at_floor_for_small_returns():
    moments = Moments()
    for _ in range(1000):
        _, scale = moments(torch.rand(256) * 0.5)
    assert float(scale) == 1.0


def test_moments_state_is_in_state_dict():
    moments = Moments()
    moments(torch.arange(100.0))
    state = moments.state_dict()
    assert set(state) == {"low", "high"} and float(state["high"]) > 0
