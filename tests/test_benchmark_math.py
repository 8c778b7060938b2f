"""The arithmetic of the critic benchmarks (benchmarks/value_ceiling.py, critic_limits.py,
checkpoint_probes.py), whose numbers chapter 10 quotes, against plain loops, hand-counted games
and a Monte-Carlo check."""

import sys
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from checkpoint_probes import outcome_shares  # noqa: E402
from critic_limits import dream_return  # noqa: E402
from naturaldreamer.envs.shaping import potential  # noqa: E402
from value_ceiling import discounted, shaped_return, variance_parts  # noqa: E402

GAMMA = 0.997


def test_discounted_return_matches_a_loop():
    rewards = np.array([0.0, 0.5, -1.0, 0.0, 10.0])  # rewards[j]: on arriving in obs j
    expected = 0.0
    for j in range(4, 1, -1):  # G_1 = r_2 + γ r_3 + γ² r_4, built backwards
        expected = rewards[j] + GAMMA * expected
    assert discounted(rewards, 1, GAMMA) == pytest.approx(expected)
    assert discounted(rewards, 4, GAMMA) == 0.0  # nothing follows the last observation


@pytest.mark.parametrize("goal", [True, False])
def test_shaped_return_equals_the_step_by_step_shaped_sum(goal):
    rng = np.random.default_rng(3)
    obs = rng.uniform(-3, 3, size=(7, 18)).astype(np.float32)
    rewards = rng.normal(size=7)
    rewards[0] = 0.0
    scale, t = 0.1, 2
    phi = [potential(o, scale) for o in obs]
    if goal:
        phi[-1] = 0.0  # Φ = 0 after a goal, as PotentialShaping sets it
    step_by_step = sum(GAMMA ** (j - t - 1) * (rewards[j] + GAMMA * phi[j] - phi[j - 1])
                       for j in range(t + 1, 7))
    plain = discounted(rewards, t, GAMMA)
    weight = GAMMA ** (6 - t)
    assert shaped_return(plain, obs[t], obs[-1], goal, weight, scale) == pytest.approx(
        step_by_step, rel=1e-6)


def test_variance_parts_recover_the_spreads_and_the_noise_ceiling():
    """States with real values of std 2, each return 3 std around its value: the split finds
    4 and 9, and the ceiling sqrt(between / total) is what the real values score against one
    return each."""
    rng = np.random.default_rng(0)
    values = rng.normal(0.0, 2.0, size=20_000)
    returns = values[:, None] + rng.normal(0.0, 3.0, size=(20_000, 4))
    between, within = variance_parts(returns)
    assert between == pytest.approx(4.0, rel=0.05)
    assert within == pytest.approx(9.0, rel=0.03)
    one_return = values + rng.normal(0.0, 3.0, size=values.shape)
    ceiling = (between / (between + within)) ** 0.5
    assert ceiling == pytest.approx(np.corrcoef(values, one_return)[0, 1], abs=0.02)
    assert variance_parts(np.ones((5, 3)))[0] == 0.0  # floored, never negative


def test_dream_return_matches_a_loop():
    rng = np.random.default_rng(1)
    rewards, continues = rng.normal(size=(3, 6)), rng.uniform(size=(3, 6))
    expected = np.zeros(3)
    for n in range(3):
        alive = 1.0
        for t in range(6):
            expected[n] += alive * rewards[n, t]
            alive *= GAMMA * continues[n, t]
    got = dream_return(torch.tensor(rewards), torch.tensor(continues), GAMMA)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_outcome_shares_count_each_opponents_games():
    """Four games, two per opponent: against weak a goal scored and a time-out, against strong
    a goal conceded and a goal scored; each game counts once however long it is."""
    lengths, final = [3, 5, 2, 4], [10.0, 0.0, -10.0, 10.0]
    reward = np.concatenate([np.r_[np.zeros(n - 1), r] for n, r in zip(lengths, final)])
    terminal = np.concatenate([np.r_[np.zeros(n - 1, bool), r != 0] for n, r in
                               zip(lengths, final)])
    episode = np.repeat(np.arange(4), lengths)
    recording = SimpleNamespace(reward=reward, is_terminal=terminal, episode=episode)
    assert outcome_shares(recording) == {
        "won_weak": 0.5, "drawn_weak": 0.5, "lost_weak": 0.0,
        "won_strong": 0.5, "drawn_strong": 0.0, "lost_strong": 0.5}
