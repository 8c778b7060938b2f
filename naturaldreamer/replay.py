"""The replay buffer: every step the agent lived, kept in order per environment (chapters 8–9).

Each environment writes one step per call into its own ring buffer, so a sampled window of
`batch_length` consecutive steps is a real piece of experience. A window may run across the
end of an episode into the next; `is_first` marks where the new episode starts and the RSSM
resets its state there.

Optionally the reward the world model learns is smoothed in time (DreamSmooth, Lee et al. 2023):
when an episode ends, each of its rewards is spread over nearby steps of the same episode.
"""

import numpy as np

from naturaldreamer.config import ReplayConfig

FIELDS = ("obs", "action", "reward", "is_first", "is_last", "is_terminal")


def smoothing_weights(length: int, kind: str, alpha: float = 0.33,
                      sigma: float = 3.0) -> np.ndarray:
    """Matrix W (length, length): reward i of an episode moves to step t with weight W[t, i].

    - "ema": backwards in time, W[t, i] ∝ (1 − α) α^(i − t) for t ≤ i — a reward is announced
      by the steps leading up to it;
    - "gaussian": both ways, W[t, i] ∝ exp(−(t − i)² / 2σ²), the paper's default.
    Each column is normalised over the episode's steps, so smoothing never changes an
    episode's total reward (the unnormalised recursion of a hockey team's guide multiplies it
    by 1 / (1 − α)).
    """
    t = np.arange(length)[:, None]
    i = np.arange(length)[None, :]
    if kind == "ema":
        weights = np.where(t <= i, (1.0 - alpha) * alpha ** np.clip(i - t, 0, None), 0.0)
    elif kind == "gaussian":
        weights = np.exp(-0.5 * ((t - i) / sigma) ** 2)
    else:
        raise ValueError(f"unknown smoothing {kind!r}; use 'ema' or 'gaussian'")
    return weights / weights.sum(0, keepdims=True)


def smooth_rewards(rewards: np.ndarray, kind: str, alpha: float = 0.33,
                   sigma: float = 3.0) -> np.ndarray:
    """DreamSmooth one episode's rewards (length,) → (length,), total unchanged."""
    if kind == "none":
        return rewards.copy()
    return smoothing_weights(len(rewards), kind, alpha, sigma) @ rewards


class Replay:
    """Ring buffers of shape (num_envs, capacity // num_envs, ...) for each field.

    Stored at index t of an environment's stream: the observation, the action taken after it,
    the reward received on arriving in it (smoothed if configured; the raw one is kept too),
    and the flags is_first, is_last, is_terminal.
    """

    def __init__(self, obs_dim: int, action_dim: int, num_envs: int, config: ReplayConfig,
                 seed: int = 0):
        self.config = config
        self.num_envs = num_envs
        self.length = max(config.capacity // num_envs, config.batch_length)
        shape = (num_envs, self.length)
        self.data = {
            "obs": np.zeros(shape + (obs_dim,), np.float32),
            "action": np.zeros(shape + (action_dim,), np.float32),
            "reward": np.zeros(shape, np.float32),
            "raw_reward": np.zeros(shape, np.float32),
            "is_first": np.zeros(shape, bool),
            "is_last": np.zeros(shape, bool),
            "is_terminal": np.zeros(shape, bool),
        }
        self.position = 0  # next index to write, the same for every environment
        self.filled = 0  # steps stored per environment, up to self.length
        self.episode_start = np.zeros(num_envs, np.int64)  # steps written when it began
        self.written = 0  # steps written per environment since the beginning
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """Steps stored, summed over environments."""
        return self.filled * self.num_envs

    def add(self, step: dict) -> None:
        """Store one step of every environment: each field has leading axis num_envs."""
        index = self.position
        for key in FIELDS:
            self.data[key][:, index] = step[key]
        self.data["raw_reward"][:, index] = step["reward"]
        for env in np.flatnonzero(step["is_first"]):
            self.episode_start[env] = self.written
        self.written += 1
        self.position = (self.position + 1) % self.length
        self.filled = min(self.filled + 1, self.length)
        if self.config.smoothing != "none":
            for env in np.flatnonzero(step["is_last"]):
                self._smooth_episode(env)

    def _smooth_episode(self, env: int) -> None:
        length = self.written - self.episode_start[env]
        if length > self.filled:
            return  # its beginning was already overwritten
        indices = (self.position - length + np.arange(length)) % self.length
        raw = self.data["raw_reward"][env, indices].astype(np.float64)
        c = self.config
        smoothed = smooth_rewards(raw, c.smoothing, c.smoothing_alpha, c.smoothing_sigma)
        self.data["reward"][env, indices] = smoothed

    def sample(self, batch_size: int | None = None, length: int | None = None) -> dict:
        """Uniformly chosen windows of consecutive steps: fields (batch, length, ...)."""
        batch_size = batch_size or self.config.batch_size
        length = length or self.config.batch_length
        if self.filled < length:
            raise ValueError(f"replay holds {self.filled} steps per environment, "
                             f"fewer than one window of {length}")
        envs = self.rng.integers(0, self.num_envs, batch_size)
        oldest = self.position if self.filled == self.length else 0
        starts = oldest + self.rng.integers(0, self.filled - length + 1, batch_size)
        indices = (starts[:, None] + np.arange(length)[None, :]) % self.length
        return {key: self.data[key][envs[:, None], indices] for key in FIELDS}

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: arrays, pointers and the sampling RNG."""
        return {"data": dict(self.data), "position": self.position, "filled": self.filled,
                "written": self.written, "episode_start": self.episode_start.copy(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state["data"].items():
            if value.shape != self.data[key].shape:
                raise ValueError(f"replay field {key} has shape {value.shape}, expected "
                                 f"{self.data[key].shape}: was the config changed?")
            self.data[key][...] = value
        self.position, self.filled = state["position"], state["filled"]
        self.written = state["written"]
        self.episode_start[...] = state["episode_start"]
        self.rng.bit_generator.state = state["rng"]

