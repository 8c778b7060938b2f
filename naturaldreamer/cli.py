"""The command line: `python -m naturaldreamer COMMAND ...`."""

import argparse
from pathlib import Path

from naturaldreamer import __version__


def _train(args: argparse.Namespace) -> int:
    from naturaldreamer.config import load_config
    from naturaldreamer.train import train

    out = Path(args.resume or args.out or f"runs/{Path(args.config).stem}")
    config_path = out / "config.yaml" if args.resume else args.config
    if args.resume and not config_path.is_file():
        raise FileNotFoundError(f"cannot resume: {out} has no config.yaml; pass the directory "
                                f"of an earlier run (it holds config.yaml and checkpoint.pt)")
    overrides = {}
    if args.steps is not None:
        overrides["train.steps"] = args.steps
    if args.device is not None:
        overrides["train.device"] = args.device
    config = load_config(config_path, overrides)
    train(config, out, resume=bool(args.resume))
    print(f"done: metrics, plots, checkpoint and policy are in {out}/")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from naturaldreamer.agent import load_agent
    from naturaldreamer.evaluation import hockey_record

    agent = load_agent(args.path, args.device)
    for opponent in args.opponent:
        print(hockey_record(agent, opponent, args.games, explore=args.explore, seed=args.seed))
    return 0


def _play(args: argparse.Namespace) -> int:
    from naturaldreamer.agent import load_policy
    from naturaldreamer.evaluation import record_game, save_gif

    frames, winner = record_game(load_policy(args.path, args.device), args.opponent, args.seed)
    save_gif(frames, args.out)
    outcome = {1: "the agent won", 0: "a draw", -1: "the agent lost"}[winner]
    print(f"wrote {args.out}: {len(frames)} frames, {outcome}")
    return 0


def _probe(args: argparse.Namespace) -> int:
    import torch

    from naturaldreamer.agent import load_agent
    from naturaldreamer.probe import format_table, probe

    # The agent's networks are small: one CPU thread is faster than several competing ones.
    torch.set_num_threads(args.threads)
    agent = load_agent(args.path, args.device)
    print(format_table(probe(agent, agent.config, args.games, args.seed, args.explore)))
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

    evaluate = commands.add_parser("evaluate", help="win rates of a hockey agent")
    evaluate.add_argument("path", help="agent file, e.g. agents/hockey.pt or runs/X/policy.pt")
    evaluate.add_argument("--opponent", choices=["weak", "strong"], action="append",
                          help="scripted opponent (repeatable; default: weak and strong)")
    evaluate.add_argument("--games", type=int, default=200, help="games per opponent")
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
    probe.set_defaults(run=_probe)
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
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}")
        return 2
