"""Steps per second of the hockey game: `python benchmarks/env_speed.py`.

Times the two-player `HockeyEnv` under uniform random actions, and the single-agent env of
`make_env("hockey", opponent=...)`, which adds the scripted opponent's move and the swap of
numpy's global RNG around it. Each figure is the median of several timed runs; resets are
included, as in training. Not a test: the numbers depend on the machine.
"""

import argparse
import statistics
import time

import numpy as np

from naturaldreamer.envs import make_env
from naturaldreamer.envs.hockey import HockeyEnv


def steps_per_second(env, sample_action, steps: int) -> float:
    """Run `steps` steps (resetting at episode ends) and return their rate."""
    env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(sample_action())
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="steps per timed run")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per env (median taken)")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    cases = [
        ("HockeyEnv, random actions (both players)", HockeyEnv(),
         lambda: rng.uniform(-1, 1, 8)),
        ('make_env("hockey", opponent="weak")', make_env("hockey", opponent="weak"),
         lambda: rng.uniform(-1, 1, 4)),
        ('make_env("hockey", opponent="strong")', make_env("hockey", opponent="strong"),
         lambda: rng.uniform(-1, 1, 4)),
    ]
    print(f"{'env':<44} {'steps/s':>9} {'us/step':>8}   (median of {args.runs} x {args.steps})")
    for name, env, sample_action in cases:
        steps_per_second(env, sample_action, 200)  # warm up
        rate = statistics.median(
            steps_per_second(env, sample_action, args.steps) for _ in range(args.runs))
        print(f"{name:<44} {rate:>9.0f} {1e6 / rate:>8.1f}")


if __name__ == "__main__":
    main()
