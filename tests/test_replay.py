"""Replay windows, episode boundaries and DreamSmooth."""

import numpy as np
import pytest

from naturaldreamer.config import ReplayConfig
from naturaldreamer.replay import Replay, smooth_rewards, smoothing_weights


def fill(replay: Replay, steps: int, episode_length: int, goal: float = 10.0) -> None:
    """Write `steps` steps for every env: obs[0] counts steps written, episodes of fixed length
    end with reward `goal` on their last step."""
    for t in range(steps):
        position = t % episode_length
        replay.add({
            "obs": np.full((replay.num_envs, 2), t, np.float32),
            "action": np.zeros((replay.num_envs, 1), np.float32),
            "reward": np.full(replay.num_envs, goal if position == episode_length - 1 else 0.0),
            "is_first": np.full(replay.num_envs, position == 0),
            "is_last": np.full(replay.num_envs, position == episode_length - 1),
            "is_terminal": np.full(replay.num_envs, position == episode_length - 1),
        })


def test_windows_are_consecutive_and_wrap_correctly():
    replay = Replay(2, 1, num_envs=3, config=ReplayConfig(capacity=60, batch_size=64,
                                                          batch_length=8))
    fill(replay, 47, episode_length=5)  # 47 steps into a ring of 20 per env: wrapped twice
    assert len(replay) == 60
    batch = replay.sample()
    steps = batch["obs"][..., 0]
    assert batch["obs"].shape == (64, 8, 2)
    np.testing.assert_array_equal(np.diff(steps, axis=1), 1)  # consecutive in time
    assert steps.min() >= 47 - 20  # only what is still stored
    np.testing.assert_array_equal(batch["is_first"], steps % 5 == 0)


def test_sample_refuses_before_one_window():
    replay = Replay(2, 1, num_envs=1, config=ReplayConfig(capacity=100, batch_length=8))
    fill(replay, 5, episode_length=5)
    with pytest.raises(ValueError, match="fewer than one window"):
        replay.sample()


def test_smoothing_hand_worked_ema():
    # alpha = 0.5: the final reward 8 spreads backwards as 4, 2, 1, 0.5, ... normalised over
    # the 4 steps of the episode: weights 0.5, 0.25, 0.125, 0.0625 sum to 0.9375.
    smoothed = smooth_rewards(np.array([0.0, 0.0, 0.0, 8.0]), "ema", alpha=0.5)
    np.testing.assert_allclose(smoothed, np.array([0.5, 1.0, 2.0, 4.0]) / 0.9375)


def test_smoothing_preserves_episode_total_and_gaussian_matches_kernel():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=40) * (rng.uniform(size=40) < 0.2)
    for kind in ("ema", "gaussian"):
        assert abs(smooth_rewards(rewards, kind).sum() - rewards.sum()) < 1e-9
    single = np.zeros(40)
    single[20] = 1.0
    smoothed = smooth_rewards(single, "gaussian", sigma=3.0)
    kernel = np.exp(-0.5 * ((np.arange(40) - 20) / 3.0) ** 2)
    np.testing.assert_allclose(smoothed, kernel / kernel.sum())
    assert smoothing_weights(5, "ema").shape == (5, 5)


def test_replay_smooths_each_finished_episode_and_keeps_raw_reward():
    config = ReplayConfig(capacity=100, batch_length=4, smoothing="ema", smoothing_alpha=0.5)
    replay = Replay(2, 1, num_envs=1, config=config)
    fill(replay, 12, episode_length=6)
    rewards = replay.data["reward"][0, :12]
    expected = smooth_rewards(np.array([0, 0, 0, 0, 0, 10.0]), "ema", alpha=0.5)
    np.testing.assert_allclose(rewards[:6], expected, rtol=1e-6)
    np.testing.assert_allclose(rewards[6:12], expected, rtol=1e-6)
    assert replay.data["raw_reward"][0, :12].sum() == 20.0


def test_state_dict_round_trip_continues_sampling_identically():
    config = ReplayConfig(capacity=200, batch_size=4, batch_length=5)
    a = Replay(2, 1, num_envs=2, config=config, seed=3)
    fill(a, 30, episode_length=7)
    a.sample()
    b = Replay(2, 1, num_envs=2, config=config, seed=99)
    b.load_state_dict(a.state_dict())
    sample_a, sample_b = a.sample(), b.sample()
    for key, value in sample_a.items():
        np.testing.assert_array_equal(value, sample_b[key])
