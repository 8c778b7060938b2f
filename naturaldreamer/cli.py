"""The command line: `python -m naturaldreamer COMMAND ...`."""

import argparse
from pathlib import Path

from naturaldreamer import __version__


def _train(args: argparse.Namespace) -> int:
    from naturaldreamer.config import load_config
    from naturaldreamer.train import train

    out = Path(args.resume or args.out or f"runs/{Path(args.config).stem}")
    config_path = out / "config.yaml" if args.resume else args.config
    overrides = {}
    if args.steps is not None:
        overrides["train.steps"] = args.steps
    if args.device is not None:
        overrides["train.device"] = args.device
    config = load_config(config_path, overrides)
    train(config, out, resume=bool(args.resume))
    print(f"done: metrics, plots, checkpoint and policy are in {out}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job a reader runs."""
    parser = argparse.ArgumentParser(
        prog="python -m naturaldreamer",
        description="Train, evaluate and watch the DreamerV3 agent of the naturaldreamer book.",
    )
    parser.add_argument("--version", action="version", version=f"naturaldreamer {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train an agent from a YAML config")
    train.add_argument("--config", default="configs/pendulum.yaml",
                       help="YAML config (default: configs/pendulum.yaml)")
    train.add_argument("--steps", type=int, help="environment steps (overrides train.steps)")
    train.add_argument("--device", help="cpu, cuda, cuda:1, or auto (default: from config)")
    train.add_argument("--out", help="run directory (default: runs/CONFIG_NAME)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR from its checkpoint and config")
    train.set_defaults(run=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}")
        return 2
