"""Does bfloat16 change what an update learns? The same updates in float32 and bfloat16.

Run: python benchmarks/precision_losses.py [--updates 200] [--config configs/hockey.yaml]
Collects one replay buffer of random-policy play, then trains two copies of the same agent on
the same sequence of batches, one per `train.precision`, eagerly, and prints the main losses
averaged over the first and the last quarter of the updates. Not a pass/fail test.
"""

import argparse
import copy

import numpy as np
import torch

from naturaldreamer.agent import Agent
from naturaldreamer.config import load_config
from naturaldreamer.replay import Replay
from naturaldreamer.train import Collector, build_env

KEYS = ("world/loss", "world/rec", "world/reward", "world/kl_dyn", "behavior/critic_loss",
        "behavior/replay_value_loss", "behavior/entropy_mean")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/hockey.yaml")
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--steps", type=int, default=400, help="batched env steps to collect")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_config(args.config, {"train.compile": False})
    torch.manual_seed(0)
    envs = [build_env(config.env) for _ in range(config.env.num_envs)]
    agent = Agent(envs[0].observation_space.shape[0], envs[0].action_space.shape[0], config)
    replay = Replay(agent.obs_dim, agent.action_dim, len(envs), config.replay, seed=0)
    collector, carry = Collector(envs, seed=0), agent.initial_carry(len(envs))
    for _ in range(args.steps):
        carry = collector.step(agent, carry, replay)
    batches = [replay.sample() for _ in range(args.updates)]
    history = {}
    for precision in ("float32", "bfloat16"):
        learner = copy.deepcopy(agent)
        learner.config.train.precision = precision
        torch.manual_seed(1)
        rows = [learner.train_step(batch) for batch in batches]
        history[precision] = {key: np.array([float(row[key]) for row in rows]) for key in KEYS}
    quarter = max(1, args.updates // 4)
    print(f"{args.updates} updates of {args.config} on the same batches, random-policy replay")
    print(f"{'metric':<30}{'float32 first':>14}{'last':>9}{'bfloat16 first':>16}{'last':>9}")
    for key in KEYS:
        a, b = history["float32"][key], history["bfloat16"][key]
        print(f"{key:<30}{a[:quarter].mean():>14.3f}{a[-quarter:].mean():>9.3f}"
              f"{b[:quarter].mean():>16.3f}{b[-quarter:].mean():>9.3f}")


if __name__ == "__main__":
    main()
