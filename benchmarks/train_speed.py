"""Gradient updates per second of a config, eager and compiled side by side, and env steps/s.

Run: python benchmarks/train_speed.py [--config configs/hockey.yaml] [--device auto]
         [--set train.threads=1 --set train.precision=bfloat16 ...] [--no-compile]
Prints medians of several timed repetitions in one run: eager and compiled (`train.compile`)
updates per second, their ratio, the compile time of the first compiled update (cold the first
time a config is compiled on a machine, warm when the compiler's disk cache has it), threads,
precision and device. Not a pass/fail test.
"""

import argparse
import platform
import statistics
import time

import torch
import yaml

from naturaldreamer.agent import Agent
from naturaldreamer.compiled import compile_agent
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


def time_updates(agent: Agent, replay: Replay, repeats: int, updates: int = 1,
                 warmup: int = 0) -> float:
    """Median seconds per update over `repeats` timed blocks of `updates` updates, after
    `warmup` untimed ones (optimiser state, allocator). Batches take the agent's own batch size
    and length, which may differ from those of the config that `replay` was built with."""
    sizes = (agent.config.replay.batch_size, agent.config.replay.batch_length)
    for _ in range(warmup):
        agent.train_step(replay.sample(*sizes))
    times = []
    for _ in range(repeats):
        batches = [replay.sample(*sizes) for _ in range(updates)]
        synchronize(agent.device)
        start = time.perf_counter()
        for batch in batches:
            agent.train_step(batch)
        synchronize(agent.device)
        times.append((time.perf_counter() - start) / updates)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/hockey.yaml")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--updates", type=int, default=10, help="updates per repetition")
    parser.add_argument("--steps", type=int, default=50, help="batched env steps per repetition")
    parser.add_argument("--no-compile", action="store_true", help="time the eager step only")
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
    torch.manual_seed(0)
    envs = [build_env(config.env) for _ in range(config.env.num_envs)]
    agent = Agent(envs[0].observation_space.shape[0], envs[0].action_space.shape[0],
                  config).to(device)
    replay = Replay(agent.obs_dim, agent.action_dim, len(envs), config.replay)
    collector = Collector(envs, seed=0)
    carry = agent.initial_carry(len(envs))
    collect_times = []
    for _ in range(args.repeats + 1):  # the first repetition warms up and is discarded
        start = time.perf_counter()
        for _ in range(args.steps):
            carry = collector.step(agent, carry, replay)
        collect_times.append(time.perf_counter() - start)
    env_rate = args.steps * len(envs) / statistics.median(collect_times[1:])

    eager = time_updates(agent, replay, args.repeats, args.updates, warmup=1)
    rows = [("eager", eager)]
    compile_seconds = None
    if not args.no_compile:
        compile_agent(agent)
        start = time.perf_counter()
        agent.train_step(replay.sample())
        synchronize(device)
        compile_seconds = time.perf_counter() - start
        if agent.losses.failed:
            print("compiling failed; the compiled column is eager")
        rows.append(("compiled", time_updates(agent, replay, args.repeats, args.updates)))

    print(f"device: {device_name(device)}; precision: {config.train.precision}; "
          f"config: {args.config} {' '.join(args.set)}")
    print(f"{'step':<12}{'ms/update':>12}{'updates/s':>12}{'vs eager':>10}")
    for name, seconds in rows:
        print(f"{name:<12}{1000 * seconds:>12.1f}{1 / seconds:>12.2f}{eager / seconds:>9.2f}x")
    if compile_seconds is not None:
        print(f"first compiled update (compile time): {compile_seconds:.0f} s")
    per_step = config.updates_per_step
    fastest = min(seconds for _, seconds in rows)
    print(f"env steps per second, collection only: {env_rate:.0f}; updates per env step: "
          f"{per_step:.4f}; env steps per second while training (fastest step): "
          f"{1.0 / (1.0 / env_rate + per_step * fastest):.0f}")
    for env in envs:
        env.close()


if __name__ == "__main__":
    main()
