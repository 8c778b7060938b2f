"""Every mistake a reader can make on the command line gets one line saying what to do, a
non-zero exit status and no traceback; Ctrl-C and SIGTERM stop a run with a checkpoint."""

import multiprocessing
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from naturaldreamer.agent import Agent, Policy, save_policy
from naturaldreamer.cli import main
from naturaldreamer.config import from_dict
from naturaldreamer.train import read_metrics

TINY = {"env": {"name": "Pendulum-v1", "num_envs": 2, "options": {"max_episode_steps": 20}},
        "world_model": {"deter": 16, "hidden": 8, "units": 8, "blocks": 2, "classes": 4,
                        "stoch": 4},
        "behavior": {"units": 8, "horizon": 3},
        "replay": {"batch_size": 2, "batch_length": 4, "capacity": 400},
        "train": {"steps": 40, "train_ratio": 4, "train_start": 10, "threads": 1,
                  "eval_every": 20, "eval_episodes": 1, "log_every": 10,
                  "checkpoint_every": 20, "device": "cpu"}}


def tiny_config(tmp_path: Path, text: str | None = None, **sections) -> str:
    """A config file: `text` as it is, or TINY with `sections` merged in."""
    path = tmp_path / "tiny.yaml"
    if text is None:
        data = {name: {**TINY.get(name, {}), **sections.get(name, {})}
                for name in {**TINY, **sections}}
        text = yaml.safe_dump(data)
    path.write_text(text)
    return str(path)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of `python -m naturaldreamer ARGV` (argparse exits itself)."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def policy_dir(tmp_path: Path) -> Path:
    """A run directory whose checkpoint.pt is really a policy file."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(Path(tiny_config(tmp_path)).read_text())
    save_policy(Agent(3, 1, from_dict(TINY)), run / "checkpoint.pt")
    return run


def pendulum_agent(tmp_path: Path) -> str:
    save_policy(Agent(3, 1, from_dict(TINY)), tmp_path / "pendulum.pt")
    return str(tmp_path / "pendulum.pt")


def file_path(tmp_path: Path) -> str:
    (tmp_path / "a_file").write_text("not a directory")
    return str(tmp_path / "a_file")


CASES = {
    # name: (arguments, given tmp_path; what the message must say)
    "out is read-only": (lambda t: ["train", "--config", tiny_config(t),
                                    "--out", "/sys/naturaldreamer-run"],
                         "cannot write to the run directory"),
    "out is a file": (lambda t: ["train", "--config", tiny_config(t), "--out", file_path(t)],
                      "is a file, not a directory"),
    "section not a mapping": (lambda t: ["train", "--config", tiny_config(t, "env: 5\n")],
                              "env: expected a mapping"),
    "lr in e-notation": (lambda t: ["train", "--config",
                                    tiny_config(t, "world_model:\n  lr: 1e-4\n")],
                         "world_model.lr: expected float, got the text '1e-4'.*write 1.0e-4"),
    "lr NaN": (lambda t: ["train", "--config", tiny_config(t, "behavior:\n  lr: .nan\n")],
               "behavior.lr must be a finite number, got nan"),
    "free_nats negative": (lambda t: ["train", "--config",
                                      tiny_config(t, "world_model:\n  free_nats: -1\n")],
                           "world_model.free_nats must be ≥ 0, got -1"),
    "warmup negative": (lambda t: ["train", "--config",
                                   tiny_config(t, "behavior:\n  warmup: -10\n")],
                        "behavior.warmup must be ≥ 0, got -10"),
    "agc negative": (lambda t: ["train", "--config",
                                tiny_config(t, "world_model:\n  agc: -1\n")],
                     "world_model.agc must be > 0, got -1"),
    "empty config": (lambda t: ["train", "--config", tiny_config(t, "# nothing yet\n")],
                     "is empty"),
    "policy as checkpoint": (lambda t: ["train", "--resume", str(policy_dir(t))],
                             "is a policy file"),
    "evaluate 0 games": (lambda t: ["evaluate", "agents/hockey.pt", "--games", "0"],
                         "--games: expected a whole number of at least 1"),
    "discrete actions": (lambda t: ["train", "--config",
                                    tiny_config(t, env={"name": "CartPole-v1", "options": {}})],
                         "CartPole-v1 has actions Discrete"),
    "env not installed": (lambda t: ["train", "--config",
                                     tiny_config(t, env={"name": "HalfCheetah-v5",
                                                         "options": {}})],
                          "HalfCheetah-v5 needs a package that is not installed"),
    "env option unknown": (lambda t: ["train", "--config", tiny_config(
        t, env={"options": {"max_episode_steps": 20, "gravity": 3}})],
                           "env.options: Pendulum-v1 does not take these options"),
    "capacity as text": (lambda t: ["train", "--config",
                                    tiny_config(t, "replay:\n  capacity: 1e14\n")],
                         "replay.capacity: expected int.*100000000000000"),
    "capacity too large": (lambda t: ["train", "--config",
                                      tiny_config(t, replay={"capacity": 10**14})],
                           "replay.capacity: 100,000,000,000,000 steps .* more than this "
                           "machine's"),
    "unknown device": (lambda t: ["evaluate", "agents/hockey.pt", "--device", "gpu"],
                       "unknown device 'gpu'"),
    "resume with config": (lambda t: ["train", "--resume", str(t), "--config",
                                      tiny_config(t)],
                           "drop --config and --out"),
    "resume a file": (lambda t: ["train", "--resume", file_path(t)],
                      "--resume takes a run directory, not a file"),
    "resume nothing": (lambda t: ["train", "--resume", str(t / "typo")],
                       "has no config.yaml"),
    "evaluate a pendulum agent": (lambda t: ["evaluate", pendulum_agent(t)],
                                  "was trained on Pendulum-v1, not hockey"),
    "play a missing file": (lambda t: ["play", str(t / "missing.pt")],
                            "no agent file at"),
}
if not torch.cuda.is_available():
    CASES["cuda without a GPU"] = (lambda t: ["evaluate", "agents/hockey.pt", "--device", "cuda"],
                                   "torch sees no CUDA GPU")


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_clear_line_and_a_non_zero_exit(case, tmp_path, capsys,
                                                             monkeypatch):
    monkeypatch.chdir(Path(__file__).parent.parent)  # agents/hockey.pt, configs/
    arguments, message = CASES[case]
    status, err = run_cli(arguments(tmp_path), capsys)
    assert status == 2
    assert re.search(message, err), err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 or lines[-1].startswith("python -m naturaldreamer"), lines


@pytest.mark.parametrize("case", CASES)
def test_the_troubleshooting_page_quotes_the_message(case):
    page = (Path(__file__).parent.parent / "book" / "troubleshooting.md").read_text()
    assert re.search(CASES[case][1], " ".join(page.split())), case


def test_a_diverged_run_stops_with_a_clear_message(tmp_path, capsys, monkeypatch):
    def nan_step(agent, batch):
        return {"world/loss": torch.tensor(float("nan"))}

    monkeypatch.setattr(Agent, "train_step", nan_step)
    status, err = run_cli(["train", "--config", tiny_config(tmp_path),
                           "--out", str(tmp_path / "run")], capsys)
    assert status == 2
    assert re.search(r"training diverged: world/loss became nan by 20 env steps", err), err
    assert "smaller learning rates" in err and not (tmp_path / "run" / "checkpoint.pt").exists()


def test_policy_refuses_nan_and_inf_observations():
    policy = Policy(Agent(3, 1, from_dict(TINY)))
    with pytest.raises(ValueError, match=r"NaN or infinite values at positions \[1, 2\]"):
        policy.act(np.array([0.0, np.nan, np.inf]))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A run of 20 env steps trained by `python -m naturaldreamer train`."""
    tmp_path = tmp_path_factory.mktemp("finished")
    out = tmp_path / "run"
    config = tiny_config(tmp_path, train={"steps": 20})
    assert main(["train", "--config", config, "--out", str(out)]) == 0
    return out


def test_train_refuses_an_existing_run_unless_forced(finished_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    config = str(finished_run.parent / "tiny.yaml")
    first = (out / "checkpoint.pt").read_bytes()
    status, err = run_cli(["train", "--config", config, "--out", str(out)], capsys)
    assert status == 2 and f"--resume {out}" in err and "--force" in err
    assert (out / "checkpoint.pt").read_bytes() == first  # untouched
    status, err = run_cli(["train", "--resume", str(out)], capsys)
    assert status == 2 and "already has 20 env steps" in err and "--steps" in err
    (out / "metrics.csv").write_text("")  # emptied: the checkpoint still has the rows
    assert run_cli(["train", "--resume", str(out), "--steps", "30"], capsys)[0] == 0
    assert [row["env_steps"] for row in read_metrics(out / "metrics.csv")] == [10, 20, 30]
    assert run_cli(["train", "--config", config, "--out", str(out), "--force"], capsys)[0] == 0
    assert [row["env_steps"] for row in read_metrics(out / "metrics.csv")] == [10, 20]


def test_damaged_files_say_so(finished_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    checkpoint = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(checkpoint[:len(checkpoint) // 2])
    status, err = run_cli(["train", "--resume", str(out), "--steps", "40"], capsys)
    assert status == 2 and "corrupted or incomplete" in err and "Traceback" not in err
    state = torch.load(out / "policy.pt", weights_only=True)
    torch.save({**state, "format": "naturaldreamer-checkpoint-1"}, out / "checkpoint.pt")
    status, err = run_cli(["train", "--resume", str(out), "--steps", "40"], capsys)
    assert status == 2 and "earlier naturaldreamer" in err
    (out / "metrics.csv").write_text("env_steps,world/loss\n10,1.5\n20\n")
    with pytest.raises(ValueError, match="line 3: the row has the wrong number of columns"):
        read_metrics(out / "metrics.csv")


def _cli_child(argv: list[str]) -> None:
    sys.exit(main(argv))


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_the_command_with_a_checkpoint(signum, status, tmp_path):
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["naturaldreamer.train", "torch._dynamo",
                                    "matplotlib.backends.backend_agg"])
    out = tmp_path / "run"
    config = tiny_config(tmp_path, train={"steps": 100_000})
    child = context.Process(target=_cli_child,
                            args=(["train", "--config", config, "--out", str(out)],))
    child.start()
    deadline = time.time() + 120
    while not (out / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.05)  # the first log row: it is training
    os.kill(child.pid, signum)
    child.join(120)
    assert child.exitcode == status
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["counters"]["env_steps"] >= 10
    assert read_metrics(out / "metrics.csv")[-1]["env_steps"] <= state["counters"]["env_steps"]
