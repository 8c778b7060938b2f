"""Potential-based shaping: it telescopes, so no behaviour can farm it."""

import numpy as np

from naturaldreamer.config import from_dict
from naturaldreamer.envs import make_env
from naturaldreamer.envs.shaping import OPPONENT_GOAL, potential
from naturaldreamer.train import training_envs


def test_potential_by_hand():
    obs = np.zeros(18, np.float32)
    obs[0:2] = [-3.0, 0.0]  # player
    obs[12:14] = [1.0, 3.0]  # puck: 5 from the player, 4.25 - 1 = 3.25 and 3 from the goal
    expected = -0.1 * (5.0 + np.hypot(3.25, 3.0))
    assert abs(potential(obs, 0.1) - expected) < 1e-6
    assert OPPONENT_GOAL.tolist() == [4.25, 0.0]


def test_discounted_shaping_telescopes_to_minus_the_first_potential_at_a_goal():
    env = make_env("hockey", opponent="strong", potential=0.1)
    rng = np.random.default_rng(0)
    ends = {"terminated": 0, "truncated": 0}
    for seed in range(12):
        obs, _ = env.reset(seed=seed)
        first = potential(obs, 0.1)
        total, discount, done = 0.0, 1.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 4))
            total += discount * (reward - info["sparse_reward"])
            discount *= 0.997
            done = terminated or truncated
        # Σ γ^t (γ Φ(s_{t+1}) − Φ(s_t)) = γ^T Φ(s_T) − Φ(s_0), with Φ(s_T) = 0 after a goal
        if terminated:
            ends["terminated"] += 1
            assert abs(total + first) < 1e-5
            assert abs(info["sparse_reward"]) == 10.0
        else:
            ends["truncated"] += 1
            assert abs(total - (discount * potential(obs, 0.1) - first)) < 1e-5
            assert abs(discount * potential(obs, 0.1)) > 1e-3  # a time-out keeps its Φ
    assert min(ends.values()) >= 2, ends  # both kinds of ending were checked


def test_the_terminal_step_pays_back_the_last_potential():
    # On the step into a goal F = γ·0 − Φ(s_{T−1}): the potential collected so far is undone.
    env = make_env("hockey", opponent="strong", potential=0.1, mode="train_defense")
    rng = np.random.default_rng(1)
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            before = potential(obs, 0.1)
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, 4))
        if terminated:
            assert abs(reward - info["sparse_reward"] + before) < 1e-6
            return
    raise AssertionError("no goal in 40 defence drills")


def test_no_shaping_by_default():
    env = make_env("hockey", opponent="weak")
    env.reset(seed=0)
    _, reward, *_ , info = env.step(np.zeros(4))
    assert "sparse_reward" not in info and reward == 0.0


def test_training_envs_shape_with_the_agents_discount():
    # The telescoping above needs the wrapper's γ to be the one the critic discounts with.
    config = from_dict({"env": {"name": "hockey", "num_envs": 2, "options": {"potential": 0.1}},
                        "behavior": {"discount": 0.99}})
    envs, _ = training_envs(config, np.random.default_rng(0))
    assert [env.discount for env in envs] == [0.99, 0.99]
    obs, _ = envs[0].reset(seed=0)
    next_obs, reward, _, _, info = envs[0].step(np.full(4, 0.5, np.float32))
    bonus = 0.99 * potential(next_obs, 0.1) - potential(obs, 0.1)
    assert abs(bonus) > 1e-3
    assert abs(reward - info["sparse_reward"] - bonus) < 1e-6
