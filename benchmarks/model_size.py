"""Which world model for hockey? Sizes compared on the same play at equal training time.

Run: python benchmarks/model_size.py [--agent agents/hockey.pt] [--steps 300000]
         [--base-updates 4000] [--games 40]

1. The agent in --agent plays --steps env steps of training games (configs/hockey.yaml's
   modes and opponents, sampled actions) into one replay buffer, shared by every variant.
2. It also plays --games plain games against each scripted opponent, held out for the probe
   (whose table for the agent itself is printed first).
3. Each variant changes one size of configs/hockey.yaml. Its full update (world model and
   behaviour, eager) is timed first, so that each variant trains for the same wall-clock: the
   base trains --base-updates, a variant whose update takes r times as long trains
   --base-updates / r. Only the world model trains here (`WorldModel.update` on replayed
   batches): the probe's world-model numbers are what the size is chosen by.
4. Each trained model sees the held-out games with its own posteriors
   (`probe.observe_recording`) and the probe's table rows are printed side by side.
--warm starts every variant from the agent's own networks and trains each for --base-updates
(for variants that keep the sizes): what a change does to a trained model, not to a fresh one.
--time-only times the variants' full updates alone (a minute), to check step 3's ratios on a
quiet core. Not a pass/fail test; the numbers go into configs/hockey.yaml's comments.
"""

import argparse
import time

import numpy as np
import torch

from naturaldreamer.agent import Agent, load_agent
from naturaldreamer.config import load_config
from naturaldreamer.probe import format_table, measure, observe_recording, probe
from naturaldreamer.replay import Replay
from naturaldreamer.train import Collector, training_envs
from naturaldreamer.world_model import Batch
from train_speed import time_updates  # benchmarks/, the script's own directory

def puck_weight(weight: float) -> list[float]:
    """Decoder weights that count the puck's position (observation entries 12, 13) `weight`
    times and every other entry once."""
    return [1.0] * 12 + [weight, weight] + [1.0] * 4


VARIANTS = {
    "base": {},
    "classes 16": {"world_model.classes": 16},
    "units 128": {"world_model.units": 128, "behavior.units": 128},
    "deter 512": {"world_model.deter": 512},
    "batch length 64": {"replay.batch_length": 64},
    # not sizes: the reconstruction's weight against the KL terms, all of it or the puck's
    # position alone (the puck's precision, chapter 10)
    "rec scale 3": {"world_model.rec_scale": 3.0},
    "puck weight 10": {"world_model.obs_weights": puck_weight(10)},
    "puck weight 100": {"world_model.obs_weights": puck_weight(100)},
    "puck weight 1000": {"world_model.obs_weights": puck_weight(1000)},
}


def collect(agent: Agent, config, steps: int) -> Replay:
    """`steps` env steps of the training games, played by `agent` with sampled actions."""
    envs, _ = training_envs(config, np.random.default_rng(0))
    replay = Replay(agent.obs_dim, agent.action_dim, len(envs), config.replay)
    collector = Collector(envs, seed=0)
    carry = agent.initial_carry(len(envs))
    for _ in range(steps // len(envs)):
        carry = collector.step(agent, carry, replay)
    for env in envs:
        env.close()
    return replay


def batch_tensors(replay: Replay, config) -> Batch:
    data = replay.sample(config.replay.batch_size, config.replay.batch_length)
    return Batch(**{key: torch.as_tensor(data[key]) for key in
                    ("obs", "action", "reward", "is_first", "is_terminal", "is_last")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="agents/hockey.pt")
    parser.add_argument("--config", default="configs/hockey.yaml")
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--base-updates", type=int, default=4000)
    parser.add_argument("--games", type=int, default=40)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated variants to train (default: all); the first "
                             "listed gets --base-updates")
    parser.add_argument("--probe-every", type=int, default=0, metavar="N",
                        help="also probe every N world-model updates and print one line")
    parser.add_argument("--warm", action="store_true",
                        help="start each variant from the agent's networks, equal updates")
    parser.add_argument("--time-only", action="store_true",
                        help="only time each variant's full update (on replay of random play)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    player = load_agent(args.agent)
    base = load_config(args.config, {"train.compile": False})
    if args.time_only:
        replay = collect(Agent(player.obs_dim, player.action_dim, base), base, 16_000)
        for name, overrides in VARIANTS.items():
            config = load_config(args.config, {"train.compile": False, **overrides})
            agent = Agent(player.obs_dim, player.action_dim, config)
            seconds = time_updates(agent, replay, repeats=9, warmup=1)
            print(f"{name}: full update {1000 * seconds:.0f} ms", flush=True)
        return
    start = time.perf_counter()
    replay = collect(player, base, args.steps)
    shipped = probe(player, base, games=args.games, keep_recording=True)
    held_out = shipped.recording
    print(f"{len(replay)} replayed steps and {len(held_out.obs)} held-out steps in "
          f"{time.perf_counter() - start:.0f} s; the probe of {args.agent} itself:\n"
          f"{format_table(shipped)}\n", flush=True)

    results = {}
    base_seconds = None
    names = args.variants.split(",")
    unknown = set(names) - set(VARIANTS)
    if unknown:
        parser.error(f"--variants: unknown {sorted(unknown)}; choose from {list(VARIANTS)}")
    for name in names:
        overrides = VARIANTS[name]
        config = load_config(args.config, {"train.compile": False, **overrides})
        torch.manual_seed(0)
        agent = Agent(player.obs_dim, player.action_dim, config)
        seconds = time_updates(agent, replay, repeats=9, warmup=1)
        base_seconds = base_seconds or seconds
        updates = round(args.base_updates * (1 if args.warm else base_seconds / seconds))
        torch.manual_seed(1)
        agent = Agent(player.obs_dim, player.action_dim, config)
        if args.warm:
            agent.load_state_dict(player.state_dict())
        start = time.perf_counter()
        losses = []
        for update in range(updates):
            metrics, _ = agent.world_model.update(batch_tensors(replay, config))
            if update >= updates - 200:
                losses.append(float(metrics["world/loss"]))
            if args.probe_every and (update + 1) % args.probe_every == 0:
                now = measure(agent, config, observe_recording(agent, held_out), args.games, False)
                print(f"{name} after {update + 1} updates: puck position posterior "
                      f"{now.reconstruction['puck position']:.3f}, one step ahead "
                      f"{now.prediction[1]['puck position']:.3f} (copy "
                      f"{now.copy_baseline[1]['puck position']:.3f}); continue < 0.5 on "
                      f"{now.continue_terminal_below:.0%} of real ends", flush=True)
        trained = time.perf_counter() - start
        result = measure(agent, config, observe_recording(agent, held_out), args.games, False)
        results[name] = (seconds, updates, float(np.mean(losses)), result)
        print(f"{name}: full update {1000 * seconds:.0f} ms, {updates} world-model updates "
              f"in {trained:.0f} s", flush=True)

    names = list(results)
    print("\n" + f"{'':<34}" + "".join(f"{n:>16}" for n in names))

    def row(label: str, values: list, form: str = "{:.3f}") -> None:
        print(f"{label:<34}" + "".join(f"{form.format(v):>16}" for v in values))

    row("full update, ms", [1000 * results[n][0] for n in names], "{:.0f}")
    row("world-model updates", [results[n][1] for n in names], "{:d}")
    row("world loss, last 200 updates", [results[n][2] for n in names])
    for group in ("own player", "opponent", "puck position", "puck velocity"):
        row(f"{group}: posterior", [results[n][3].reconstruction[group] for n in names])
    for k in (1, 5, 15):
        copy = results[names[0]][3].copy_baseline[k]["puck position"]
        row(f"puck position k={k} (copy {copy:.3f})",
            [results[n][3].prediction[k]["puck position"] for n in names])
    for row_index, goal in enumerate(results[names[0]][3].goals):
        if goal.window == 3:
            row(f"goal k=3 {goal.side} (smoothed {goal.smoothed:+.2f})",
                [results[n][3].goals[row_index].predicted for n in names], "{:+.2f}")
    row("continue < 0.5 on terminal steps",
        [results[n][3].continue_terminal_below for n in names], "{:.0%}")
    row("continue > 0.5 on other steps",
        [results[n][3].continue_other_above for n in names], "{:.1%}")


if __name__ == "__main__":
    main()
