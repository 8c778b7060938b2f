"""Runs you can trust: a stopped run resumes bit for bit, and no kill loses or corrupts a file.

Every test compares against one uninterrupted run of a tiny Pendulum config, whose episodes
(20 steps) are cut by every stop, so the episodes in progress must survive too.
"""

import multiprocessing
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from naturaldreamer.agent import Agent, Policy, load_agent
from naturaldreamer.config import from_dict, load_config
from naturaldreamer.train import (TrainingInterrupted, _add_snapshot, build_run, load_checkpoint,
                                  read_metrics, save_checkpoint, seed_everything, train)

STEPS = 80  # env steps over 4 envs: 20 steps each, episodes of 20 env steps; 35 updates


def tiny(steps: int = STEPS, checkpoint_every: int = 40):
    return from_dict({
        "env": {"name": "Pendulum-v1", "num_envs": 4, "options": {"max_episode_steps": 20}},
        "world_model": {"deter": 16, "hidden": 8, "units": 8, "blocks": 2, "classes": 4,
                        "stoch": 4},
        "behavior": {"units": 8, "horizon": 3},
        "replay": {"batch_size": 2, "batch_length": 4, "capacity": 400},
        "train": {"steps": steps, "train_ratio": 4, "train_start": 10, "threads": 1,
                  "eval_every": 20, "eval_episodes": 1, "log_every": 8,
                  "checkpoint_every": checkpoint_every}})


def rows_without_time(run_dir: Path) -> list[dict]:
    rows = read_metrics(run_dir / "metrics.csv")
    for row in rows:
        del row["seconds"]  # wall-clock time is the one column that may differ
    return rows


def weights(run_dir: Path) -> dict:
    """Every tensor of the final checkpoint: networks, optimiser states, replay."""
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    tensors = {f"agent.{k}": v for k, v in state["agent"].items()}
    for name, optimizer in state["optimizers"].items():
        for index, param_state in optimizer["state"].items():
            tensors.update({f"{name}.{index}.{k}": torch.as_tensor(v)
                            for k, v in param_state.items()})
    tensors.update({f"replay.{k}": v for k, v in state["replay"]["data"].items()})
    return tensors


def assert_same_run(run_dir: Path, reference: Path) -> None:
    rows, expected = rows_without_time(run_dir), rows_without_time(reference)
    assert [r["env_steps"] for r in rows] == [r["env_steps"] for r in expected]
    for row, want in zip(rows, expected):
        assert row == want, f"rows differ at {row['env_steps']} env steps"
    got, want = weights(run_dir), weights(reference)
    assert got.keys() == want.keys()
    for key in want:
        assert torch.equal(got[key], want[key]), key


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """The reference: STEPS env steps without a stop."""
    out = tmp_path_factory.mktemp("straight")
    train(tiny(), out, progress=False)
    return out


def test_half_then_resume_equals_straight(straight, tmp_path):
    train(tiny(STEPS // 2), tmp_path, progress=False)
    slots = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["collector"]["slots"]
    assert all(0 < slot["length"] < 20 for slot in slots)  # stopped mid-episode
    train(tiny(), tmp_path, resume=True, progress=False)
    assert_same_run(tmp_path, straight)


def test_sigint_and_sigterm_stop_with_a_checkpoint_and_resume_exactly(straight, tmp_path,
                                                                       monkeypatch):
    updates = []
    real_step = Agent.train_step
    handler = signal.getsignal(signal.SIGINT)

    def step_and_signal(agent, batch):
        updates.append(1)
        if len(updates) in (18, 28):  # 2 updates per env step: stop between those two
            os.kill(os.getpid(), signal.SIGINT if len(updates) == 18 else signal.SIGTERM)
        return real_step(agent, batch)

    monkeypatch.setattr(Agent, "train_step", step_and_signal)
    for signum in (signal.SIGINT, signal.SIGTERM):
        with pytest.raises(TrainingInterrupted, match=f"--resume {tmp_path}") as stopped:
            train(tiny(), tmp_path, resume=signum == signal.SIGTERM, progress=False)
        assert stopped.value.signal == signum
        state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
        # The update in progress was finished, the next one was not started, and the metrics
        # since the last log were kept.
        counters = state["counters"]
        assert counters["updates"] == len(updates)
        assert counters["updates"] < (counters["env_steps"] - 10) * tiny().updates_per_step
        assert state["pending"]["world/loss"].numel() > 0
    assert signal.getsignal(signal.SIGINT) is handler  # train put the handlers back
    train(tiny(), tmp_path, resume=True, progress=False)
    assert_same_run(tmp_path, straight)


def test_hockey_games_and_self_play_opponents_continue_exactly(tmp_path, one_thread):
    """The episodes in progress of the hockey game, with opponents drawn from a pool that
    holds snapshots of the agent, go on after a resume as they would have without it."""
    config = from_dict({
        "env": {"name": "hockey", "num_envs": 3, "options": {"potential": 0.1},
                "opponents": {"weak": 1, "strong": 1, "self": 2},
                "modes": {"normal": 1, "train_shooting": 2}},
        "world_model": {"deter": 16, "hidden": 8, "units": 8, "blocks": 2, "classes": 4,
                        "stoch": 4},
        "behavior": {"units": 8, "horizon": 3},
        "replay": {"batch_size": 2, "batch_length": 4, "capacity": 3000},
        "train": {"seed": 0, "device": "cpu"}})

    def fresh():
        seed_everything(config.train.seed)
        return build_run(config, torch.device("cpu"))

    def play(run, steps: int) -> list[np.ndarray]:
        observations = []
        for _ in range(steps):
            run.carry = run.collector.step(run.agent, run.carry, run.replay)
            observations.append(np.stack([slot.obs for slot in run.collector.slots]))
        return observations

    run = fresh()
    for _ in range(4):
        play(run, 50)
        _add_snapshot(run.pools, run.agent)
    assert any(isinstance(pool.pick, Policy) for pool in run.pools)  # playing a snapshot
    assert all(slot.episode_length > 0 for slot in run.collector.slots)  # mid-game
    save_checkpoint(tmp_path / "checkpoint.pt", run)
    expected = play(run, 100)
    restored = fresh()
    load_checkpoint(tmp_path / "checkpoint.pt", restored)
    for got, want in zip(play(restored, 100), expected):
        np.testing.assert_array_equal(got, want)


def _train_child(config, out: Path, resume: bool, kill: tuple | None) -> None:
    """Child process: train; with kill = (file name, n, 'mid' | 'after'), SIGKILL itself in
    the middle of (or right after) its n-th write of that file."""
    import naturaldreamer.files as files

    if kill is not None:
        name, n, when = kill
        seen = []
        real_replace = os.replace

        class KillingOs:
            def __getattr__(self, attribute):
                return getattr(os, attribute)

            @staticmethod
            def replace(source, target):
                if Path(target).name == name:
                    seen.append(1)
                    if len(seen) == n and when == "mid":
                        os.truncate(source, os.path.getsize(source) // 2)
                        os.kill(os.getpid(), signal.SIGKILL)
                real_replace(source, target)
                if Path(target).name == name and len(seen) == n:
                    os.kill(os.getpid(), signal.SIGKILL)

        files.os = KillingOs()
    train(config, out, resume=resume, progress=False)


def check_files(out: Path, reference: Path) -> None:
    """Every file of the run is complete, and the metrics have one row per log, in order: the
    first rows of the uninterrupted run's."""
    steps = [row["env_steps"] for row in read_metrics(out / "metrics.csv")]
    expected = [row["env_steps"] for row in read_metrics(reference / "metrics.csv")]
    assert steps == expected[:len(steps)], steps
    if (out / "checkpoint.pt").exists():
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        assert [row["env_steps"] for row in state["rows"]] == steps[:len(state["rows"])]
    if (out / "policy.pt").exists():
        load_agent(out / "policy.pt")
    if (out / "config.yaml").exists():
        load_config(out / "config.yaml")
    if (out / "metrics.png").exists():
        assert (out / "metrics.png").read_bytes()[-8:] == b"IEND\xaeB`\x82"  # PNG's end


def test_sigkill_at_any_moment_loses_and_corrupts_nothing(straight, tmp_path):
    context = multiprocessing.get_context("forkserver")
    # Children start from a process that has imported what training needs: fast starts.
    context.set_forkserver_preload(["naturaldreamer.train", "torch._dynamo",
                                    "matplotlib.backends.backend_agg"])
    config = tiny(checkpoint_every=20)  # how often it saves does not change the numbers
    kills = [("config.yaml", 1, "mid"), ("checkpoint.pt", 1, "mid"), ("metrics.csv", 2, "mid"),
             ("checkpoint.pt", 1, "after"), 1.0, ("policy.pt", 1, "mid"),
             ("metrics.png", 1, "mid")]
    for kill in kills + [None]:
        resume = (tmp_path / "checkpoint.pt").exists()
        child = context.Process(target=_train_child, args=(
            config, tmp_path, resume, kill if isinstance(kill, tuple) else None))
        child.start()
        child.join(kill if isinstance(kill, float) else 300)
        if child.is_alive():
            child.kill()
            child.join()
        if kill is None:
            assert child.exitcode == 0
        elif isinstance(kill, tuple):
            assert child.exitcode == -signal.SIGKILL, kill
        check_files(tmp_path, straight)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["steps"] == STEPS
    assert_same_run(tmp_path, straight)
    assert np.isfinite(rows_without_time(tmp_path)[-1]["world/loss"])
