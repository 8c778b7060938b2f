"""How much of the real return can the model state predict at all? The critic against a
network fit to the real returns themselves.

Run: python benchmarks/critic_ceiling.py [--agent agents/hockey.pt] [--games 100]

The agent plays --games plain games against each scripted opponent, once with deterministic
actions and once sampling them, as the probe does (`probe(..., keep_recording=True)`). The
games are split in three: on half, a small MLP learns to predict the real discounted return
directly from the model's posterior features (squared error); on a quarter it is early-stopped;
on the last quarter its correlation with the real return is printed next to the critic's, on the
same steps. A network that is fit to the very returns it is judged on, from the same states, and
still does no better than the critic says that the critic's correlation is limited by how well
the state predicts the game's outcome, not by how the critic learns. Not a pass/fail test.
"""

import argparse

import numpy as np
import torch
from torch import nn

from naturaldreamer.agent import Agent, load_agent
from naturaldreamer.probe import discounted_returns, probe


def steps_and_returns(agent: Agent, games: int, seed: int,
                      explore: bool) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Posterior features (N, feat), real discounted returns (N,) and episode ids (N,) of the
    probe's games, without each episode's last state (nothing follows it), as the probe counts."""
    r = probe(agent, agent.config, games=games, seed=seed, explore=explore,
              keep_recording=True).recording
    returns = discounted_returns(r.reward, r.episode, agent.config.behavior.discount)
    alive = r.position < r.length - 1
    with torch.no_grad():
        feat = r.state.feat()[torch.as_tensor(alive)]
    return feat, torch.as_tensor(returns[alive], dtype=torch.float32), r.episode[alive]


def fit_returns(feat: torch.Tensor, returns: torch.Tensor, train: torch.Tensor,
                stop: torch.Tensor, epochs: int) -> nn.Module:
    """An MLP from features to return, trained on `train` steps and kept at the epoch whose
    correlation on the `stop` steps is best."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(feat.shape[1], 128), nn.SiLU(), nn.Linear(128, 128),
                        nn.SiLU(), nn.Linear(128, 1))
    optimizer = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    best, best_state = -np.inf, None
    train_index = torch.nonzero(train).squeeze(1)
    for _ in range(epochs):
        for batch in train_index[torch.randperm(len(train_index))].split(256):
            loss = ((net(feat[batch]).squeeze(1) - returns[batch]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            score = correlation(net(feat[stop]).squeeze(1), returns[stop])
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    return net


def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(np.corrcoef(a.numpy(), b.numpy())[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="agents/hockey.pt")
    parser.add_argument("--games", type=int, default=100, help="games per opponent")
    parser.add_argument("--seed", type=int, default=70_000)
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    agent = load_agent(args.agent)
    for explore in (False, True):
        feat, returns, episode = steps_and_returns(agent, args.games, args.seed, explore)
        games = np.unique(episode)
        np.random.default_rng(0).shuffle(games)
        quarter = len(games) // 4
        part = {name: torch.as_tensor(np.isin(episode, chosen)) for name, chosen in
                (("fit", games[2 * quarter:]), ("stop", games[quarter:2 * quarter]),
                 ("test", games[:quarter]))}
        net = fit_returns(feat, returns, part["fit"], part["stop"], args.epochs)
        test = part["test"]
        with torch.no_grad():
            fitted = correlation(net(feat[test]).squeeze(1), returns[test])
            critic = correlation(agent.behavior.critic(feat[test]), returns[test])
            everywhere = correlation(agent.behavior.critic(feat), returns)
        actions = "sampled" if explore else "deterministic"
        print(f"{actions:>13} actions, {2 * args.games} games ({len(returns)} steps): critic "
              f"{everywhere:.3f} on all of them; on the {int(test.sum())} steps of the test "
              f"quarter: critic {critic:.3f}, MLP fit to the real returns {fitted:.3f}",
              flush=True)


if __name__ == "__main__":
    main()
