"""Several seeds and a grid of settings, scheduled by Ray Tune (chapter 9).

One training run is one sample: another seed of the same config can end far from it. A sweep
trains every setting of a grid with several seeds. Each trial is an ordinary `train` run with
its own run directory, `OUT/SETTING/seedK`, so a sweep can be inspected, plotted and resumed
with the same tools as a single run. Ray Tune only schedules the trials: on this machine's
cores by default, or on a cluster started with `ray start`.

Resuming needs no bookkeeping of its own, because every trial's run directory says how far it
got: a trial whose checkpoint has reached `train.steps` is finished and skipped, a trial with
an earlier checkpoint resumes from it, and any other trial starts from scratch.
"""

import csv
import dataclasses
import itertools
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from naturaldreamer.config import Config, ConfigError, from_dict, load_config, to_dict
from naturaldreamer.train import RUN_ONLY_KEYS, metric_series, read_metrics, train

GRID_EXAMPLE = "train.train_ratio=256,512"


@dataclass
class Trial:
    """One run of a sweep: a setting of the grid (e.g. 'train.train_ratio=512', or 'base'
    without a grid), one seed, and the directory its `train` run writes into."""

    setting: str
    seed: int
    run_dir: Path
    config: Config


@dataclass
class SettingSummary:
    """The final evaluation of each seed of one setting, and their mean and spread."""

    setting: str
    finals: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.finals))

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds (n − 1 in the denominator); 0 for one seed."""
        return float(np.std(self.finals, ddof=1)) if len(self.finals) > 1 else 0.0


def parse_grid(items: list[str]) -> dict[str, list]:
    """`['section.key=v1,v2', ...]` → {'section.key': [v1, v2], ...}, values read as YAML
    numbers, booleans or strings ('1e-4' is a number here, though YAML 1.1 calls it a string).
    Whether a key exists is checked later, by the config itself."""
    grid: dict[str, list] = {}
    for item in items:
        key, equals, values = item.partition("=")
        key = key.strip()
        texts = [text.strip() for text in values.split(",")]
        section, dot, name = key.partition(".")
        if not equals or not dot or not section or not name or "" in texts:
            raise ConfigError(f"--grid {item!r}: expected SECTION.KEY=VALUE1,VALUE2,..., "
                              f"e.g. --grid {GRID_EXAMPLE}")
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice; list all its values in one "
                              f"--grid, e.g. --grid {GRID_EXAMPLE}")
        if key == "train.seed":
            raise ConfigError("--grid train.seed: seeds come from --seeds N (seeds train.seed, "
                              "train.seed + 1, ...), not from the grid")
        if len(set(texts)) < len(texts):
            raise ConfigError(f"--grid {item!r} lists a value twice")
        grid[key] = [_parse_value(text) for text in texts]
    return grid


def _parse_value(text: str):
    for number in (int, float):
        try:
            return number(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def plan_sweep(config_path: str | Path, seeds: int, grid: dict[str, list], out: str | Path,
               gpus_per_trial: float = 0, cpus_per_trial: float = 1) -> list[Trial]:
    """Every trial of the sweep, each setting's config built and validated before anything
    runs, so an unknown key or a bad value is one error that names it.

    Seed k of a setting trains with `train.seed + k`. A trial without a GPU runs on the CPU,
    with `train.threads` torch threads (one by default); `threads: 0` gives it as many as the
    CPUs it was given.
    """
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    if gpus_per_trial < 0 or cpus_per_trial <= 0:
        raise ConfigError("--cpus-per-trial must be > 0 and --gpus-per-trial ≥ 0")
    out = Path(out).resolve()
    keys = list(grid)
    trials = []
    for values in itertools.product(*(grid[key] for key in keys)):
        overrides = dict(zip(keys, values))
        setting = "+".join(f"{key}={value}" for key, value in overrides.items()) or "base"
        base = load_config(config_path, overrides)
        if base.train.device.startswith("cuda") and gpus_per_trial == 0:
            raise ConfigError(f"train.device is {base.train.device!r} but no GPU is given to "
                              f"a trial; pass --gpus-per-trial 1 (or a fraction, to share one)")
        for k in range(seeds):
            train_config = dataclasses.replace(base.train, seed=base.train.seed + k)
            if gpus_per_trial == 0 and train_config.device == "auto":
                train_config.device = "cpu"
            if train_config.threads == 0:
                train_config.threads = max(1, int(cpus_per_trial))
            trials.append(Trial(setting, base.train.seed + k,
                                out / _directory_name(setting) / f"seed{base.train.seed + k}",
                                dataclasses.replace(base, train=train_config)))
    return trials


def _directory_name(setting: str) -> str:
    return re.sub(r"[^\w.=+-]", "_", setting)


def checkpoint_steps(run_dir: Path) -> int:
    """Environment steps of the run's checkpoint; 0 if it has none. Memory-maps the file, so
    the replay buffer inside it is not read."""
    path = Path(run_dir) / "checkpoint.pt"
    if not path.is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return int(state["counters"]["env_steps"])


def trial_state(trial: Trial) -> str:
    """'finished', 'partial' (a checkpoint short of train.steps) or 'new'. A run directory
    written with another config is an error: resuming it would mix two experiments."""
    steps = checkpoint_steps(trial.run_dir)
    if steps == 0:
        return "new"
    _check_same_config(trial)
    return "finished" if steps >= trial.config.train.steps else "partial"


def _check_same_config(trial: Trial) -> None:
    # Through from_dict, as `train --resume` reads it: keys added since get their defaults.
    saved = to_dict(from_dict(yaml.safe_load((trial.run_dir / "config.yaml").read_text())))
    wanted = to_dict(trial.config)
    for key in RUN_ONLY_KEYS:  # how long and where to run may change, as for `train --resume`
        saved["train"][key] = wanted["train"][key]
    differing = [f"{section}.{key}" for section in wanted for key in wanted[section]
                 if saved[section][key] != wanted[section][key]]
    if differing:
        raise ConfigError(f"{trial.run_dir} holds a run with a different config "
                          f"({', '.join(differing)} differ); use another --out, or delete "
                          f"that directory to train it again")


def run_trial(trial: Trial) -> None:
    """Bring one trial to `train.steps`: skip it if finished, resume it from its checkpoint,
    or train it from scratch — always through the ordinary `train`."""
    state = trial_state(trial)
    if state != "finished":
        train(trial.config, trial.run_dir, resume=state == "partial", progress=False)


def _ray_trial(params: dict) -> None:
    """What Ray runs in a worker: one trial, described by plain values, then its result."""
    from ray import tune

    spec = params["trial"]
    trial = Trial(spec["setting"], spec["seed"], Path(spec["run_dir"]),
                  from_dict(spec["config"]))
    run_trial(trial)
    _, values = metric_series(read_metrics(trial.run_dir / "metrics.csv"), spec["metric"])
    tune.report({"final": float(values[-1]) if len(values) else float("nan"),
                 "env_steps": checkpoint_steps(trial.run_dir)})


def run_sweep(trials: list[Trial], out: str | Path, address: str | None = None,
              cpus_per_trial: float = 1, gpus_per_trial: float = 0,
              num_cpus: int | None = None, ray_temp_dir: str | None = None,
              metric: str = "eval/return") -> tuple[list[Trial], list[str]]:
    """Run every unfinished trial on Ray Tune; returns the trials it ran and a line for each
    one that failed (its run directory and error).

    Without `address` Ray starts on this machine (with `num_cpus` cores, default all of
    them); with one (e.g. 'auto') it joins a cluster started by `ray start --head`, whose
    nodes must all see `out` at the same path and have naturaldreamer installed. A Ray
    instance that is already running in this process is used as it is.
    """
    import ray
    from ray import tune

    todo = [trial for trial in trials if trial_state(trial) != "finished"]
    if not todo:
        return [], []
    started = not ray.is_initialized()
    if started and address:
        ray.init(address=address)
    elif started:
        ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=ray_temp_dir)
    try:
        specs = [{"setting": t.setting, "seed": t.seed, "run_dir": str(t.run_dir),
                  "config": to_dict(t.config), "metric": metric} for t in todo]
        trainable = tune.with_resources(_ray_trial, {"cpu": cpus_per_trial,
                                                     "gpu": gpus_per_trial})
        tuner = tune.Tuner(
            trainable, param_space={"trial": tune.grid_search(specs)},
            run_config=tune.RunConfig(name=time.strftime("sweep-%Y%m%d-%H%M%S"),
                                      storage_path=str(Path(out).resolve() / "ray_results"),
                                      verbose=0))
        results = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    failed = [f"{result.config['trial']['run_dir']}: {result.error}" for result in results
              if result.error is not None]
    return todo, failed


def summarize(trials: list[Trial], metric: str = "eval/return") -> list[SettingSummary]:
    """Each setting's last `metric` value of every finished seed, in grid order."""
    finals: dict[str, list[float]] = {}
    for trial in trials:
        finals.setdefault(trial.setting, [])
        if trial_state(trial) == "finished":
            _, values = metric_series(read_metrics(trial.run_dir / "metrics.csv"), metric)
            finals[trial.setting] += [float(values[-1])] if len(values) else []
    return [SettingSummary(setting, values) for setting, values in finals.items()]


def format_summary(summaries: list[SettingSummary], metric: str = "eval/return") -> str:
    """The summary as a fixed-width text table."""
    width = max([len("setting")] + [len(s.setting) for s in summaries])
    lines = [f"{'setting':<{width}}  runs  final {metric}: mean ± std (min … max)"]
    for s in summaries:
        if s.finals:
            lines.append(f"{s.setting:<{width}}  {len(s.finals):>4}  {s.mean:10.1f} ± "
                         f"{s.std:<8.1f} ({min(s.finals):.1f} … {max(s.finals):.1f})")
        else:
            lines.append(f"{s.setting:<{width}}  {0:>4}  (no finished run)")
    return "\n".join(lines)


def write_summary(summaries: list[SettingSummary], trials: list[Trial], out: str | Path,
                  metric: str = "eval/return") -> None:
    """summary.csv (one row per setting, every seed's final value) and learning_curves.png
    (each setting's mean curve over its finished seeds, shaded between their lowest and
    highest value) in `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["setting", "runs", "mean", "std", "min", "max", "finals"])
        for s in summaries:
            cells = [s.mean, s.std, min(s.finals), max(s.finals)] if s.finals else [""] * 4
            writer.writerow([s.setting, len(s.finals), *cells,
                             " ".join(f"{value:.6g}" for value in s.finals)])
    plot_learning_curves(trials, out / "learning_curves.png", metric)


def learning_curves(trials: list[Trial], metric: str = "eval/return"
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """setting → (steps, values of shape (seeds, steps)) over the finished seeds, on the
    evaluation steps that all of them share."""
    runs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for trial in trials:
        if trial_state(trial) == "finished":
            series = metric_series(read_metrics(trial.run_dir / "metrics.csv"), metric)
            runs.setdefault(trial.setting, []).append(series)
    curves = {}
    for setting, series in runs.items():
        steps = series[0][0]
        for other_steps, _ in series[1:]:
            steps = np.intersect1d(steps, other_steps)
        values = np.stack([v[np.isin(s, steps)] for s, v in series])
        curves[setting] = (steps, values)
    return curves


def plot_learning_curves(trials: list[Trial], path: Path, metric: str = "eval/return") -> None:
    """One line per setting (the mean of its runs) with their range shaded; a bare matplotlib
    Figure, so it works headless."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 3.8))
    ax = fig.subplots()
    for setting, (steps, values) in learning_curves(trials, metric).items():
        line, = ax.plot(steps, values.mean(axis=0), "o-", ms=3,
                        label=f"{setting} ({len(values)} runs)")
        ax.fill_between(steps, values.min(axis=0), values.max(axis=0), alpha=0.2,
                        color=line.get_color())
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"{metric} (mean; shaded: seed range)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def sweep(config_path: str | Path, seeds: int, grid_items: list[str], out: str | Path,
          address: str | None = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0,
          num_cpus: int | None = None, ray_temp_dir: str | None = None,
          metric: str = "eval/return") -> str:
    """The whole `sweep` command: plan (validating every config), run what is unfinished,
    write summary.csv and learning_curves.png into `out`, and return the summary table.
    Raises RuntimeError, after writing the summary of what finished, if a trial failed."""
    trials = plan_sweep(config_path, seeds, parse_grid(grid_items), out, gpus_per_trial,
                        cpus_per_trial)
    ran, failed = run_sweep(trials, out, address, cpus_per_trial, gpus_per_trial, num_cpus,
                            ray_temp_dir, metric)
    summaries = summarize(trials, metric)
    write_summary(summaries, trials, out, metric)
    table = format_summary(summaries, metric)
    if failed:
        lines = "\n".join(f"  {line}" for line in failed)
        raise RuntimeError(f"{len(failed)} of {len(ran)} trials failed:\n{lines}\n"
                           f"{table}\nfix the cause and run the same command again: finished "
                           f"trials are kept, the others resume from their checkpoints")
    return f"trials run now: {len(ran)}, already finished: {len(trials) - len(ran)}\n{table}"
