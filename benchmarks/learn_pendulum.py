"""Does naturaldreamer learn? Train on Pendulum-v1 on the CPU and print return against steps.

Run: python benchmarks/learn_pendulum.py [--steps 30000] [--out runs/learn_pendulum]
Random play scores about −1200 per episode; a learned swing-up scores above −300.
Prints one line per evaluation; the full metrics and plots go to the run directory.
Not a pass/fail test.
"""

import argparse
import csv
import time

from naturaldreamer.config import load_config
from naturaldreamer.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/pendulum.yaml")
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--out", default="runs/learn_pendulum")
    args = parser.parse_args()
    config = load_config(args.config, {"train.steps": args.steps})
    start = time.time()
    train(config, args.out, progress=False)
    with open(f"{args.out}/metrics.csv", newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("eval/return")]
    print(f"{'env steps':>10}{'updates':>10}{'minutes':>10}{'eval return':>14}")
    for row in rows:
        print(f"{int(float(row['env_steps'])):>10}{int(float(row['updates'])):>10}"
              f"{float(row['seconds']) / 60:>10.1f}{float(row['eval/return']):>14.1f}")
    print(f"total wall-clock: {(time.time() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
