"""Gradient updates per second and environment steps per second of the hockey config.

Run: python benchmarks/train_speed.py [--config configs/hockey.yaml] [--device auto]
                                      [--set replay.batch_size=64 ...]
Prints the median of several timed repetitions, with the device name. Not a pass/fail test.
"""

import argparse
import platform
import statistics
import time

import torch
import yaml

from naturaldreamer.agent import Agent
from naturaldreamer.config import load_config
from naturaldreamer.replay import Replay
from naturaldreamer.train import Collector, build_env, select_device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/hockey.yaml")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--updates", type=int, default=5, help="updates per repetition")
    parser.add_argument("--steps", type=int, default=50, help="batched env steps per repetition")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (YAML syntax), e.g. replay.batch_size=64")
    args = parser.parse_args()

    overrides = {"train.device": args.device}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    config = load_config(args.config, overrides)
    device = select_device(config.train.device)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    envs = [build_env(config.env) for _ in range(config.env.num_envs)]
    agent = Agent(envs[0].observation_space.shape[0], envs[0].action_space.shape[0],
                  config).to(device)
    replay = Replay(agent.obs_dim, agent.action_dim, len(envs), config.replay)
    collector = Collector(envs, seed=0)
    carry = agent.initial_carry(len(envs))
    while replay.filled < config.replay.batch_length:
        carry = collector.step(agent, carry, replay)

    collect_times, update_times = [], []
    for _ in range(args.repeats + 1):  # the first repetition warms up and is discarded
        start = time.perf_counter()
        for _ in range(args.steps):
            carry = collector.step(agent, carry, replay)
        collect_times.append(time.perf_counter() - start)
        synchronize(device)
        start = time.perf_counter()
        for _ in range(args.updates):
            agent.train_step(replay.sample())
        synchronize(device)
        update_times.append(time.perf_counter() - start)
    collect = statistics.median(collect_times[1:])
    update = statistics.median(update_times[1:])
    env_rate = args.steps * len(envs) / collect
    update_rate = args.updates / update
    per_step = config.updates_per_step
    overall = 1.0 / (1.0 / env_rate + per_step / update_rate)
    print(f"device: {device_name(device)}; config: {args.config} {' '.join(args.set)}")
    print(f"{'measure':<44}{'median':>12}")
    print(f"{'gradient updates per second':<44}{update_rate:>12.2f}")
    print(f"{'env steps per second (collection only)':<44}{env_rate:>12.0f}")
    print(f"{'updates per env step (train ratio)':<44}{per_step:>12.4f}")
    print(f"{'env steps per second (training)':<44}{overall:>12.0f}")
    for env in envs:
        env.close()


if __name__ == "__main__":
    main()
