"""The command line: `python -m naturaldreamer COMMAND ...`."""

import argparse
import json
import sys
from pathlib import Path

from naturaldreamer import __version__

DEFAULT_CONFIG = "configs/pendulum.yaml"


def _positive_int(text: str) -> int:
    """argparse type: a whole number ≥ 1 (argparse reports the error and exits with 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _run_directory(args: argparse.Namespace) -> tuple[Path, Path]:
    """(run directory, config file) of a `train` command, or a ValueError saying what to fix."""
    from naturaldreamer.train import RUN_FILES

    if args.resume:
        out = Path(args.resume)
        if args.config or args.out or args.init:
            raise ValueError(f"--resume continues the run in {out} with its own config.yaml "
                             f"and directory; drop --config and --out (and --init; only --steps "
                             f"and --device may change)")
        if out.is_file():
            raise ValueError(f"--resume takes a run directory, not a file: use --resume "
                             f"{out.parent}")
        if not (out / "config.yaml").is_file():
            raise FileNotFoundError(f"cannot resume: {out} has no config.yaml; pass the "
                                    f"directory of an earlier run (it holds config.yaml and "
                                    f"checkpoint.pt)")
        return out, out / "config.yaml"
    config = args.config or DEFAULT_CONFIG
    out = Path(args.out or f"runs/{Path(config).stem}")
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not args.force:
        raise ValueError(f"{out} already holds a run ({', '.join(existing)}); continue it with "
                         f"`python -m naturaldreamer train --resume {out}`, choose another "
                         f"--out, or add --force to replace it")
    return out, Path(config)


def _train(args: argparse.Namespace) -> int:
    from naturaldreamer.config import load_config
    from naturaldreamer.train import TrainingInterrupted, train

    out, config_path = _run_directory(args)
    overrides = {}
    if args.steps is not None:
        overrides["train.steps"] = args.steps
    if args.device is not None:
        overrides["train.device"] = args.device
    if args.init is not None:
        overrides["train.init"] = args.init
    config = load_config(config_path, overrides)
    try:
        train(config, out, resume=bool(args.resume))
    except TrainingInterrupted as stopped:
        print(stopped, file=sys.stderr)
        return 128 + stopped.signal
    except KeyboardInterrupt:
        saved = "the last checkpoint is intact: continue with `python -m naturaldreamer train " \
            f"--resume {out}`" if (out / "checkpoint.pt").is_file() else "no checkpoint yet"
        print(f"interrupted without saving; {saved}", file=sys.stderr)
        return 130
    print(f"done: metrics, plots, checkpoint and policy are in {out}/")
    return 0


def _hockey_agent(path: str, device: str):
    """The agent in `path`, or a ValueError if it was not trained on hockey."""
    from naturaldreamer.agent import load_agent

    agent = load_agent(path, device)
    if agent.config.env.name != "hockey":
        raise ValueError(f"{path} was trained on {agent.config.env.name}, not hockey; this "
                         f"command plays hockey games")
    return agent


def _evaluate(args: argparse.Namespace) -> int:
    from naturaldreamer.evaluation import hockey_record

    agent = _hockey_agent(args.path, args.device)
    for opponent in args.opponent:
        print(hockey_record(agent, opponent, args.games, explore=args.explore, seed=args.seed))
    return 0


def _play(args: argparse.Namespace) -> int:
    from naturaldreamer.agent import Policy
    from naturaldreamer.evaluation import record_game, save_gif

    policy = Policy(_hockey_agent(args.path, args.device))
    frames, winner = record_game(policy, args.opponent, args.seed)
    save_gif(frames, args.out)
    outcome = {1: "the agent won", 0: "a draw", -1: "the agent lost"}[winner]
    print(f"wrote {args.out}: {len(frames)} frames, {outcome}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from naturaldreamer.sweep import sweep

    print(sweep(args.config, args.seeds, args.grid, args.out, args.address, args.cpus_per_trial,
                args.gpus_per_trial, args.num_cpus, metric=args.metric))
    print(f"summary.csv and learning_curves.png are in {args.out}/")
    return 0


def _probe(args: argparse.Namespace) -> int:
    import torch

    from naturaldreamer.agent import load_agent
    from naturaldreamer.probe import format_table, probe, probe_metrics

    # The agent's networks are small: one CPU thread is faster than several competing ones.
    torch.set_num_threads(args.threads)
    agent = load_agent(args.path, args.device)
    result = probe(agent, agent.config, args.games, args.seed, args.explore)
    print(format_table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(probe_metrics(result), indent=1) + "\n")
        print(f"the numbers, as metrics.csv names them: {args.json}")
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
    train.add_argument("--config", help=f"YAML config (default: {DEFAULT_CONFIG})")
    train.add_argument("--steps", type=_positive_int,
                       help="environment steps (overrides train.steps)")
    train.add_argument("--device", help="cpu, cuda, cuda:1, or auto (default: from config)")
    train.add_argument("--out", help="run directory (default: runs/CONFIG_NAME)")
    train.add_argument("--init", metavar="AGENT_FILE",
                       help="start from the networks of this policy or checkpoint file (fresh "
                            "optimisers and replay), e.g. agents/hockey.pt")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR exactly, from its checkpoint and config")
    train.add_argument("--force", action="store_true",
                       help="replace the run already in --out instead of refusing")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="win rates of a hockey agent")
    evaluate.add_argument("path", help="agent file, e.g. agents/hockey.pt or runs/X/policy.pt")
    evaluate.add_argument("--opponent", choices=["weak", "strong"], action="append",
                          help="scripted opponent (repeatable; default: weak and strong)")
    evaluate.add_argument("--games", type=_positive_int, default=200,
                          help="games per opponent")
    evaluate.add_argument("--seed", type=int, default=10_000, help="seed of the first game")
    evaluate.add_argument("--explore", action="store_true",
                          help="sample actions instead of the deterministic mode")
    evaluate.add_argument("--device", default="cpu")
    evaluate.set_defaults(run=_evaluate)

    play = commands.add_parser("play", help="render one hockey game to a GIF")
    play.add_argument("path", help="agent file, e.g. agents/hockey.pt")
    play.add_argument("--opponent", choices=["weak", "strong"], default="strong")
    play.add_argument("--out", default="game.gif", help="output GIF (default: game.gif)")
    play.add_argument("--seed", type=int, default=0)
    play.add_argument("--device", default="cpu")
    play.set_defaults(run=_play)

    probe = commands.add_parser("probe", help="what a hockey agent's world model and "
                                              "critic know, measured on real games")
    probe.add_argument("path", help="agent file, e.g. agents/hockey.pt")
    probe.add_argument("--games", type=int, default=20, help="games per opponent")
    probe.add_argument("--seed", type=int, default=10_000,
                       help="seed of the first game")
    probe.add_argument("--explore", action="store_true",
                       help="sample actions instead of the deterministic mode")
    probe.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    probe.add_argument("--device", default="cpu")
    probe.add_argument("--json", metavar="PATH", help="also write the numbers as JSON, "
                                                      "named like metrics.csv's probe/ columns")
    probe.set_defaults(run=_probe)

    sweep = commands.add_parser("sweep", help="train a grid of settings × seeds on Ray Tune")
    sweep.add_argument("--config", default="configs/pendulum.yaml",
                       help="YAML config every trial starts from (default: configs/pendulum.yaml)")
    sweep.add_argument("--seeds", type=int, required=True,
                       help="seeds per setting: train.seed, train.seed + 1, ...")
    sweep.add_argument("--grid", action="append", default=[], metavar="SECTION.KEY=V1,V2",
                       help="values to try for one config key (repeatable: all combinations)")
    sweep.add_argument("--out", required=True,
                       help="sweep directory: one run directory per trial, and the summary")
    sweep.add_argument("--address", help="join the Ray cluster at this address ('auto': the "
                                         "one `ray start --head` started); default: local")
    sweep.add_argument("--cpus-per-trial", type=float, default=1)
    sweep.add_argument("--gpus-per-trial", type=float, default=0)
    sweep.add_argument("--num-cpus", type=int,
                       help="CPUs of the local Ray instance (default: all cores)")
    sweep.add_argument("--metric", default="eval/return",
                       help="metrics.csv column to summarise (default: eval/return)")
    sweep.set_defaults(run=_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "evaluate" and not args.opponent:
        args.opponent = ["weak", "strong"]
    try:
        return args.run(args)
    except (ValueError, OSError, RuntimeError, ImportError) as error:
        # What a reader can get wrong (config, paths, files, devices): one line, no traceback.
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
