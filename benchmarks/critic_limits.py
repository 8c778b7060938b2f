"""What limits the critic: its input, its updates, or the dreams it learns from?

Run: python benchmarks/critic_limits.py [--agent agents/hockey.pt] [--games 800] [--branches 8]

As in value_ceiling.py, the agent plays --games sampled games against each scripted opponent,
and at three random steps of each the real value v(s) of its sampled policy (with the
training's shaping) is estimated by playing on --branches times from the replayed game. Then,
on those states, it prints each of these against v(s):
- the critic;
- a small MLP fit to v(s) from the critic's own input, the model state, on 60 % of the games
  (early-stopped on 20 %, judged on the last 20 %): what the model state holds about the value;
  and the same fit to the one real return that followed each state, a target as noisy as the
  critic's real lesson: what a learner can get out of such targets on this many states;
- both fits again with a fresh network of the critic's own kind (its size, its two-hot head
  over symlog bins, its loss) in place of the MLP: whether that kind of network can learn it;
  and the one-return fit once more on the model state as the critic sees it, not standardised;
- the MLP's fit to v(s) from the game's true 18 numbers, and from them with the clock (the step);
- the model's own Monte-Carlo value: long dreams from the model state with the actor (no
  critic), their predicted rewards summed with the predicted continues and the discount;
- the critic's training target at the state: the 15-step dream's λ-return, bootstrapped by the
  critic, as the behaviour loss computes it (chapter 7).
Not a pass/fail test.
"""

import argparse

import numpy as np
import torch

from value_ceiling import sample_states  # benchmarks/, the script's own directory
from naturaldreamer.agent import Agent, load_agent
from naturaldreamer.behavior import lambda_returns
from naturaldreamer.networks import TwoHotHead
from naturaldreamer.rssm import State


def fit_mlp(x: np.ndarray, y: np.ndarray, split: dict, seed: int,
            critic_shape: tuple[int, int] | None = None, standardize: bool = True) -> np.ndarray:
    """Predictions (N,) of a 2×256 SiLU MLP fit to y on split['train'] by mean squared error,
    early-stopped on split['val'] (best of three initialisations). With critic_shape
    (units, layers) the network is a fresh one of the critic's own kind instead, its two-hot
    head over the 255 symlog bins fit by its two-hot loss, with everything else the same. The
    inputs are standardised on the training states unless `standardize` is False."""
    if standardize:
        x = (x - x[split["train"]].mean(0)) / (x[split["train"]].std(0) + 1e-6)
    inputs, targets = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    train, val = np.flatnonzero(split["train"]), torch.tensor(split["val"])
    rng, best = np.random.default_rng(seed), (np.inf, None)
    for init in range(3):
        torch.manual_seed(seed + init)
        if critic_shape is None:
            net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.SiLU(),
                                      torch.nn.Linear(256, 256), torch.nn.SiLU(),
                                      torch.nn.Linear(256, 1))
            predict = lambda v: net(v)[:, 0]  # noqa: E731
            loss_of = lambda v, t: ((predict(v) - t) ** 2).mean()  # noqa: E731
        else:
            net = predict = TwoHotHead(x.shape[1], *critic_shape)
            loss_of = lambda v, t: net.loss(v, t).mean()  # noqa: E731
        optimizer = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-3)
        since_best = 0
        while since_best <= 30:
            rng.shuffle(train)
            for i in range(0, len(train), 128):
                batch = train[i:i + 128]
                loss = loss_of(inputs[batch], targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                val_loss = float(loss_of(inputs[val], targets[val]))
                since_best += 1
                if val_loss < best[0]:
                    best, since_best = (val_loss, predict(inputs).numpy()), 0
    return best[1]


def dream_return(rewards: torch.Tensor, continues: torch.Tensor,
                 discount: float) -> torch.Tensor:
    """The discounted sum of a dream's predicted rewards (N, H), each step weighted by the
    chance that play is still going: Σ_t γ^t (Π_{j<t} c_j) r_t → (N,)."""
    alive = torch.cumprod(torch.cat([torch.ones_like(continues[:, :1]),
                                     discount * continues[:, :-1]], 1), 1)
    return (alive * rewards).sum(1)


@torch.no_grad()
def dreamed_values(agent: Agent, feat: np.ndarray, horizon: int,
                   samples: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """From each model state (N, F): the model's own Monte-Carlo value over `samples` dreams
    of `horizon` steps, Σ_t γ^t (Π_{j<t} c_j) r_t, and the critic's training target there, the
    λ-return of the behaviour's own horizon (both averaged over the samples, (N,) each)."""
    rssm, behavior, c = agent.world_model.rssm, agent.behavior, agent.config.behavior
    own, target = [], []
    for chunk in torch.tensor(feat).split(250):
        f = chunk.repeat_interleave(samples, 0)
        start = State(f[:, :rssm.deter_dim], f[:, rssm.deter_dim:],  # logits unused when dreaming
                      torch.zeros(len(f), rssm.stoch_dim, rssm.classes))
        states, _ = rssm.imagine(start, lambda s: behavior.actor(s.feat()).sample(), horizon)
        dream = states.feat()
        rewards = agent.world_model.reward_predictor(dream[:, 1:])
        continues = agent.world_model.continue_predictor(dream[:, 1:])
        own.append(dream_return(rewards, continues, c.discount).view(-1, samples).mean(1))
        h = c.horizon
        returns = lambda_returns(rewards[:, :h], behavior.critic(dream[:, :h + 1]),
                                 continues[:, :h], c.discount, c.lam)
        target.append(returns[:, 0].view(-1, samples).mean(1))
    return torch.cat(own).numpy(), torch.cat(target).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="agents/hockey.pt")
    parser.add_argument("--games", type=int, default=800, help="games per opponent")
    parser.add_argument("--branches", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=200, help="of the model's own dreams")
    parser.add_argument("--seed", type=int, default=200_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    agent = load_agent(args.agent)
    s = sample_states(agent, args.games, 3, args.branches, args.seed)
    s["value"] = s["branches"][:, 1].mean(-1)  # of the shaped return, which the critic learns
    games = np.unique(s["game"])
    np.random.default_rng(args.seed).shuffle(games)
    cut = np.cumsum([0, 0.6, 0.2, 0.2]) * len(games)
    split = {name: np.isin(s["game"], games[int(a):int(b)])
             for name, a, b in zip(("train", "val", "test"), cut[:-1], cut[1:])}
    test = split["test"]
    corr = lambda a, b: float(np.corrcoef(a[test], b[test])[0, 1])  # noqa: E731
    clock = s["step"][:, None] / 250.0
    own, target = dreamed_values(agent, s["feat"], args.horizon)
    shape = (agent.config.behavior.units, agent.config.behavior.critic_layers)
    print(f"{len(s['value'])} states of {2 * args.games} sampled games, {args.branches} branches "
          f"each; judged on the {test.sum()} states of the test games (a fifth)")
    print("correlation with the real (Monte-Carlo) value, mean value "
          f"{s['value'][test].mean():.2f}")
    for name, guess in (
            ("the critic", s["critic"]),
            ("MLP fit from the model state", fit_mlp(s["feat"], s["value"], split, 0)),
            ("MLP fit to one real return",
             fit_mlp(s["feat"], s["single"][:, 1], split, 0)),
            ("the critic's network fit to the value",
             fit_mlp(s["feat"], s["value"], split, 0, shape)),
            ("the critic's network fit to one real return",
             fit_mlp(s["feat"], s["single"][:, 1], split, 0, shape)),
            ("the same from the raw model state",
             fit_mlp(s["feat"], s["single"][:, 1], split, 0, shape, standardize=False)),
            ("MLP fit from the true observation", fit_mlp(s["obs"], s["value"], split, 0)),
            ("MLP fit from the observation and the step",
             fit_mlp(np.c_[s["obs"], clock], s["value"], split, 0)),
            (f"the model's own value ({args.horizon}-step dreams)", own),
            ("the critic's training target", target)):
        print(f"  {name:<45}{corr(guess, s['value']):.3f}   mean {guess[test].mean():6.2f}")
    print(f"the critic against its training target: {corr(s['critic'], target):.3f}")


if __name__ == "__main__":
    main()
