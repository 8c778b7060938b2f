"""The training loop (chapter 9): collect, update, log, evaluate, save — top to bottom.

Several environments step together; the agent picks all their actions with one batched call.
After every environment step the loop performs as many gradient updates as the train ratio
asks for: updates per env step = train_ratio / (batch_size · batch_length), the official
DreamerV3 definition (replayed steps per env step).
"""

import csv
import pickle
import random
import time
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from naturaldreamer.agent import Agent, Policy, save_policy
from naturaldreamer.config import Config, EnvConfig, from_dict, save_config, to_dict
from naturaldreamer.envs import make_env
from naturaldreamer.envs.hockey import BasicOpponent
from naturaldreamer.replay import Replay

RUN_ONLY_KEYS = ("steps", "device", "threads")
PLOTTED = ("episode/return", "eval/return", "eval/win_rate_weak", "eval/win_rate_strong",
           "world/loss", "world/reward", "world/kl_dyn", "behavior/entropy_mean",
           "behavior/return_scale", "behavior/entropy_pull_to_advantage", "behavior/actor_std",
           "behavior/advantage_abs_mean")


def select_device(name: str) -> torch.device:
    """'auto' → cuda when available, else cpu; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but torch sees no CUDA GPU; use "
                           f"--device cpu, or install the CUDA build of torch (README)")
    return torch.device(name)


def build_env(env_config: EnvConfig, **extra) -> gym.Env:
    """The environment with actions rescaled to [−1, 1] (the actor's range) where needed."""
    env = make_env(env_config.name, **{**env_config.options, **extra})
    space = env.action_space
    if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        env = gym.wrappers.RescaleAction(env, np.float32(-1.0), np.float32(1.0))
    return env


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class EnvSlot:
    """One environment of the batch and the step it is about to hand the agent."""

    env: gym.Env
    obs: np.ndarray
    reward: float = 0.0
    is_first: bool = True
    is_last: bool = False
    is_terminal: bool = False
    episode_return: float = 0.0
    episode_length: int = 0
    winner: int = 0


class Collector:
    """Steps a batch of environments with the agent and writes every step into replay.

    A finished episode's last observation is stored too (with is_last, and is_terminal only if
    the game really ended); the environment resets on the following step.
    """

    def __init__(self, envs: list[gym.Env], seed: int):
        self.slots = []
        for index, env in enumerate(envs):
            obs, _ = env.reset(seed=seed + index)
            self.slots.append(EnvSlot(env, np.asarray(obs, np.float32)))
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
                obs, _ = slot.env.reset()
                slot.obs, slot.reward, slot.is_first = np.asarray(obs, np.float32), 0.0, True
                slot.is_last = slot.is_terminal = False
                slot.episode_return, slot.episode_length = 0.0, 0
                continue
            obs, reward, terminated, truncated, info = slot.env.step(action)
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
    or one of the agent's own past snapshots (self-play), with the configured weights."""

    def __init__(self, weights: dict, rng: np.random.Generator):
        self.scripted = {"weak": BasicOpponent(weak=True), "strong": BasicOpponent(weak=False)}
        self.weights = dict(weights)
        self.snapshots: list = []
        self.rng = rng
        self.current = self.scripted["weak"]

    def reset(self) -> None:
        names = [n for n in self.weights if n != "self" or self.snapshots]
        probs = np.array([self.weights[n] for n in names], np.float64)
        name = names[self.rng.choice(len(names), p=probs / probs.sum())]
        if name == "self":
            self.current = self.snapshots[self.rng.integers(len(self.snapshots))]
            self.current.reset()
        else:
            self.current = self.scripted[name]

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.current.act(obs)


def train(config: Config, out: str | Path, resume: bool = False,
          progress: bool = True) -> Agent:
    """Train an agent as `config` says, writing into `out`:
    config.yaml, metrics.csv, metrics.png, checkpoint.pt (to resume) and policy.pt."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    c = config.train
    device = select_device(c.device)
    if c.threads:
        torch.set_num_threads(c.threads)
    seed_everything(c.seed)

    envs, pools = training_envs(config, np.random.default_rng(c.seed))
    obs_dim = envs[0].observation_space.shape[0]
    action_dim = envs[0].action_space.shape[0]
    agent = Agent(obs_dim, action_dim, config).to(device)
    replay = Replay(obs_dim, action_dim, config.env.num_envs, config.replay, c.seed)
    counters = {"env_steps": 0, "updates": 0, "episodes": 0, "seconds": 0.0}
    rows: list[dict] = []
    if resume:
        counters = load_checkpoint(out / "checkpoint.pt", agent, replay, pools, config)
        rows = read_metrics(out / "metrics.csv")
    save_config(config, out / "config.yaml")

    collector = Collector(envs, c.seed + counters["env_steps"])
    carry = agent.initial_carry(len(envs))
    pending: dict[str, list[float]] = {}
    marks = {key: counters["env_steps"] for key in ("log", "eval", "checkpoint", "snapshot")}
    started = time.time() - counters["seconds"]
    bar = tqdm(total=c.steps, initial=counters["env_steps"], unit="step", disable=not progress,
               dynamic_ncols=True)
    while counters["env_steps"] < c.steps:
        carry = collector.step(agent, carry, replay)
        counters["env_steps"] += len(envs)
        bar.update(len(envs))
        for episode in collector.finished:
            counters["episodes"] += 1
            _append(pending, {"episode/return": episode["return"],
                              "episode/length": episode["length"],
                              "episode/win": float(episode["winner"] == 1)})
        collector.finished.clear()

        owed = (counters["env_steps"] - c.train_start) * config.updates_per_step
        while counters["updates"] < owed and replay.filled >= config.replay.batch_length:
            _append(pending, agent.train_step(replay.sample()))
            counters["updates"] += 1

        steps = counters["env_steps"]
        if pools and steps - marks["snapshot"] >= config.env.self_play_every:
            marks["snapshot"] = steps
            _add_snapshot(pools, agent)
        if steps - marks["eval"] >= c.eval_every or steps >= c.steps:
            marks["eval"] = steps
            _append(pending, evaluation_metrics(agent, config))
        if steps - marks["log"] >= c.log_every or steps >= c.steps:
            marks["log"] = steps
            counters["seconds"] = time.time() - started
            rows.append(_summarize(pending, counters))
            pending = {}
            write_metrics(rows, out / "metrics.csv")
            bar.set_postfix({k.split("/")[-1]: f"{rows[-1][k]:.3g}" for k in
                             ("episode/return", "eval/return") if k in rows[-1]})
        if steps - marks["checkpoint"] >= c.checkpoint_every or steps >= c.steps:
            marks["checkpoint"] = steps
            save_checkpoint(out / "checkpoint.pt", agent, replay, pools, counters)
            save_policy(agent, out / "policy.pt")
            plot_metrics(rows, out / "metrics.png")
    bar.close()
    for env in envs:
        env.close()
    return agent


def training_envs(config: Config, rng: np.random.Generator) -> tuple[list[gym.Env], list]:
    """The `env.num_envs` training environments and, for hockey with `env.opponents`, the
    opponent pool of each. Potential-based shaping gets the agent's γ (`behavior.discount`):
    only with the same γ does its discounted sum telescope (chapter 10)."""
    env = config.env
    pools = [OpponentPool(env.opponents, rng) for _ in range(env.num_envs)] \
        if env.opponents else []
    modes = assign_modes(env.modes, env.num_envs)
    shaping = {"discount": config.behavior.discount} if env.options.get("potential") else {}
    envs = [build_env(env, **shaping, **({"opponent": pools[i]} if pools else {}),
                      **({"mode": modes[i]} if modes else {}))
            for i in range(env.num_envs)]
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
    """Evaluation episodes → metrics; for hockey, plain games against both scripted opponents."""
    explore = config.train.eval_mode == "sample"
    episodes = config.train.eval_episodes
    if config.env.name != "hockey":
        results = evaluate(agent, config.env, episodes, explore)
        return {"eval/return": float(np.mean([r["return"] for r in results]))}
    metrics = {}
    for opponent in ("weak", "strong"):
        results = evaluate(agent, config.env, episodes, explore, opponent=opponent,
                           mode="normal", shaping=0.0, potential=0.0)
        winners = np.array([r["winner"] for r in results])
        metrics[f"eval/win_rate_{opponent}"] = float(np.mean(winners == 1))
        metrics[f"eval/loss_rate_{opponent}"] = float(np.mean(winners == -1))
        metrics[f"eval/return_{opponent}"] = float(np.mean([r["return"] for r in results]))
    metrics["eval/return"] = (metrics["eval/return_weak"] + metrics["eval/return_strong"]) / 2
    if config.train.probe_games:
        from naturaldreamer.probe import probe, probe_metrics  # it imports this module

        metrics.update(probe_metrics(probe(agent, config, config.train.probe_games)))
    return metrics


def _add_snapshot(pools: list[OpponentPool], agent: Agent, keep: int = 8) -> None:
    """Freeze a CPU copy of the current agent as a self-play opponent (the newest `keep`)."""
    frozen = Agent(agent.obs_dim, agent.action_dim, agent.config)
    frozen.load_state_dict(agent.state_dict())
    snapshot = Policy(frozen)
    for pool in pools:
        pool.snapshots = (pool.snapshots + [snapshot])[-keep:]


def _append(pending: dict, metrics: dict) -> None:
    for key, value in metrics.items():
        pending.setdefault(key, []).append(float(value))


def _summarize(pending: dict, counters: dict) -> dict:
    row = {"env_steps": counters["env_steps"], "updates": counters["updates"],
           "episodes": counters["episodes"], "seconds": round(counters["seconds"], 1)}
    row.update({key: float(np.mean(values)) for key, values in pending.items()})
    return row


def write_metrics(rows: list[dict], path: Path) -> None:
    """All rows so far as CSV; columns are the union of keys (a row lacks eval columns when
    no evaluation ran in its window)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)


def read_metrics(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as file:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(file)]


def metric_series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, values) of one metric over the rows that have it, e.g. from `read_metrics`."""
    points = [(row["env_steps"], row[key]) for row in rows if key in row]
    steps, values = zip(*points) if points else ((), ())
    return np.array(steps, dtype=float), np.array(values, dtype=float)


def plot_metrics(rows: list[dict], path: Path) -> None:
    """A grid of the main curves against environment steps, saved as a PNG.

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
    fig.tight_layout()
    fig.savefig(path, dpi=80)


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


def save_checkpoint(path: Path, agent: Agent, replay: Replay, pools: list[OpponentPool],
                    counters: dict) -> None:
    """Everything needed to continue exactly where training stopped (written atomically)."""
    state = {
        "format": "naturaldreamer-checkpoint-1",
        "obs_dim": agent.obs_dim, "action_dim": agent.action_dim,
        "config": to_dict(agent.config),
        "agent": agent.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in agent.optimizers().items()},
        "replay": _to_torch(replay.state_dict()),
        "snapshots": [s.agent.state_dict() for s in (pools[0].snapshots if pools else [])],
        "pool_rng": pools[0].rng.bit_generator.state if pools else None,
        "counters": dict(counters),
        "rng": {"python": random.getstate(), "numpy": _to_torch(np.random.get_state()),
                "torch": torch.get_rng_state()},
    }
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def load_checkpoint(path: Path, agent: Agent, replay: Replay, pools: list[OpponentPool],
                    config: Config) -> dict:
    """Restore a `save_checkpoint` file into fresh objects; returns the counters."""
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: {path} does not exist; start without "
                                f"--resume, or point --resume at a run directory that has one")
    try:
        state = torch.load(path, map_location=agent.device, weights_only=True)
    except (RuntimeError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path} is corrupted or incomplete ({type(error).__name__}); delete "
                         f"it to start over, or resume from a copy") from error
    saved = state["config"]
    # Only how long and where to run may change on resume; anything else changes the run.
    saved["train"] = {**saved["train"], **{key: getattr(config.train, key)
                                           for key in RUN_ONLY_KEYS}}
    if from_dict(saved) != config:
        raise ValueError(f"{path} was written with a different config; resume with the run's "
                         f"own config.yaml (only {', '.join(RUN_ONLY_KEYS)} may change)")
    agent.load_state_dict(state["agent"])
    for name, optimizer in agent.optimizers().items():
        optimizer.load_state_dict(state["optimizers"][name])
    replay.load_state_dict(_to_numpy(state["replay"]))
    for snapshot_state in state["snapshots"]:
        frozen = Agent(agent.obs_dim, agent.action_dim, agent.config)
        frozen.load_state_dict(snapshot_state)
        for pool in pools:
            pool.snapshots.append(Policy(frozen))
    if pools and state["pool_rng"] is not None:
        pools[0].rng.bit_generator.state = state["pool_rng"]
    random.setstate(state["rng"]["python"])
    numpy_state = _to_numpy(state["rng"]["numpy"])
    np.random.set_state((numpy_state[0], numpy_state[1].astype(np.uint32), *numpy_state[2:]))
    torch.set_rng_state(state["rng"]["torch"])
    return state["counters"]
