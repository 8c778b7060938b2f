"""The training loop (chapter 9): collect, update, log, evaluate, save — top to bottom.

Several environments step together; the agent picks all their actions with one batched call.
After every environment step the loop performs as many gradient updates as the train ratio
asks for: updates per env step = train_ratio / (batch_size · batch_length), the official
DreamerV3 definition (replayed steps per env step).

A run can be stopped at any moment and resumed exactly: the checkpoint holds everything the
next step depends on (`Run`), so a resumed run computes the same numbers, bit for bit, as one
that never stopped. Every file is written atomically (`files.atomic_write`), and Ctrl-C or
SIGTERM stops at the next update with a checkpoint.
"""

import contextlib
import csv
import io
import math
import os
import pickle
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from naturaldreamer.agent import (POLICY_FORMAT, Agent, Carry, Policy, load_agent, save_policy,
                                  select_device)
from naturaldreamer.compiled import compile_agent
from naturaldreamer.config import Config, EnvConfig, from_dict, save_config, to_dict
from naturaldreamer.envs import make_env
from naturaldreamer.envs.hockey import BasicOpponent
from naturaldreamer.files import atomic_write, atomic_write_text
from naturaldreamer.replay import Replay
from naturaldreamer.rssm import State

RUN_ONLY_KEYS = ("steps", "device", "threads", "compile")
RUN_FILES = ("config.yaml", "metrics.csv", "metrics.png", "checkpoint.pt", "policy.pt")
CHECKPOINT_FORMAT = "naturaldreamer-checkpoint-2"
PLOTTED = ("episode/return", "eval/return", "eval/win_rate_weak", "eval/win_rate_strong",
           "world/loss", "world/reward", "world/kl_dyn", "behavior/entropy_mean",
           "behavior/return_scale", "behavior/entropy_pull_to_advantage", "behavior/actor_std",
           "behavior/advantage_abs_mean")
JUDGED_GAME = {"mode": "normal", "shaping": 0.0, "potential": 0.0}
"""Env options of a judged hockey game (evaluation, probe, recorded game): the plain game with the
sparse reward. The other training options, those that change what the agent sees (the clock),
stay as the agent was trained."""
LOSSES = ("world/loss", "behavior/actor_loss", "behavior/critic_loss")


class TrainingInterrupted(Exception):
    """SIGINT (Ctrl-C) or SIGTERM stopped training after a checkpoint was saved.

    `signal` is the signal's number; a command line exits with 128 + it (130, 143).
    """

    def __init__(self, signum: int, out: Path, env_steps: int):
        self.signal = signum
        super().__init__(f"stopped by {signal.Signals(signum).name} at {env_steps:,} env steps "
                         f"with a checkpoint; continue with `python -m naturaldreamer train "
                         f"--resume {out}`")


class TrainingDiverged(ValueError):
    """A loss became NaN or infinite; the checkpoint keeps the last state before it."""


def build_env(env_config: EnvConfig, **extra) -> gym.Env:
    """The environment with actions rescaled to [−1, 1] (the actor's range) where needed.

    Raises ValueError, saying what to change, for an environment this agent cannot learn:
    options its constructor does not take, a missing dependency, discrete actions, or
    observations that are not one vector of numbers.
    """
    name = env_config.name
    try:
        env = make_env(name, **{**env_config.options, **extra})
    except TypeError as error:  # an option the environment's constructor does not take
        raise ValueError(f"env.options: {name} does not take these options ({error}); "
                         f"remove or rename the option") from error
    except gym.error.DependencyNotInstalled as error:
        raise ValueError(f"env.name: {name} needs a package that is not installed: {error}; "
                         f"install it, or choose another environment") from error
    except gym.error.Error as error:
        raise ValueError(f"env.name: cannot make {name}: {error}") from error
    problem = _space_problem(env)
    if problem:
        env.close()
        raise ValueError(f"env.name: {name} {problem}; this agent needs a vector of numbers in "
                         f"and a vector of continuous actions out (a 1-D Box for both), as in "
                         f"Pendulum-v1, MountainCarContinuous-v0 or hockey")
    space = env.action_space
    if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        env = gym.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    return env


def _space_problem(env: gym.Env) -> str:
    """What makes the env's spaces unusable for this agent, or '' if nothing."""
    actions, observations = env.action_space, env.observation_space
    if not isinstance(actions, gym.spaces.Box) or len(actions.shape) != 1:
        return f"has actions {actions}"
    if not (np.all(np.isfinite(actions.low)) and np.all(np.isfinite(actions.high))):
        return f"has unbounded actions {actions}"
    if not isinstance(observations, gym.spaces.Box) or len(observations.shape) != 1:
        return f"has observations {observations}"
    return ""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class EnvSlot:
    """One environment of the batch and the step it is about to hand the agent.

    `start` and `actions` record how the episode in progress came about — the env's random
    generator before its reset (or the reset's seed) and every action since — so that a
    resumed run can replay it into a fresh environment (`Collector.load_state_dict`).
    """

    env: gym.Env
    obs: np.ndarray
    reward: float = 0.0
    is_first: bool = True
    is_last: bool = False
    is_terminal: bool = False
    episode_return: float = 0.0
    episode_length: int = 0
    winner: int = 0
    start: dict = field(default_factory=dict)
    actions: list = field(default_factory=list)


def _start_episode(env: gym.Env, seed: int | None = None) -> tuple[np.ndarray, dict]:
    """Reset `env`; returns the first observation and how to repeat this reset exactly."""
    start = {"seed": seed} if seed is not None else \
        {"rng": env.unwrapped.np_random.bit_generator.state}
    obs, _ = env.reset(seed=seed)
    return np.asarray(obs, np.float32), start


class Collector:
    """Steps a batch of environments with the agent and writes every step into replay.

    A finished episode's last observation is stored too (with is_last, and is_terminal only if
    the game really ended); the environment resets on the following step.
    """

    def __init__(self, envs: list[gym.Env], seed: int):
        self.slots = []
        for index, env in enumerate(envs):
            obs, start = _start_episode(env, seed + index)
            self.slots.append(EnvSlot(env, obs, start=start))
        self.finished: list[dict] = []

    def step(self, agent: Agent, carry, replay: Replay | None, explore: bool = True):
        """One step of every environment; returns the new carry."""
        obs = np.stack([s.obs for s in self.slots])
        is_first = np.array([s.is_first for s in self.slots])
        actions, carry = agent.act(obs, is_first, carry, explore)
        if replay is not None:
            replay.add({"obs": obs, "action": actions,
                        "reward": np.array([s.reward for s in self.slots], np.float32),
                        "is_first": is_first, "is_last": np.array([s.is_last for s in self.slots]),
                        "is_terminal": np.array([s.is_terminal for s in self.slots])})
        for index, (slot, action) in enumerate(zip(self.slots, actions)):
            if slot.is_last:
                slot.obs, slot.start = _start_episode(slot.env)
                slot.reward, slot.is_first, slot.actions = 0.0, True, []
                slot.is_last = slot.is_terminal = False
                slot.episode_return, slot.episode_length = 0.0, 0
                continue
            obs, reward, terminated, truncated, info = slot.env.step(action)
            slot.actions.append(action.copy())
            slot.obs, slot.reward = np.asarray(obs, np.float32), float(reward)
            slot.is_first = False
            slot.is_last, slot.is_terminal = terminated or truncated, terminated
            slot.episode_return += float(reward)
            slot.episode_length += 1
            if slot.is_last:
                self.finished.append({"env": index, "return": slot.episode_return,
                                      "length": slot.episode_length,
                                      "winner": int(info.get("winner", 0))})
        return carry

    def state_dict(self) -> dict:
        """Each slot's step in progress and the record of its episode (tensors and numbers)."""
        slots = []
        for slot in self.slots:
            action_dim = slot.env.action_space.shape[0]
            actions = np.array(slot.actions, np.float32).reshape(-1, action_dim)
            slots.append({"obs": torch.from_numpy(slot.obs.copy()), "reward": slot.reward,
                          "is_first": slot.is_first, "is_last": slot.is_last,
                          "is_terminal": slot.is_terminal, "return": slot.episode_return,
                          "length": slot.episode_length, "start": slot.start,
                          "actions": torch.from_numpy(actions)})
        return {"slots": slots}

    def load_state_dict(self, state: dict) -> None:
        """Bring every environment back into its episode in progress by replaying the episode
        from its recorded start; the environments must be deterministic given their random
        generator and the actions, which is checked against the saved observation."""
        if len(state["slots"]) != len(self.slots):
            raise ValueError(f"the checkpoint has {len(state['slots'])} environments, the "
                             f"config {len(self.slots)}")
        for index, (slot, saved) in enumerate(zip(self.slots, state["slots"])):
            if "seed" in saved["start"]:
                obs, _ = slot.env.reset(seed=saved["start"]["seed"])
            else:
                slot.env.unwrapped.np_random.bit_generator.state = saved["start"]["rng"]
                obs, _ = slot.env.reset()
            actions = [action for action in saved["actions"].numpy()]
            for action in actions:
                obs = slot.env.step(action)[0]
            if not np.array_equal(np.asarray(obs, np.float32), saved["obs"].numpy()):
                raise ValueError(f"cannot resume exactly: replaying environment {index}'s "
                                 f"episode did not reproduce its last observation (the "
                                 f"environment is not deterministic given its seed and "
                                 f"actions); start a new run")
            slot.obs, slot.reward = saved["obs"].numpy().copy(), saved["reward"]
            slot.is_first, slot.is_last = saved["is_first"], saved["is_last"]
            slot.is_terminal = saved["is_terminal"]
            slot.episode_return, slot.episode_length = saved["return"], saved["length"]
            slot.start, slot.actions = saved["start"], actions


def evaluate(agent: Agent, env_config: EnvConfig, episodes: int, explore: bool,
             seed: int = 10_000, parallel: int = 16, **env_options) -> list[dict]:
    """Play `episodes` episodes without storing them; returns each one's return, length and
    winner. Up to `parallel` environments run at once, with one batched policy call per step;
    environment i plays its share of the episodes, seeded from `seed + i`.
    """
    count = min(episodes, parallel)
    quota = [episodes // count + (i < episodes % count) for i in range(count)]
    collector = Collector([build_env(env_config, **env_options) for _ in range(count)], seed)
    done: list[list[dict]] = [[] for _ in range(count)]
    carry = agent.initial_carry(count)
    while any(len(d) < q for d, q in zip(done, quota)):
        carry = collector.step(agent, carry, None, explore)
        for result in collector.finished:
            if len(done[result["env"]]) < quota[result["env"]]:
                done[result["env"]].append(result)
        collector.finished.clear()
    for slot in collector.slots:
        slot.env.close()
    return [result for results in done for result in results]


class OpponentPool:
    """A hockey opponent drawn anew at every episode start: the weak or strong scripted player,
    or one of the agent's own past snapshots (self-play), with the configured weights.

    A scripted player is built anew for each episode, so an episode depends only on its seed
    (the game calls `reset` with the episode's private random stream).
    """

    def __init__(self, weights: dict, rng: np.random.Generator):
        self.weights = dict(weights)
        self.snapshots: list[Policy] = []
        self.rng = rng
        self.pick: str | Policy = "weak"  # the current opponent: a name or a snapshot
        self.current = None
        self.forced: str | Policy | None = None  # the next pick, when replaying an episode

    def reset(self) -> None:
        if self.forced is not None:
            self.pick, self.forced = self.forced, None
        else:
            names = [n for n in self.weights if n != "self" or self.snapshots]
            probs = np.array([self.weights[n] for n in names], np.float64)
            name = names[self.rng.choice(len(names), p=probs / probs.sum())]
            self.pick = name if name != "self" else \
                self.snapshots[self.rng.integers(len(self.snapshots))]
        if isinstance(self.pick, str):
            self.current = BasicOpponent(weak=self.pick == "weak")
        else:
            self.current = self.pick
            self.current.reset()

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.current.act(obs)


@dataclass
class Run:
    """Everything the next step of training depends on; a checkpoint stores all of it
    (together with the global random generators).

    `counters` counts env steps, updates, episodes and seconds; `marks` holds the env step of
    the last log, evaluation, checkpoint and self-play snapshot; `pending` the metrics gathered
    since the last log (floats or 0-d tensors); `rows` the logged rows of metrics.csv.
    """

    config: Config
    agent: Agent
    replay: Replay
    collector: Collector
    pools: list[OpponentPool]
    carry: Carry
    counters: dict = field(default_factory=lambda: {"env_steps": 0, "updates": 0,
                                                    "episodes": 0, "seconds": 0.0})
    marks: dict = field(default_factory=lambda: dict.fromkeys(
        ("log", "eval", "checkpoint", "snapshot"), 0))
    pending: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)


def build_run(config: Config, device: torch.device, warm: bool = True) -> Run:
    """A fresh run: environments (validated), agent, replay buffer, collector; with `warm`,
    the agent starts from the networks of `train.init` (a resumed run takes its own from the
    checkpoint, so it does not need that file any more)."""
    c = config.train
    envs, pools = training_envs(config, np.random.default_rng(c.seed))
    obs_dim = envs[0].observation_space.shape[0]
    action_dim = envs[0].action_space.shape[0]
    agent = Agent(obs_dim, action_dim, config).to(device)
    if c.init and warm:
        warm_start(agent, c.init)
    if c.compile:
        compile_agent(agent)
    replay = _allocate_replay(obs_dim, action_dim, config)
    collector = Collector(envs, c.seed)
    return Run(config, agent, replay, collector, pools, agent.initial_carry(len(envs)))


def warm_start(agent: Agent, path: str | Path) -> None:
    """Load the networks (and return normaliser) of the agent in `path` into `agent`, whose
    optimisers stay fresh: `train.init`, e.g. to fine-tune the shipped agents/hockey.pt. An
    agent trained on fewer observations is widened first (`widen_observations`)."""
    source = load_agent(path)
    if source.action_dim != agent.action_dim or source.obs_dim > agent.obs_dim:
        raise ValueError(f"train.init: {path} has {source.obs_dim} observations and "
                         f"{source.action_dim} actions, this environment {agent.obs_dim} and "
                         f"{agent.action_dim}; warm-start from an agent of the same task")
    try:
        agent.load_state_dict(widen_observations(source.state_dict(), agent.state_dict()))
    except RuntimeError as error:
        raise ValueError(f"train.init: the networks in {path} have other sizes than this "
                         f"config's ({str(error).splitlines()[-1].strip()[:160]}); use the "
                         f"world_model and behavior sizes it was trained with") from error
    tqdm.write(f"starting from the networks of {path} (fresh optimisers and replay)")


def widen_observations(source: dict, target: dict) -> dict:
    """A state dict for `target`'s task from one trained with fewer observations, appended at the
    end (the hockey env's `clock`): the encoder's first layer reads the new inputs with weight 0,
    so the warm-started agent computes exactly what the source did, and the decoder's new
    outputs keep `target`'s fresh initialisation. Other state dicts come back unchanged."""
    source = dict(source)
    encoder, decoder = "world_model.encoder.net.0.weight", "world_model.decoder.net.1"
    if encoder not in source or source[encoder].shape[1] >= target[encoder].shape[1]:
        return source
    old = source[encoder].shape[1]
    source[encoder] = torch.cat([source[encoder], torch.zeros_like(target[encoder][:, old:])], 1)
    for key in (f"{decoder}.weight", f"{decoder}.bias"):
        source[key] = torch.cat([source[key], target[key][old:]], 0)
    return source


def _allocate_replay(obs_dim: int, action_dim: int, config: Config) -> Replay:
    """The replay buffer, or a ValueError naming replay.capacity if it cannot fit in memory."""
    r = config.replay
    steps = max(r.capacity // config.env.num_envs, r.batch_length) * config.env.num_envs
    need = steps * (4 * (obs_dim + action_dim + 2) + 3)
    memory = _physical_memory()
    size = (f"replay.capacity: {r.capacity:,} steps of {obs_dim} observations and "
            f"{action_dim} actions need {need / 2**30:,.1f} GiB")
    if memory and need > memory:
        raise ValueError(f"{size}, more than this machine's {memory / 2**30:.1f} GiB; lower "
                         f"replay.capacity")
    try:
        return Replay(obs_dim, action_dim, config.env.num_envs, r, config.train.seed)
    except MemoryError as error:
        raise ValueError(f"{size}, and that much memory is not free; lower "
                         f"replay.capacity") from error


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def train(config: Config, out: str | Path, resume: bool = False,
          progress: bool = True) -> Agent:
    """Train an agent as `config` says, writing into `out`:
    config.yaml, metrics.csv, metrics.png, checkpoint.pt (to resume) and policy.pt.

    A fresh run (`resume=False`) replaces those files if `out` has them; `resume=True`
    continues from `out/checkpoint.pt` exactly where it stopped, and metrics.csv keeps only
    the rows the checkpoint covers (later ones are recomputed, identically). SIGINT and
    SIGTERM finish the current update, save a checkpoint and raise `TrainingInterrupted`.
    """
    out = Path(out)
    c = config.train
    device = select_device(c.device)
    if c.threads:
        torch.set_num_threads(c.threads)
    seed_everything(c.seed)
    # Before touching `out`: a bad env leaves no files.
    run = build_run(config, device, warm=not resume)
    _prepare_directory(out, resume)
    if resume:
        load_checkpoint(out / "checkpoint.pt", run)
        if run.counters["env_steps"] >= c.steps:
            raise ValueError(f"the run in {out} already has {run.counters['env_steps']:,} env "
                             f"steps (train.steps {c.steps:,}); to continue it, ask for more "
                             f"with --steps")
    save_config(config, out / "config.yaml")
    if run.rows:  # on resume, rows logged after the checkpoint go: they are recomputed
        write_metrics(run.rows, out / "metrics.csv")
    else:
        (out / "metrics.csv").unlink(missing_ok=True)

    started = time.time() - run.counters["seconds"]
    bar = tqdm(total=c.steps, initial=run.counters["env_steps"], unit="step",
               disable=not progress, dynamic_ncols=True)
    try:
        with _stop_requests() as stop:
            while True:
                _update(run, stop)
                if stop:
                    break
                _log_evaluate_save(run, out, started, bar)
                if run.counters["env_steps"] >= c.steps or stop:
                    break
                _collect(run, bar)
            if stop and run.counters["env_steps"] < c.steps:
                run.counters["seconds"] = time.time() - started
                _save_all(run, out)
                raise TrainingInterrupted(stop[0], out, run.counters["env_steps"])
    finally:
        bar.close()
        for slot in run.collector.slots:
            slot.env.close()
    return run.agent


def _prepare_directory(out: Path, resume: bool) -> None:
    """Make sure `out` is a writable directory; a fresh run removes an old run's files."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        marker = out / ".write-test"
        marker.write_bytes(b"")
        marker.unlink()
    except FileExistsError as error:
        raise ValueError(f"{out} is a file, not a directory; choose a directory for the run "
                         f"(--out)") from error
    except OSError as error:
        raise ValueError(f"cannot write to the run directory {out} ({error.strerror}); "
                         f"choose a directory you can write to (--out)") from error
    if not resume:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)


def _update(run: Run, stop: list) -> None:
    """The gradient updates the train ratio owes for the env steps so far; stops early (at an
    update boundary, which a checkpoint can resume exactly) when a stop is requested."""
    config, counters = run.config, run.counters
    owed = (counters["env_steps"] - config.train.train_start) * config.updates_per_step
    while counters["updates"] < owed and run.replay.filled >= config.replay.batch_length:
        if stop:
            return
        _append(run.pending, run.agent.train_step(run.replay.sample()))
        counters["updates"] += 1


def _due(run: Run, key: str, every: int) -> bool:
    """Whether the scheduled job `key` runs at this env step: `every` steps after its last
    run, and once more at the end of training."""
    steps, last = run.counters["env_steps"], run.marks[key]
    return steps - last >= every or (steps >= run.config.train.steps and last != steps)


def _log_evaluate_save(run: Run, out: Path, started: float, bar) -> None:
    """Self-play snapshot, evaluation, log row and checkpoint, each when it is due."""
    c, steps = run.config.train, run.counters["env_steps"]
    if run.pools and steps - run.marks["snapshot"] >= run.config.env.self_play_every:
        run.marks["snapshot"] = steps
        _add_snapshot(run.pools, run.agent)
    if _due(run, "eval", c.eval_every):
        run.marks["eval"] = steps
        _append(run.pending, evaluation_metrics(run.agent, run.config))
    if _due(run, "log", c.log_every):
        run.marks["log"] = steps
        run.counters["seconds"] = time.time() - started
        run.rows.append(_summarize(run.pending, run.counters))
        run.pending = {}
        write_metrics(run.rows, out / "metrics.csv")
        bar.set_postfix({k.split("/")[-1]: f"{run.rows[-1][k]:.3g}" for k in
                         ("episode/return", "eval/return") if k in run.rows[-1]})
        _check_finite(run.rows[-1], out, run.marks["checkpoint"])
    if _due(run, "checkpoint", c.checkpoint_every):
        run.marks["checkpoint"] = steps
        _save_all(run, out)


def _collect(run: Run, bar) -> None:
    """One step of every environment, with the finished episodes' metrics."""
    run.carry = run.collector.step(run.agent, run.carry, run.replay)
    run.counters["env_steps"] += len(run.collector.slots)
    bar.update(len(run.collector.slots))
    for episode in run.collector.finished:
        run.counters["episodes"] += 1
        _append(run.pending, {"episode/return": episode["return"],
                              "episode/length": episode["length"],
                              "episode/win": float(episode["winner"] == 1)})
    run.collector.finished.clear()


def _save_all(run: Run, out: Path) -> None:
    """Plot, policy and, last, the checkpoint: each file complete or not replaced."""
    plot_metrics(run.rows, out / "metrics.png")
    save_policy(run.agent, out / "policy.pt")
    save_checkpoint(out / "checkpoint.pt", run)


def _check_finite(row: dict, out: Path, checkpoint_steps: int) -> None:
    bad = [key for key in LOSSES if key in row and not math.isfinite(row[key])]
    if bad:
        raise TrainingDiverged(
            f"training diverged: {', '.join(bad)} became {row[bad[0]]} by "
            f"{row['env_steps']:,} env steps (see {out / 'metrics.csv'}); the checkpoint of "
            f"{checkpoint_steps:,} steps is from before, but resuming it repeats the same "
            f"numbers: start again with smaller learning rates (world_model.lr, behavior.lr)")


@contextlib.contextmanager
def _stop_requests():
    """While active, SIGINT and SIGTERM do not kill the process but ask the loop to stop at
    the next update; yields the list of signals received. A second one interrupts at once
    (KeyboardInterrupt). Only the main thread can handle signals; elsewhere nothing changes.
    """
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested
        return

    def handle(signum, frame):
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)
        print(f"\n{signal.Signals(signum).name}: stopping after the current update and saving "
              f"a checkpoint (send it again to quit without saving)", file=sys.stderr)

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requested
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def training_envs(config: Config, rng: np.random.Generator) -> tuple[list[gym.Env], list]:
    """The `env.num_envs` training environments and, for hockey with `env.opponents`, the
    opponent pool of each. Potential-based shaping gets the agent's γ (`behavior.discount`):
    only with the same γ does its discounted sum telescope (chapter 10)."""
    env = config.env
    pools = [OpponentPool(env.opponents, rng) for _ in range(env.num_envs)] \
        if env.opponents else []
    modes = assign_modes(env.modes, env.num_envs)
    shaping = {"discount": config.behavior.discount} if env.options.get("potential") else {}
    envs = []
    for i in range(env.num_envs):
        envs.append(build_env(env, **shaping, **({"opponent": pools[i]} if pools else {}),
                              **({"mode": modes[i]} if modes else {})))
    return envs, pools


def assign_modes(weights: dict, count: int) -> list[str]:
    """Split `count` envs between game modes in proportion to `weights` (largest remainders)."""
    if not weights:
        return []
    total = sum(weights.values())
    shares = {mode: count * weight / total for mode, weight in weights.items()}
    counts = {mode: int(share) for mode, share in shares.items()}
    by_remainder = sorted(shares, key=lambda mode: shares[mode] - counts[mode], reverse=True)
    for mode in by_remainder[:count - sum(counts.values())]:
        counts[mode] += 1
    return [mode for mode, n in counts.items() for _ in range(n)]


def evaluation_metrics(agent: Agent, config: Config) -> dict:
    """Evaluation episodes → metrics; for hockey, plain games against both scripted opponents
    (sampled or not, `train.eval_mode`), and with `train.eval_games` the deterministic ones
    that `evaluate` plays, then the probe."""
    explore = config.train.eval_mode == "sample"
    episodes = config.train.eval_episodes
    if config.env.name != "hockey":
        results = evaluate(agent, config.env, episodes, explore)
        return {"eval/return": float(np.mean([r["return"] for r in results]))}
    metrics = {}
    for opponent in ("weak", "strong"):
        results = evaluate(agent, config.env, episodes, explore, opponent=opponent,
                           **JUDGED_GAME)
        winners = np.array([r["winner"] for r in results])
        metrics[f"eval/win_rate_{opponent}"] = float(np.mean(winners == 1))
        metrics[f"eval/loss_rate_{opponent}"] = float(np.mean(winners == -1))
        metrics[f"eval/return_{opponent}"] = float(np.mean([r["return"] for r in results]))
    metrics["eval/return"] = (metrics["eval/return_weak"] + metrics["eval/return_strong"]) / 2
    if config.train.eval_games:
        from naturaldreamer.evaluation import hockey_record  # it imports this module

        for opponent in ("weak", "strong"):
            record = hockey_record(agent, opponent, config.train.eval_games)
            metrics[f"eval/deterministic_win_rate_{opponent}"] = record.wins / record.games
            metrics[f"eval/deterministic_loss_rate_{opponent}"] = record.losses / record.games
    if config.train.probe_games:
        from naturaldreamer.probe import probe, probe_metrics  # it imports this module

        metrics.update(probe_metrics(probe(agent, config, config.train.probe_games)))
    return metrics


def _add_snapshot(pools: list[OpponentPool], agent: Agent, keep: int = 8) -> None:
    """Freeze a CPU copy of the current agent as a self-play opponent (the newest `keep`).
    Each pool gets its own `Policy` of it: a policy's recurrent state belongs to one game."""
    frozen = Agent(agent.obs_dim, agent.action_dim, agent.config)
    frozen.load_state_dict(agent.state_dict())
    for pool in pools:
        pool.snapshots = (pool.snapshots + [Policy(frozen)])[-keep:]


def _append(pending: dict, metrics: dict) -> None:
    """Add one value per metric; tensors stay tensors until the log (no device sync here)."""
    for key, value in metrics.items():
        value = value.detach() if isinstance(value, torch.Tensor) else float(value)
        pending.setdefault(key, []).append(value)


def _floats(values: list) -> list[float]:
    """Metric values (floats or 0-d tensors) as Python floats, exactly; one sync for tensors."""
    if values and all(isinstance(v, torch.Tensor) for v in values):
        return torch.stack(values).double().cpu().tolist()
    return [float(v) for v in values]


def _summarize(pending: dict, counters: dict) -> dict:
    row = {"env_steps": counters["env_steps"], "updates": counters["updates"],
           "episodes": counters["episodes"], "seconds": round(counters["seconds"], 1)}
    row.update({key: float(np.mean(_floats(values))) for key, values in pending.items()})
    return row


def write_metrics(rows: list[dict], path: Path) -> None:
    """All rows so far as CSV (atomically); columns are the union of keys (a row lacks eval
    columns when no evaluation ran in its window)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.csv as dicts of floats ([] if there is no file)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as file:
        for line, row in enumerate(csv.DictReader(file), start=2):
            if None in row or None in row.values():
                raise ValueError(f"{path}, line {line}: the row has the wrong number of "
                                 f"columns; the file is damaged")
            try:
                rows.append({k: float(v) for k, v in row.items() if v != ""})
            except ValueError as error:
                raise ValueError(f"{path}, line {line}: {error}; the file is damaged") \
                    from error
    return rows


def metric_series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, values) of one metric over the rows that have it, e.g. from `read_metrics`."""
    points = [(row["env_steps"], row[key]) for row in rows if key in row]
    steps, values = zip(*points) if points else ((), ())
    return np.array(steps, dtype=float), np.array(values, dtype=float)


def plot_metrics(rows: list[dict], path: Path) -> None:
    """A grid of the main curves against environment steps, saved as a PNG (atomically).

    Uses a bare matplotlib Figure, so it works headless and leaves the notebook's pyplot
    backend alone.
    """
    from matplotlib.figure import Figure

    keys = [k for k in PLOTTED if any(k in row for row in rows)]
    if not keys:
        return
    columns = 3
    lines = (len(keys) + columns - 1) // columns
    fig = Figure(figsize=(4 * columns, 2.6 * lines))
    axes = fig.subplots(lines, columns, squeeze=False)
    for ax, key in zip(axes.flat, keys):
        ax.plot(*metric_series(rows, key))
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("env steps")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    # Fixed margins instead of tight_layout, which would draw the figure twice.
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.5 / (2.6 * lines),
                        top=1 - 0.3 / (2.6 * lines), wspace=0.25, hspace=0.7)
    atomic_write(path, lambda file: fig.savefig(file, format="png", dpi=80))


def _to_torch(value):
    """Numpy arrays → tensors, recursively, so checkpoints load with weights_only=True."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.astype(np.int64) if value.dtype == np.uint32 else value)
    if isinstance(value, dict):
        return {k: _to_torch(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_to_torch(v) for v in value)
    return value


def _to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_to_numpy(v) for v in value)
    return value


def _opponents_state(pools: list[OpponentPool]) -> dict:
    """The pools' snapshots and current opponents; each frozen agent is stored once."""
    agents: list[Agent] = []

    def index(policy: Policy) -> int:
        if not any(policy.agent is a for a in agents):
            agents.append(policy.agent)
        return next(i for i, a in enumerate(agents) if a is policy.agent)

    states = [{"snapshots": [index(p) for p in pool.snapshots],
               "pick": pool.pick if isinstance(pool.pick, str) else index(pool.pick)}
              for pool in pools]
    return {"agents": [a.state_dict() for a in agents], "pools": states,
            "rng": pools[0].rng.bit_generator.state if pools else None}


def _load_opponents(state: dict, pools: list[OpponentPool], agent: Agent) -> None:
    """Restore `_opponents_state`; each pool's next reset replays its current pick."""
    agents = []
    for weights in state["agents"]:
        frozen = Agent(agent.obs_dim, agent.action_dim, agent.config)
        frozen.load_state_dict(weights)
        agents.append(frozen)
    for pool, saved in zip(pools, state["pools"]):
        pool.snapshots = [Policy(agents[i]) for i in saved["snapshots"]]
        pick = saved["pick"]
        if not isinstance(pick, str):
            pick = next((p for p in pool.snapshots if p.agent is agents[pick]),
                        None) or Policy(agents[pick])
        pool.forced = pick


def save_checkpoint(path: Path, run: Run) -> None:
    """Everything needed to continue exactly where training stopped (written atomically;
    loads with torch.load(weights_only=True): tensors, numbers, strings and containers)."""
    agent, carry = run.agent, run.carry
    state = {
        "format": CHECKPOINT_FORMAT,
        "obs_dim": agent.obs_dim, "action_dim": agent.action_dim,
        "config": to_dict(run.config),
        "agent": agent.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in agent.optimizers().items()},
        "replay": _to_torch(run.replay.state_dict()),
        "collector": run.collector.state_dict(),
        "carry": {"deter": carry.state.deter, "stoch": carry.state.stoch,
                  "logits": carry.state.logits, "action": carry.action},
        "opponents": _opponents_state(run.pools),
        "counters": dict(run.counters),
        "marks": dict(run.marks),
        "pending": {key: torch.tensor(_floats(values), dtype=torch.float64)
                    for key, values in run.pending.items()},
        "rows": run.rows,
        "rng": {"python": random.getstate(), "numpy": _to_torch(np.random.get_state()),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }
    atomic_write(path, lambda file: torch.save(state, file))


def load_checkpoint(path: Path, run: Run) -> None:
    """Restore a `save_checkpoint` file into a fresh `Run` built from the same config."""
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: {path} does not exist; start without "
                                f"--resume, or point --resume at a run directory that has one")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, KeyError, ValueError, TypeError, AttributeError,
            pickle.UnpicklingError) as error:
        raise ValueError(f"{path} is corrupted or incomplete ({type(error).__name__}); delete "
                         f"it to start over, or resume from a copy") from error
    _check_format(path, state)
    saved = state["config"]
    # Only how long and where to run may change on resume; anything else changes the run.
    saved["train"] = {**saved["train"], **{key: getattr(run.config.train, key)
                                           for key in RUN_ONLY_KEYS}}
    if from_dict(saved) != run.config:
        raise ValueError(f"{path} was written with a different config; resume with the run's "
                         f"own config.yaml (only {', '.join(RUN_ONLY_KEYS)} may change)")
    try:
        _restore(state, run)
    except (KeyError, IndexError, TypeError, AttributeError, RuntimeError) as error:
        raise ValueError(f"{path} is corrupted or incomplete ({type(error).__name__}: "
                         f"{error}); delete it to start over, or resume from a copy") from error


def _check_format(path: Path, state) -> None:
    kind = state.get("format") if isinstance(state, dict) else None
    if kind == CHECKPOINT_FORMAT:
        return
    if kind == POLICY_FORMAT:
        raise ValueError(f"{path} is a policy file (the networks alone, no optimiser or "
                         f"replay), so training cannot continue from it; restore the run's "
                         f"own checkpoint.pt from a copy, or train a new run")
    if isinstance(kind, str) and kind.startswith("naturaldreamer-checkpoint"):
        raise ValueError(f"{path} was written by an earlier naturaldreamer ({kind}) that did "
                         f"not save enough to resume exactly; train a new run (its policy.pt "
                         f"still plays)")
    raise ValueError(f"{path} is not a naturaldreamer checkpoint; resume from a run "
                     f"directory written by `python -m naturaldreamer train`")


def _restore(state: dict, run: Run) -> None:
    agent = run.agent
    agent.load_state_dict(state["agent"])
    for name, optimizer in agent.optimizers().items():
        optimizer.load_state_dict(state["optimizers"][name])
    run.replay.load_state_dict(_to_numpy(state["replay"]))
    if run.pools:
        _load_opponents(state["opponents"], run.pools, agent)
    run.collector.load_state_dict(state["collector"])  # replays the episodes in progress
    carry = {key: value.to(agent.device) for key, value in state["carry"].items()}
    run.carry = Carry(State(carry["deter"], carry["stoch"], carry["logits"]), carry["action"])
    run.counters, run.marks = dict(state["counters"]), dict(state["marks"])
    run.pending = {key: values.tolist() for key, values in state["pending"].items()}
    run.rows = list(state["rows"])
    # Last: replaying the episodes above drew from the generators.
    if run.pools:
        run.pools[0].rng.bit_generator.state = state["opponents"]["rng"]
    rng = state["rng"]
    random.setstate(rng["python"])
    numpy_state = _to_numpy(rng["numpy"])
    np.random.set_state((numpy_state[0], numpy_state[1].astype(np.uint32), *numpy_state[2:]))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available() and \
            len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])
