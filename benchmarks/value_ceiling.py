"""What the critic is estimating, measured: the real value of a state by Monte Carlo.

Run: python benchmarks/value_ceiling.py [--agent agents/hockey.pt] [--games 50] [--branches 16]

The critic estimates v(s) = E[G | s], the expected discounted return of the sampled policy from
model state s. The probe compares it with one real return G per state, and one return is a
noisy draw around v(s). This script measures how noisy. The agent plays --games games with
sampled actions against each scripted opponent. At a few random steps of each game, the game
is replayed from its seed up to that step (the environment is deterministic given its seed and
the actions), and it is played on --branches times from there with fresh samples of the actions,
from the agent's model state as it was. The mean of those returns estimates v(s).

It prints, over those states:
- the critic against the one real return of the recorded game (what the probe measures);
- the Monte-Carlo value against the same one return: how well the real value predicts a single
  return, near the best any estimate can do (it is a little low because the mean of a finite
  number of branches is itself noisy; and a little high because the branches share the
  game's hidden random draws and the puck's spin, which the model state does not show);
- the ceiling that noise sets, sqrt(between-state variance / total variance) of the returns,
  the between-state part with the branches' own spread taken out;
- the critic against the Monte-Carlo value: how well the critic knows the value.
Not a pass/fail test.
"""

import argparse

import numpy as np
import torch

from naturaldreamer.agent import Agent, Carry, load_agent
from naturaldreamer.rssm import State
from naturaldreamer.train import build_env


def _env(agent: Agent, opponent: str):
    return build_env(agent.config.env, opponent=opponent, mode="normal", shaping=0.0,
                     potential=0.0)


@torch.no_grad()
def play_game(agent: Agent, opponent: str, seed: int) -> dict:
    """One game with sampled actions from `reset(seed=seed)`: its observations (T+1, O),
    actions (T, A), the rewards received on arriving in each observation (T+1,), and the model
    state after each observation but the last (a State of batch T)."""
    env = _env(agent, opponent)
    obs, _ = env.reset(seed=seed)
    carry, first = agent.initial_carry(1), True
    observations, actions, rewards, states = [obs], [], [0.0], []
    done = False
    while not done:
        action, carry = agent.act(np.asarray(obs, np.float32)[None], np.array([first]), carry)
        states.append(carry.state)
        actions.append(action[0])
        obs, reward, terminated, truncated, _ = env.step(action[0])
        observations.append(obs)
        rewards.append(float(reward))
        first, done = False, terminated or truncated
    env.close()
    state = State(*(torch.cat([getattr(s, name) for s in states]) for name in
                    ("deter", "stoch", "logits")))
    return {"obs": np.array(observations), "actions": np.array(actions), "rewards": np.array(rewards), "state": state}


@torch.no_grad()
def branch_returns(agent: Agent, opponent: str, seed: int, game: dict, t: int,
                   branches: int) -> np.ndarray:
    """The discounted returns (branches,) of playing on from step t of `game`, each branch
    replaying the game to t and then sampling its own actions from the model state at t."""
    discount = agent.config.behavior.discount
    envs = [_env(agent, opponent) for _ in range(branches)]
    for env in envs:
        obs, _ = env.reset(seed=seed)
        for action in game["actions"][:t]:
            obs = env.step(action)[0]
        assert np.array_equal(obs, game["obs"][t]), "the replay did not reproduce the game"
    state = State(*(x[t:t + 1].repeat(branches, *[1] * (x.dim() - 1))
                    for x in (game["state"].deter, game["state"].stoch, game["state"].logits)))
    action = agent.behavior.actor(state.feat()).sample()[1]
    carry = Carry(state, action)
    returns, weight = np.zeros(branches), np.ones(branches)
    live = np.ones(branches, bool)
    obs = np.zeros((branches, agent.obs_dim), np.float32)
    while live.any():
        for i in np.flatnonzero(live):
            o, reward, terminated, truncated, _ = envs[i].step(carry.action[i].cpu().numpy())
            obs[i], returns[i] = o, returns[i] + weight[i] * reward
            weight[i] *= discount
            live[i] = not (terminated or truncated)
        _, carry = agent.act(obs, np.zeros(branches, bool), carry)
    for env in envs:
        env.close()
    return returns


def discounted(rewards: np.ndarray, t: int, discount: float) -> float:
    """G_t = Σ_{j>t} γ^(j−t−1) r_j, r_j received on arriving in observation j."""
    following = rewards[t + 1:]
    return float(following @ discount ** np.arange(len(following)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="agents/hockey.pt")
    parser.add_argument("--games", type=int, default=50, help="games per opponent")
    parser.add_argument("--points", type=int, default=3, help="states per game")
    parser.add_argument("--branches", type=int, default=16)
    parser.add_argument("--seed", type=int, default=90_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    agent = load_agent(args.agent)
    discount = agent.config.behavior.discount
    rng = np.random.default_rng(args.seed)
    value, single, means, spreads = [], [], [], []
    for opponent in ("weak", "strong"):
        for g in range(args.games):
            seed = args.seed + g
            game = play_game(agent, opponent, seed)
            steps = len(game["actions"])
            for t in rng.choice(steps, min(args.points, steps), replace=False):
                r = branch_returns(agent, opponent, seed, game, int(t), args.branches)
                with torch.no_grad():
                    value.append(float(agent.behavior.critic(game["state"].feat()[t:t + 1])))
                single.append(discounted(game["rewards"], int(t), discount))
                means.append(r.mean())
                spreads.append(r.var(ddof=1))
    value, single, means, spreads = map(np.array, (value, single, means, spreads))
    within = spreads.mean()
    between = max(means.var(ddof=1) - within / args.branches, 0.0)
    corr = lambda a, b: float(np.corrcoef(a, b)[0, 1])  # noqa: E731
    print(f"{len(value)} states of {2 * args.games} sampled games ({args.games} per opponent), "
          f"{args.branches} branches each")
    print(f"  return: mean {single.mean():.2f}, spread within a state (std) {within ** 0.5:.2f}, "
          f"between states {between ** 0.5:.2f}")
    print(f"  critic vs one real return:           {corr(value, single):.3f}")
    print(f"  Monte-Carlo value vs one real return: {corr(means, single):.3f}")
    print(f"  ceiling sqrt(between / total):         {(between / (between + within)) ** 0.5:.3f}")
    print(f"  critic vs Monte-Carlo value:          {corr(value, means):.3f}")
    print(f"  mean critic {value.mean():.2f}, mean Monte-Carlo value {means.mean():.2f}")


if __name__ == "__main__":
    main()
