"""Data collection alignment, checkpoint resume, policy files, and a tiny training run."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from naturaldreamer.agent import Agent, load_policy, save_policy
from naturaldreamer.config import from_dict
from naturaldreamer.replay import Replay
from naturaldreamer.train import (Collector, Run, load_checkpoint, read_metrics,
                                  save_checkpoint, train, widen_observations)

TINY = {"world_model": {"deter": 32, "hidden": 16, "units": 16, "blocks": 4, "classes": 4,
                        "stoch": 4},
        "behavior": {"units": 16, "horizon": 3},
        "replay": {"batch_size": 2, "batch_length": 4, "capacity": 400}}


class CountingEnv(gym.Env):
    """obs = [number of steps taken]; the step into obs t pays 10·t; the episode ends after
    3 steps, as a termination or as a time-out."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def __init__(self, truncate: bool):
        self.truncate, self.t = truncate, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        end = self.t == 3
        return (np.array([self.t], np.float32), 10.0 * self.t, end and not self.truncate,
                end and self.truncate, {})


@pytest.mark.parametrize("truncate", [False, True])
def test_collector_pairs_each_reward_with_the_observation_it_leads_to(truncate):
    agent = Agent(1, 1, from_dict(TINY))
    replay = Replay(1, 1, 1, from_dict(TINY).replay)
    collector = Collector([CountingEnv(truncate)], seed=0)
    carry = agent.initial_carry(1)
    for _ in range(9):
        carry = collector.step(agent, carry, replay)
    data = {k: v[0, :9] for k, v in replay.data.items()}
    np.testing.assert_array_equal(data["obs"][:, 0], [0, 1, 2, 3, 0, 1, 2, 3, 0])
    np.testing.assert_array_equal(data["reward"], [0, 10, 20, 30, 0, 10, 20, 30, 0])
    np.testing.assert_array_equal(data["is_first"], [1, 0, 0, 0, 1, 0, 0, 0, 1])
    np.testing.assert_array_equal(data["is_last"], [0, 0, 0, 1, 0, 0, 0, 1, 0])
    # A time-out is the end of an episode but not a terminal state.
    np.testing.assert_array_equal(data["is_terminal"], np.array([0, 0, 0, 1] * 2 + [0])
                                  * (not truncate))
    assert [e["return"] for e in collector.finished] == [60.0, 60.0]


def counting_run(config, seed: int) -> Run:
    agent = Agent(1, 1, config)
    return Run(config, agent, Replay(1, 1, 1, config.replay, seed=seed),
               Collector([CountingEnv(False)], seed=seed), [], agent.initial_carry(1))


def test_checkpoint_resume_gives_identical_next_update(tmp_path):
    config = from_dict(TINY)
    torch.manual_seed(0)
    run = counting_run(config, seed=0)
    agent, replay = run.agent, run.replay
    for _ in range(14):
        run.carry = run.collector.step(agent, run.carry, replay)
    agent.train_step(replay.sample())  # optimiser state and Moments are non-trivial now
    run.counters["env_steps"] = 14
    save_checkpoint(tmp_path / "checkpoint.pt", run)
    expected = agent.train_step(replay.sample())

    torch.manual_seed(123)  # a different RNG state: the checkpoint must restore it
    restored_run = counting_run(config, seed=5)
    load_checkpoint(tmp_path / "checkpoint.pt", restored_run)
    assert restored_run.counters["env_steps"] == 14
    # The episode in progress (two steps into the fifth) was replayed into the new env.
    assert restored_run.collector.slots[0].env.t == 2
    restored, restored_replay = restored_run.agent, restored_run.replay
    got = restored.train_step(restored_replay.sample())
    assert {k: float(v) for k, v in got.items()} == {k: float(v) for k, v in expected.items()}
    for (name, a), (_, b) in zip(agent.state_dict().items(), restored.state_dict().items()):
        assert torch.equal(a, b), name
    torch.testing.assert_close(restored.behavior.moments.high, agent.behavior.moments.high)


def test_load_checkpoint_errors_say_what_to_do(tmp_path):
    config = from_dict(TINY)
    run = counting_run(config, seed=0)
    with pytest.raises(FileNotFoundError, match="start without --resume"):
        load_checkpoint(tmp_path / "none.pt", run)
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupted"):
        load_checkpoint(tmp_path / "broken.pt", run)


def test_policy_file_round_trip(tmp_path):
    agent = Agent(18, 4, from_dict(TINY))
    save_policy(agent, tmp_path / "agent.pt")
    policy = load_policy(tmp_path / "agent.pt")
    obs = np.linspace(-1, 1, 18)
    first = policy.act(obs)
    assert first.shape == (4,) and first.dtype == np.float32 and np.all(np.abs(first) <= 1)
    policy.reset()
    np.testing.assert_array_equal(policy.act(obs), first)  # deterministic by default
    with pytest.raises(ValueError, match="18 numbers"):
        policy.act(np.zeros(5))
    with pytest.raises(FileNotFoundError, match="train one"):
        load_policy(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable"):
        load_policy(tmp_path / "bad.pt")


def test_tiny_training_run_writes_its_outputs_and_resumes(tmp_path):
    config = from_dict({**TINY, "env": {"name": "Pendulum-v1", "num_envs": 2},
                        "train": {"steps": 60, "train_ratio": 8, "train_start": 20, "threads": 1,
                                  "eval_every": 60, "eval_episodes": 1, "log_every": 20,
                                  "checkpoint_every": 40}})
    train(config, tmp_path, progress=False)
    for name in ("config.yaml", "metrics.csv", "metrics.png", "checkpoint.pt", "policy.pt"):
        assert (tmp_path / name).exists(), name
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 4 and "world/loss" in rows[0] and "eval/return" in rows[0]
    longer = from_dict({**TINY, "env": {"name": "Pendulum-v1", "num_envs": 2},
                        "train": {"steps": 80, "train_ratio": 8, "train_start": 20, "threads": 1,
                                  "eval_every": 60, "eval_episodes": 1, "log_every": 20,
                                  "checkpoint_every": 40}})
    resumed = train(longer, tmp_path, resume=True, progress=False)  # more steps: allowed
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[-1].startswith("80,") and resumed is not None
    changed = from_dict({**TINY, "env": {"name": "Pendulum-v1", "num_envs": 2},
                         "behavior": {"units": 16, "horizon": 3, "entropy_scale": 1e-3},
                         "train": {"steps": 100, "train_ratio": 8, "train_start": 20, "threads": 1,
                                   "eval_every": 60, "eval_episodes": 1, "log_every": 20,
                                   "checkpoint_every": 40}})
    with pytest.raises(ValueError, match="different config"):
        train(changed, tmp_path, resume=True, progress=False)


def test_warm_start_loads_the_networks_and_refuses_other_sizes(tmp_path):
    def tiny(**train_keys):
        return from_dict({**TINY, "env": {"name": "Pendulum-v1", "num_envs": 2},
                          "train": {"steps": 40, "train_ratio": 8, "train_start": 20,
                                    "threads": 1, "eval_every": 40, "eval_episodes": 1,
                                    "log_every": 20, "checkpoint_every": 40, **train_keys}})

    train(tiny(), tmp_path / "first", progress=False)
    source = load_policy(tmp_path / "first" / "policy.pt").agent
    # train_start beyond the run's steps: no update happens, so the weights are the loaded ones.
    warm = train(tiny(init=str(tmp_path / "first" / "policy.pt"), steps=10, train_start=20),
                 tmp_path / "second", progress=False)
    for (name, expected), got in zip(source.state_dict().items(), warm.state_dict().values()):
        torch.testing.assert_close(got, expected, msg=name)
    assert "init: " + str(tmp_path / "first" / "policy.pt") in (
        tmp_path / "second" / "config.yaml").read_text()
    # Resuming takes the networks from the checkpoint: the init file may have moved since.
    (tmp_path / "first" / "policy.pt").rename(tmp_path / "moved.pt")
    resumed = train(tiny(init=str(tmp_path / "first" / "policy.pt"), steps=20, train_start=20),
                    tmp_path / "second", resume=True, progress=False)
    assert read_metrics(tmp_path / "second" / "metrics.csv")[-1]["env_steps"] == 20
    for (name, expected), got in zip(source.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(got, expected, msg=name)  # still no update: train_start 20
    (tmp_path / "moved.pt").rename(tmp_path / "first" / "policy.pt")
    other = from_dict({**TINY, "world_model": {**TINY["world_model"], "deter": 16},
                       "env": {"name": "Pendulum-v1", "num_envs": 2},
                       "train": {"steps": 10, "threads": 1,
                                 "init": str(tmp_path / "first" / "policy.pt")}})
    with pytest.raises(ValueError, match="train.init: the networks in .* other sizes"):
        train(other, tmp_path / "third", progress=False)


def test_widened_agent_computes_what_its_source_did_whatever_the_new_input():
    """An agent trained on 18 observations, widened to a 19th (the clock): its encoder ignores
    the new input, and its decoder's first 18 outputs are the source's."""
    torch.manual_seed(0)
    source, target = Agent(18, 4, from_dict(TINY)), Agent(19, 4, from_dict(TINY))
    fresh = {key: value.clone() for key, value in target.state_dict().items()}
    target.load_state_dict(widen_observations(source.state_dict(), target.state_dict()))
    obs = torch.randn(5, 18)
    for clock in (0.0, 1.3, 5.02):
        wide = torch.cat([obs, torch.full((5, 1), clock)], 1)
        torch.testing.assert_close(target.world_model.encoder(wide),
                                   source.world_model.encoder(obs))
    feat = torch.randn(5, target.world_model.decoder.net[0][0].in_features)
    decoded = target.world_model.decoder(feat)
    torch.testing.assert_close(decoded[:, :18], source.world_model.decoder(feat))
    head = "world_model.decoder.net.1.weight"
    torch.testing.assert_close(target.state_dict()[head][18], fresh[head][18])
    for key, value in source.state_dict().items():
        if value.shape == target.state_dict()[key].shape:
            torch.testing.assert_close(target.state_dict()[key], value, msg=key)
    same = source.state_dict()
    assert widen_observations(same, same).keys() == same.keys()
