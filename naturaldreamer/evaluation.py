"""Judging a hockey agent: win rates with confidence intervals, and recorded games (chapter 10).

Evaluation always uses the plain game (NORMAL mode, no shaping) and counts only the outcome: a
win is a goal scored by the agent, a loss a goal conceded, a draw 250 steps without a goal. An
agent trained with the clock (`make_env("hockey", clock=True)`) is shown the clock here too.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from naturaldreamer.agent import Agent, Policy
from naturaldreamer.train import JUDGED_GAME, build_env, evaluate


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion (better than ±1.96·SE near 0 and 1)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    spread = math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    half = z * spread / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Record:
    """Outcomes of `games` games against one opponent."""

    opponent: str
    wins: int
    draws: int
    losses: int
    mean_length: float

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    def __str__(self) -> str:
        lines = [f"{self.games} games against the {self.opponent} opponent "
                 f"(mean length {self.mean_length:.1f} steps)"]
        for name, count in (("wins", self.wins), ("draws", self.draws),
                            ("losses", self.losses)):
            low, high = wilson_interval(count, self.games)
            lines.append(f"  {name:<7}{count:>5}  {100 * count / self.games:5.1f} %"
                         f"   95 % CI [{100 * low:5.1f}, {100 * high:5.1f}] %")
        return "\n".join(lines)


def hockey_record(agent: Agent, opponent: str, games: int, explore: bool = False,
                  seed: int = 10_000) -> Record:
    """Play `games` NORMAL-mode games against "weak" or "strong"; episode i uses seed + i."""
    if agent.config.env.name != "hockey":
        raise ValueError(f"this agent was trained on {agent.config.env.name!r}, not on hockey")
    results = evaluate(agent, agent.config.env, games, explore, seed=seed, opponent=opponent,
                       **JUDGED_GAME)
    winners = np.array([r["winner"] for r in results])
    return Record(opponent, int((winners == 1).sum()), int((winners == 0).sum()),
                  int((winners == -1).sum()), float(np.mean([r["length"] for r in results])))


def record_game(policy: Policy, opponent: str = "strong", seed: int = 0,
                every: int = 2) -> tuple[list[np.ndarray], int]:
    """Play one game and keep every `every`-th frame (480 × 600 RGB); returns frames, winner."""
    env = build_env(policy.agent.config.env, opponent=opponent, render_mode="rgb_array",
                    **JUDGED_GAME)
    obs, _ = env.reset(seed=seed)
    policy.reset()
    frames, step, info = [env.render()], 0, {"winner": 0}
    while True:
        obs, _, terminated, truncated, info = env.step(policy.act(obs))
        step += 1
        if step % every == 0 or terminated or truncated:
            frames.append(env.render())
        if terminated or truncated:
            break
    env.close()
    return frames, int(info["winner"])


def save_gif(frames: list[np.ndarray], path: str | Path, fps: int = 25,
             scale: float = 0.5) -> None:
    """Write frames as an animated GIF, shrunk by `scale` to keep the file small."""
    from PIL import Image

    images = [Image.fromarray(frame) for frame in frames]
    if scale != 1.0:
        size = (int(images[0].width * scale), int(images[0].height * scale))
        images = [image.resize(size) for image in images]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps),
                   loop=0)
