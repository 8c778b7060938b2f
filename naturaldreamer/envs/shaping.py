"""Potential-based reward shaping for the hockey game (chapter 10).

A shaping term of the form F = γ·Φ(s') − Φ(s) adds guidance without changing which policies are
optimal (Ng, Harada and Russell, 1999). The theorem needs Φ = 0 at the terminal state (the
absorbing state after a goal): then the discounted sum along any episode that ends in a goal
telescopes to exactly −Φ(s_0), whatever the agent did and whenever the goal fell, so no
behaviour can farm it. A time-out is not a terminal state (the critic bootstraps there), so Φ
keeps its value at the last observation of a truncated episode and the sum is γ^T·Φ(s_T) − Φ(s_0);
with the hockey env's `clock` the time-out is terminal, and Φ is 0 there too.
The course's own closeness term is not of this form, and chapter 10 shows an agent learning to
concede goals to escape it.

Here Φ(s) = −scale · (|player − puck| + |puck − opponent's goal|), from the observation alone
(observation frame: table centre at 0; the opponent's goal at x = +4.25, y = 0). It grows as the
agent reaches the puck and as the puck travels towards the goal it should enter.
"""

import gymnasium as gym
import numpy as np

OPPONENT_GOAL = np.array([4.25, 0.0], dtype=np.float32)  # world (9.25, 4) minus centre (5, 4)


def potential(obs: np.ndarray, scale: float) -> float | np.ndarray:
    """Φ(s) for player 1's observation (player at [0:2], puck at [12:14]): (..., O) → (...)."""
    player, puck = obs[..., 0:2], obs[..., 12:14]
    return -scale * (np.linalg.norm(player - puck, axis=-1)
                     + np.linalg.norm(puck - OPPONENT_GOAL, axis=-1))


class PotentialShaping(gym.Wrapper):
    """Adds γ·Φ(s') − Φ(s) to every reward, with Φ(s') = 0 when s' is terminal; the unshaped
    reward stays in info["sparse_reward"].

    `scale` 0.1 keeps Φ between about −2.3 and 0 on the 10 × 8 table: under a quarter of a
    goal. `discount` must be the agent's γ (0.997, the official horizon of 333 steps) for the
    discounted sum to telescope exactly.
    """

    def __init__(self, env: gym.Env, scale: float = 0.1, discount: float = 0.997):
        super().__init__(env)
        self.scale, self.discount = scale, discount
        self._last = 0.0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._last = potential(obs, self.scale)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        now = 0.0 if terminated else potential(obs, self.scale)
        shaped = reward + self.discount * now - self._last
        self._last = now
        return obs, shaped, terminated, truncated, dict(info, sparse_reward=reward)
