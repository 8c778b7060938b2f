"""The critic at every checkpoint of a run, each probed on 200 games per opponent (chapter 10).

Run: python benchmarks/checkpoint_probes.py SNAPSHOTS RUN/metrics.csv OUT.csv [--games 200]

SNAPSHOTS is a folder of the run's `policy.pt`, copied at each checkpoint and named by the env
steps at which it was saved (`25040.pt`, `50080.pt`, …). Each is probed as
`python -m naturaldreamer probe` does, with deterministic actions on the same seeded games, and
its numbers are kept beside it (`25040.json`), so a second call probes only the new ones.
OUT.csv gets one row per checkpoint: env steps, gradient updates (from the run's metrics), the
critic's correlation with the real return and its 95 % interval over games, the critic's mean
value in the drawn games, and the share of the games won, drawn and lost against each opponent.

In-training probes (`train.probe_games`, a few games so that an evaluation stays short) swing by
tenths from one evaluation to the next; 200 games per opponent pin the correlation to about a
tenth either way. A run can probe that many games itself (`train.probe_games: 200`, some 20 s per
evaluation on one core); this script does it beside a run that does not.
Not a pass/fail test.
"""

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import torch

from naturaldreamer.agent import load_agent
from naturaldreamer.probe import Recording, game_outcomes, probe, probe_metrics
from naturaldreamer.train import metric_series, read_metrics

COLUMNS = ("critic_correlation", "critic_correlation_low", "critic_correlation_high",
           "value_mean_drawn")


def outcome_shares(recording: Recording) -> dict:
    """{"won_weak": share, "drawn_weak": …, "lost_strong": …}: how the recorded games ended,
    the first half of its games against the weak opponent, the second against the strong one
    (as `play_and_record` plays them)."""
    r = recording
    outcome = game_outcomes(r.reward, r.is_terminal, r.episode)
    first = np.r_[True, r.episode[1:] != r.episode[:-1]]  # one row per game
    ends = outcome[first]
    half = len(ends) // 2
    return {f"{name}_{side}": float(np.mean(part == sign))
            for side, part in (("weak", ends[:half]), ("strong", ends[half:]))
            for name, sign in (("won", 1), ("drawn", 0), ("lost", -1))}


def probe_snapshot(path: Path, games: int) -> dict:
    """The probe's metrics of one policy file and its games' outcomes, kept as JSON beside it."""
    stored = path.with_suffix(".json")
    if stored.exists():
        return json.loads(stored.read_text())
    agent = load_agent(path)
    result = probe(agent, agent.config, games, keep_recording=True)
    numbers = probe_metrics(result)
    numbers.update({f"games/{key}": share
                    for key, share in outcome_shares(result.recording).items()})
    stored.write_text(json.dumps(numbers, indent=1) + "\n")
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshots", type=Path)
    parser.add_argument("metrics", type=Path, help="the run's metrics.csv")
    parser.add_argument("out", type=Path)
    parser.add_argument("--games", type=int, default=200, help="games per opponent")
    args = parser.parse_args()
    torch.set_num_threads(1)
    env_steps, updates = metric_series(read_metrics(args.metrics), "updates")
    rows = []
    for path in sorted(args.snapshots.glob("*.pt"), key=lambda p: int(p.stem)):
        steps = int(path.stem)
        if steps not in env_steps:
            raise SystemExit(f"{path}: no row of {args.metrics} has env_steps {steps}; "
                             f"name each snapshot by the env steps at which it was saved")
        numbers = probe_snapshot(path, args.games)
        row = {"env_steps": steps, "updates": int(updates[env_steps == steps][0])}
        row.update({name: round(numbers[f"probe/{name}"], 4) for name in COLUMNS})
        row.update({f"{name}_{side}": numbers[f"games/{name}_{side}"]
                    for side in ("weak", "strong") for name in ("won", "drawn", "lost")})
        rows.append(row)
        print(", ".join(f"{key} {value:g}" for key, value in row.items()), flush=True)
    with open(args.out, "w", newline="") as file:
        writer = csv.DictWriter(file, rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} checkpoints in {args.out}")


if __name__ == "__main__":
    main()
