"""Two-hot encoding and the actor distributions against independent computations."""

import math

import numpy as np
import pytest
import torch

from naturaldreamer.distributions import (BoundedNormal, TanhNormal, gaussian_entropy, symexp,
                                          symlog_bins, twohot_decode, twohot_encode,
                                          twohot_loss)

BINS = symexp(symlog_bins(255).double())


@pytest.fixture(autouse=True)
def float64():
    """Double precision, so that tolerances measure the math, not float32 rounding."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def test_symlog_bins_are_even_in_symlog_space_and_symmetric():
    bins = symlog_bins(255)
    assert bins[0] == -20 and bins[-1] == 20 and bins[127] == 0
    np.testing.assert_allclose(np.diff(bins.numpy()), 40 / 254, rtol=1e-5)
    assert torch.equal(bins, -bins.flip(0))


@pytest.mark.parametrize("value", [0.0, 0.3, -0.3, 1.0, 10.0, -10.0, 123.4, -5e4])
def test_twohot_encode_round_trip(value):
    target = twohot_encode(torch.tensor([value]), BINS)[0]
    assert torch.isclose(target.sum(), torch.tensor(1.0))
    assert (target > 0).sum() <= 2
    nonzero = torch.nonzero(target).flatten()
    assert nonzero.max() - nonzero.min() <= 1  # neighbouring bins
    np.testing.assert_allclose(float(target @ BINS), value, rtol=1e-9, atol=1e-9)
    # Decoding the log of the two-hot target recovers the value too.
    np.testing.assert_allclose(float(twohot_decode(torch.log(target + 1e-300), BINS)), value,
                               rtol=1e-7, atol=1e-7)


def test_twohot_encode_hand_worked():
    bins = torch.tensor([-2.0, 0.0, 1.0, 3.0])
    target = twohot_encode(torch.tensor([0.25, 2.5, 7.0, -9.0]), bins)
    expected = torch.tensor([[0, 0.75, 0.25, 0], [0, 0, 0.25, 0.75], [0, 0, 0, 1], [1, 0, 0, 0]])
    torch.testing.assert_close(target, expected)


def test_twohot_decode_matches_numpy_and_is_zero_for_uniform():
    logits = torch.randn(6, 255) * 3
    probs = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(-1, keepdims=True)
    np.testing.assert_allclose(twohot_decode(logits, BINS).numpy(), probs @ BINS.numpy(),
                               rtol=1e-6, atol=1e-3)
    raw_bins = symexp(symlog_bins(255)).float()  # outer bins ≈ 4.85e8
    assert twohot_decode(torch.zeros(3, 255, dtype=torch.float32), raw_bins).abs().max() == 0.0


def test_twohot_loss_gradient_is_softmax_minus_target():
    logits = torch.randn(255, requires_grad=True)
    target = torch.tensor(4.2)
    twohot_loss(logits, target, BINS).backward()
    expected = torch.softmax(logits.detach(), -1) - twohot_encode(target, BINS)
    torch.testing.assert_close(logits.grad, expected)
    # and against finite differences on a few coordinates
    for index in (100, 160, 161, 200):
        step = torch.zeros(255)
        step[index] = 1e-6
        numeric = (twohot_loss(logits.detach() + step, target, BINS)
                   - twohot_loss(logits.detach() - step, target, BINS)) / 2e-6
        assert abs(float(numeric) - float(logits.grad[index])) < 1e-6


def test_gaussian_entropy_closed_form_and_negative_below_threshold():
    std = torch.tensor([[0.135, 1.0, 7.39, 0.5]])
    expected = sum(0.5 * math.log(2 * math.pi * math.e * s ** 2) for s in std[0].tolist())
    assert abs(float(gaussian_entropy(std)) - expected) < 1e-12
    threshold = 1 / math.sqrt(2 * math.pi * math.e)
    assert float(gaussian_entropy(torch.tensor([threshold * 0.99]))) < 0
    assert float(gaussian_entropy(torch.tensor([threshold * 1.01]))) > 0


def test_tanh_normal_log_prob_is_change_of_variables_density():
    mean, raw_std = torch.tensor([0.3, -1.2]), torch.tensor([0.5, -0.4])
    dist = TanhNormal(mean, raw_std, -2.0, 2.0)
    std = np.exp(-2 + 4 / (1 + np.exp(-raw_std.numpy())))
    u = torch.tensor([[0.1, -2.0], [1.5, 0.7]])
    a = np.tanh(u.numpy())
    # p(a) = N(atanh(a); mean, std) / (1 − a²), per dimension
    atanh = np.arctanh(a)
    normal = np.exp(-0.5 * ((atanh - mean.numpy()) / std) ** 2) / (std * np.sqrt(2 * np.pi))
    expected = np.log(normal / (1 - a ** 2)).sum(-1)
    np.testing.assert_allclose(dist.log_prob(u).numpy(), expected, rtol=1e-9)


def test_tanh_normal_density_integrates_to_one():
    dist = TanhNormal(torch.tensor([0.7]), torch.tensor([0.2]), -2.0, 2.0)
    a = torch.linspace(-1 + 1e-9, 1 - 1e-9, 400_001)
    density = torch.exp(dist.log_prob(torch.atanh(a).unsqueeze(-1)))
    assert abs(float(torch.trapezoid(density, a)) - 1.0) < 1e-4


def _tanh_entropy_numeric(mean: float, std: float) -> float:
    """−∫ N(u) ln p_a(tanh u) du on a fine grid of u."""
    u = np.linspace(mean - 12 * std, mean + 12 * std, 400_001)
    normal = np.exp(-0.5 * ((u - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))
    # ln(1 − tanh²u) written to stay finite for large |u|
    log_jacobian = 2 * (np.log(2) - np.abs(u) - np.log1p(np.exp(-2 * np.abs(u))))
    log_pa = np.log(normal) - log_jacobian
    return float(-np.trapezoid(normal * log_pa, u))


@pytest.mark.parametrize("mean,raw_std", [(0.0, 0.0), (0.0, 3.0), (3.0, 0.0), (-0.5, -2.0)])
def test_tanh_normal_action_entropy_matches_numerical_integration(mean, raw_std):
    torch.manual_seed(0)
    dist = TanhNormal(torch.full((200_000, 1), mean), torch.full((200_000, 1), raw_std))
    u, _ = dist.sample()
    estimate = float(dist.action_entropy(u).mean())
    exact = _tanh_entropy_numeric(mean, float(dist.std[0, 0]))
    stderr = float(dist.action_entropy(u).std()) / math.sqrt(200_000)
    assert abs(estimate - exact) < 4 * stderr + 1e-3


def test_tanh_entropy_far_below_gaussian_entropy_at_large_std():
    # The seeds' claim that a wide TanhNormal is "maximally exploring": at σ = e² the action's
    # entropy is strongly negative while the Gaussian's is +3.4 nats per dimension.
    exact = _tanh_entropy_numeric(0.0, math.exp(2.0))
    assert exact < -3.0
    assert float(gaussian_entropy(torch.tensor([math.exp(2.0)]))) > 3.4


def _bounded_entropy_numeric(mean: float, std: float) -> float:
    x = np.linspace(-1, 1, 200_001)
    normal = np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi))
    inside = -np.trapezoid(normal * np.log(normal), x)
    low = 0.5 * math.erfc((1 + mean) / (std * math.sqrt(2)))
    high = 0.5 * math.erfc((1 - mean) / (std * math.sqrt(2)))
    return inside - low * math.log(low) - high * math.log(high)


@pytest.mark.parametrize("raw_mean,raw_std", [(0.0, 0.0), (1.5, 3.0), (-0.2, -6.0)])
def test_bounded_normal_action_entropy_matches_numerical_integration(raw_mean, raw_std):
    torch.manual_seed(1)
    n = 200_000
    dist = BoundedNormal(torch.full((n, 1), raw_mean), torch.full((n, 1), raw_std))
    x, action = dist.sample()
    assert action.abs().max() <= 1.0
    torch.testing.assert_close(action, x.clamp(-1, 1))
    estimates = dist.action_entropy(x)
    exact = _bounded_entropy_numeric(float(dist.mean[0, 0]), float(dist.std[0, 0]))
    assert abs(float(estimates.mean()) - exact) < 4 * float(estimates.std()) / math.sqrt(n) + 1e-3


def test_bounded_normal_std_range_and_initial_value():
    raw = torch.tensor([-100.0, 0.0, 100.0])
    dist = BoundedNormal(raw, raw)
    torch.testing.assert_close(dist.std, torch.tensor([0.1, 0.1 + 0.9 / (1 + math.exp(-2)), 1.0]))
    torch.testing.assert_close(dist.mean, torch.tanh(raw))


def test_action_entropy_gradient_matches_finite_differences():
    # d/d(mean, raw_std) of the Monte-Carlo estimate (pathwise, samples detached) against
    # finite differences of the numerically integrated entropy.
    n = 400_000
    torch.manual_seed(2)
    mean = torch.full((n, 1), 0.4, requires_grad=True)
    raw_std = torch.full((n, 1), 1.0, requires_grad=True)
    dist = TanhNormal(mean, raw_std)
    u, _ = dist.sample()
    dist.action_entropy(u).mean().backward()
    grad_mean, grad_raw = float(mean.grad.sum()), float(raw_std.grad.sum())

    def exact(m, r):
        return _tanh_entropy_numeric(m, math.exp(-2 + 4 / (1 + math.exp(-r))))
    h = 1e-4
    fd_mean = (exact(0.4 + h, 1.0) - exact(0.4 - h, 1.0)) / (2 * h)
    fd_raw = (exact(0.4, 1.0 + h) - exact(0.4, 1.0 - h)) / (2 * h)
    assert abs(grad_mean - fd_mean) < 0.02
    assert abs(grad_raw - fd_raw) < 0.02


def test_entropy_bonus_gradient_does_not_depend_on_its_sign():
    # Adding a constant (e.g. making the entropy negative) leaves the bonus gradient unchanged.
    raw_std = torch.tensor([[0.3, -1.0, 2.0, 0.0]], requires_grad=True)
    grads = []
    for shift in (0.0, -20.0):
        dist = BoundedNormal(torch.zeros(1, 4), raw_std)
        (3e-4 * (dist.gaussian_entropy() + shift)).sum().backward()
        grads.append(raw_std.grad.clone())
        raw_std.grad = None
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().min() > 0
