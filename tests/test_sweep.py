"""Sweeps: grid parsing and validation, summaries against numpy, and a real sweep of a tiny
Pendulum config on a local Ray instance, resumed after an interruption."""

import csv
import tempfile

import numpy as np
import pytest
import yaml

from naturaldreamer.cli import main
from naturaldreamer.config import ConfigError
from naturaldreamer.sweep import (checkpoint_steps, format_summary, learning_curves,
                                  parse_grid, plan_sweep, run_trial, summarize, sweep,
                                  trial_state)
from naturaldreamer.train import read_metrics, write_metrics

# Pendulum with 50-step episodes, tiny networks and a fraction of an update per env step: a
# trial takes seconds; what is tested is the sweep around it.
TINY = {"env": {"name": "Pendulum-v1", "num_envs": 2, "options": {"max_episode_steps": 50}},
        "world_model": {"deter": 16, "hidden": 8, "units": 8, "blocks": 2, "classes": 2,
                        "stoch": 2, "encoder_layers": 1, "decoder_layers": 1},
        "behavior": {"units": 8, "horizon": 3, "actor_layers": 1, "critic_layers": 1},
        "replay": {"batch_size": 2, "batch_length": 4, "capacity": 400},
        "train": {"steps": 200, "train_ratio": 2, "train_start": 40, "eval_every": 100,
                  "eval_episodes": 1, "log_every": 100, "checkpoint_every": 100}}


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


def test_parse_grid_reads_numbers_strings_and_booleans():
    grid = parse_grid(["world_model.lr=1e-4,3e-4", "train.train_ratio=256,512",
                       "behavior.actor_dist=tanh_normal, bounded_normal", "x.flag=true,false"])
    assert grid == {"world_model.lr": [1e-4, 3e-4], "train.train_ratio": [256, 512],
                    "behavior.actor_dist": ["tanh_normal", "bounded_normal"],
                    "x.flag": [True, False]}


@pytest.mark.parametrize("item, message", [
    ("train.train_ratio", "expected SECTION.KEY=VALUE1,VALUE2"),
    ("train_ratio=1,2", "expected SECTION.KEY=VALUE1,VALUE2"),
    ("train.train_ratio=", "expected SECTION.KEY=VALUE1,VALUE2"),
    ("train.train_ratio=1,,2", "expected SECTION.KEY=VALUE1,VALUE2"),
    ("train.train_ratio=1,1", "lists a value twice"),
    ("train.seed=0,1", "--seeds"),
])
def test_bad_grid_syntax_is_one_clear_error(item, message):
    with pytest.raises(ConfigError, match=message):
        parse_grid([item])


def test_a_key_given_twice_is_an_error():
    with pytest.raises(ConfigError, match="given twice"):
        parse_grid(["train.train_ratio=1,2", "train.train_ratio=3"])


def test_unknown_grid_key_and_bad_value_are_named(tiny_config, tmp_path):
    with pytest.raises(ConfigError, match="'world_model.deterr'.*'world_model.deter'"):
        plan_sweep(tiny_config, 2, parse_grid(["world_model.deterr=16,32"]), tmp_path)
    with pytest.raises(ConfigError, match="behavior.lam"):
        plan_sweep(tiny_config, 2, parse_grid(["behavior.lam=0.5,1.5"]), tmp_path)
    with pytest.raises(ConfigError, match="--seeds"):
        plan_sweep(tiny_config, 0, {}, tmp_path)
    with pytest.raises(ConfigError, match="--gpus-per-trial 1"):
        plan_sweep(tiny_config, 1, parse_grid(["train.device=cuda"]), tmp_path)


def test_cli_reports_an_unknown_key_as_one_error_before_ray_starts(tiny_config, tmp_path,
                                                                   capsys):
    code = main(["sweep", "--config", str(tiny_config), "--seeds", "2", "--out",
                 str(tmp_path / "sweep"), "--grid", "behaviour.lr=1e-4,2e-4"])
    output = capsys.readouterr().err  # errors go to stderr (cli.main)
    assert code == 2
    assert output.count("error:") == 1 and "'behaviour'" in output
    assert not (tmp_path / "sweep").exists()


def test_plan_names_directories_and_seeds(tiny_config, tmp_path):
    trials = plan_sweep(tiny_config, 3, parse_grid(["train.train_ratio=2,4",
                                                    "behavior.horizon=3,5"]), tmp_path)
    assert len(trials) == 12
    assert [t.seed for t in trials[:3]] == [0, 1, 2]
    assert [t.config.train.seed for t in trials[:3]] == [0, 1, 2]
    assert trials[0].setting == "train.train_ratio=2+behavior.horizon=3"
    assert trials[-1].run_dir == tmp_path / "train.train_ratio=4+behavior.horizon=5" / "seed2"
    assert trials[-1].config.train.train_ratio == 4 and trials[-1].config.behavior.horizon == 5
    assert len({t.run_dir for t in trials}) == 12
    # No GPU asked for: the trial runs on the CPU, with one torch thread per CPU it was given.
    assert trials[0].config.train.device == "cpu" and trials[0].config.train.threads == 1


def test_summary_matches_numpy_on_hand_made_runs(tiny_config, tmp_path, monkeypatch):
    trials = plan_sweep(tiny_config, 3, parse_grid(["train.train_ratio=2,4"]), tmp_path)
    finals = {}
    for index, trial in enumerate(trials):
        trial.run_dir.mkdir(parents=True)
        curve = [-1000.0 + 10 * index, -900.0 + 7 * index ** 2, -800.0 + 5 * index ** 3]
        write_metrics([{"env_steps": 100 * (i + 1), "eval/return": value}
                       for i, value in enumerate(curve)], trial.run_dir / "metrics.csv")
        finals.setdefault(trial.setting, []).append(curve[-1])
    monkeypatch.setattr("naturaldreamer.sweep.trial_state", lambda trial: "finished")
    summaries = summarize(trials)
    for summary in summaries:
        expected = np.array(finals[summary.setting])
        assert summary.finals == list(expected)
        assert summary.mean == pytest.approx(expected.sum() / 3)
        assert summary.std == pytest.approx(np.sqrt(((expected - expected.mean()) ** 2).sum()
                                                    / 2))
    curves = learning_curves(trials)
    np.testing.assert_array_equal(curves["train.train_ratio=4"][0], [100, 200, 300])
    assert curves["train.train_ratio=4"][1][:, -1].tolist() == finals["train.train_ratio=4"]
    assert "train.train_ratio=2" in format_summary(summaries)


def test_interrupted_sweep_skips_finished_resumes_partial_and_summarises_all(
        tiny_config, tmp_path, monkeypatch):
    """The state an interrupted sweep of three settings leaves: the first finished, the second
    stopped at a checkpoint, the third never started. Running the sweep again skips the first,
    and a local Ray instance runs the other two side by side: one resumes, one starts."""
    monkeypatch.setenv("RAY_raylet_start_wait_time_s", "120")  # slow starts on a busy machine
    out, grid = tmp_path / "sweep", ["train.train_ratio=2,3,4"]
    done, partial, new = plan_sweep(tiny_config, 1, parse_grid(grid), out)
    run_trial(done)
    partial.config.train.steps = 100
    run_trial(partial)
    done, partial, new = plan_sweep(tiny_config, 1, parse_grid(grid), out)
    assert [trial_state(t) for t in (done, partial, new)] == ["finished", "partial", "new"]
    assert checkpoint_steps(partial.run_dir) == 100
    done_files = {p: p.stat().st_mtime_ns for p in done.run_dir.iterdir()}
    first_rows = read_metrics(partial.run_dir / "metrics.csv")

    with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as ray_temp_dir:
        text = sweep(tiny_config, 1, grid, out, num_cpus=2, ray_temp_dir=ray_temp_dir)
    assert text.startswith("trials run now: 2, already finished: 1")
    assert done_files == {p: p.stat().st_mtime_ns for p in done.run_dir.iterdir()}
    rows = read_metrics(partial.run_dir / "metrics.csv")
    assert rows[:len(first_rows)] == first_rows  # resumed: its first half was not redone
    assert [row["env_steps"] for row in rows] == [100, 200]
    for trial in (done, partial, new):
        assert trial_state(trial) == "finished" and checkpoint_steps(trial.run_dir) == 200
        for name in ("config.yaml", "metrics.csv", "checkpoint.pt", "policy.pt"):
            assert (trial.run_dir / name).is_file(), (trial.run_dir, name)

    with open(out / "summary.csv", newline="") as file:
        summary = list(csv.DictReader(file))
    assert [row["setting"] for row in summary] == [t.setting for t in (done, partial, new)]
    for row, trial in zip(summary, (done, partial, new)):
        final = read_metrics(trial.run_dir / "metrics.csv")[-1]["eval/return"]
        assert row["runs"] == "1" and float(row["mean"]) == pytest.approx(final)
        assert trial.setting in text
    assert (out / "learning_curves.png").stat().st_size > 0
    # Once more: nothing is left to run (Ray is not even started), and nothing is touched.
    files = {p: p.stat().st_mtime_ns for t in (done, partial, new) for p in t.run_dir.iterdir()}
    assert sweep(tiny_config, 1, grid, out).startswith("trials run now: 0, already finished: 3")
    assert files == {p: p.stat().st_mtime_ns for t in (done, partial, new)
                     for p in t.run_dir.iterdir()}


def test_a_run_directory_with_another_config_is_refused(tiny_config, tmp_path):
    (trial,) = plan_sweep(tiny_config, 1, {}, tmp_path)
    trial.config.train.steps = 100
    run_trial(trial)
    (other,) = plan_sweep(tiny_config, 1, parse_grid(["behavior.horizon=5"]), tmp_path)
    other.run_dir = trial.run_dir
    with pytest.raises(ConfigError, match="behavior.horizon"):
        trial_state(other)


def test_failed_trials_are_named_after_the_summary_of_the_rest_is_written(tiny_config, tmp_path,
                                                                          monkeypatch):
    out = tmp_path / "sweep"
    first, second = plan_sweep(tiny_config, 2, {}, out)
    first.config.train.steps = 100
    run_trial(first)  # finished for a 100-step sweep; the other trial "fails" on Ray
    monkeypatch.setattr("naturaldreamer.sweep.run_sweep", lambda trials, *args, **kwargs: (
        [t for t in trials if trial_state(t) != "finished"], [f"{second.run_dir}: boom"]))
    config = tmp_path / "short.yaml"
    config.write_text(yaml.safe_dump({**TINY, "train": {**TINY["train"], "steps": 100}}))
    with pytest.raises(RuntimeError) as error:
        sweep(config, 2, [], out)
    message = str(error.value)
    assert message.startswith("1 of 1 trials failed") and f"{second.run_dir}: boom" in message
    assert "run the same command again" in message
    with open(out / "summary.csv", newline="") as file:
        (row,) = csv.DictReader(file)
    assert row["runs"] == "1"  # the finished seed only
