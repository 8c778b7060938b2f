"""What the critic is estimating, measured: the real value of a state by Monte Carlo.

Run: python benchmarks/value_ceiling.py [--agent agents/hockey.pt] [--games 100] [--branches 16]
       [--critic-updates N [--repval-scale S | --real-returns] [--lam L] [--critic-lr R]
        [--batch-length T] [--slowreg-scale S] [--fresh-critic] [--timeouts-end]]

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

With --critic-updates N it then asks whether the critic is short of training: it collects
--replay-steps of the agent's own training games, trains the critic alone for N more updates
(the usual update, with the world model's and the actor's learning rates set to zero, so the
dreams and the policy stay the same) and prints the critic against the same Monte-Carlo values
at four points on the way; --repval-scale sets the weight of the replay value loss (the
critic's lesson from the real rewards) for those updates instead of the agent's own (0.3).
With --real-returns the critic-only updates use no dreams at all: the critic learns only the
replay value loss, its λ-returns along the replayed games bootstrapped from its own value at
every state (TD(λ) on the agent's own play, which is on-policy here: `collect` plays the agent
itself), so whatever it learns comes from the real rewards and goals. For those updates:
- --lam, --critic-lr, --batch-length and --slowreg-scale set the λ of the critic's returns, its
  learning rate, the length of the replayed sequences and the weight of the slow-critic
  regulariser; with λ = 1 and sequences longer than a game (250 steps) the critic's targets are
  the real discounted returns, bootstrapped only where a sequence ends or a game times out;
- --fresh-critic starts from a newly initialised critic (and slow critic and optimiser state)
  instead of the trained one;
- --timeouts-end (with --real-returns) ends the critic's returns at a time-out as at a goal, so
  that it learns the return cut off at the time limit, the one measured here.
Not a pass/fail test.
"""

import argparse

import numpy as np
import torch

from model_size import batch_tensors, collect  # benchmarks/, the script's own directory
from naturaldreamer.agent import Agent, Carry, load_agent
from naturaldreamer.behavior import BehaviorLosses
from naturaldreamer.envs.shaping import potential
from naturaldreamer.networks import TwoHotHead
from naturaldreamer.optim import clip_by_agc
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
    return {"obs": np.array(observations), "actions": np.array(actions),
            "rewards": np.array(rewards), "terminated": terminated, "state": state}


@torch.no_grad()
def branch_returns(agent: Agent, opponent: str, seed: int, game: dict, t: int,
                   branches: int) -> np.ndarray:
    """The discounted returns (2, branches) of playing on from step t of `game`, each branch
    replaying the game to t and then sampling its own actions from the model state at t: the
    game's own, and with the training's shaping term (`shaped_return`)."""
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
    live, goal = np.ones(branches, bool), np.zeros(branches, bool)
    obs = np.zeros((branches, agent.obs_dim), np.float32)
    while live.any():
        for i in np.flatnonzero(live):
            o, reward, terminated, truncated, _ = envs[i].step(carry.action[i].cpu().numpy())
            obs[i], returns[i] = o, returns[i] + weight[i] * reward
            weight[i] *= discount
            live[i], goal[i] = not (terminated or truncated), terminated
        _, carry = agent.act(obs, np.zeros(branches, bool), carry)
    for env in envs:
        env.close()
    shaping = agent.config.env.options.get("potential", 0.0)
    shaped = [shaped_return(g, game["obs"][t], o, ended, w, shaping)
              for g, o, ended, w in zip(returns, obs, goal, weight)]
    return np.array([returns, shaped])


def shaped_return(plain: float, first_obs: np.ndarray, last_obs: np.ndarray, goal: bool,
                  weight: float, scale: float) -> float:
    """The return with the potential-based shaping the agent trains with: the shaping terms
    γΦ(s_j) − Φ(s_(j−1)) telescope to γ^n Φ(s_last) − Φ(s_t), Φ = 0 at a terminal s_last
    (`goal`: a goal, or with the hockey env's clock also a time-out), where `weight` is γ^n for
    the n steps from s_t to s_last (chapter 10)."""
    last = 0.0 if goal else potential(last_obs, scale)
    return plain + weight * last - potential(first_obs, scale)


def discounted(rewards: np.ndarray, t: int, discount: float) -> float:
    """G_t = Σ_{j>t} γ^(j−t−1) r_j, r_j received on arriving in observation j."""
    following = rewards[t + 1:]
    return float(following @ discount ** np.arange(len(following)))


def variance_parts(returns: np.ndarray) -> tuple[float, float]:
    """Split the spread of branch returns (states, branches) into the variance of the states'
    real values (between) and that of a return around its state's value (within): within is
    the mean of the per-state sample variances, and the variance of the branch means is
    between + within / branches, so that part is taken out (floored at 0)."""
    within = float(returns.var(-1, ddof=1).mean())
    between = float(returns.mean(-1).var(ddof=1)) - within / returns.shape[-1]
    return max(between, 0.0), within


def sample_states(agent: Agent, games: int, points: int, branches: int, seed: int) -> dict:
    """`points` random states of each of `games` sampled games per opponent, game g played from
    reset(seed + g). Per state: the model features feat (N, F), observation obs (N, O), step,
    game index (N,), critic value (N,), the one real return of the recorded game single (N, 2)
    and the `branch_returns` (N, 2, branches), each plain and with the training's shaping."""
    discount = agent.config.behavior.discount
    shaping = agent.config.env.options.get("potential", 0.0)
    rng = np.random.default_rng(seed)
    found = {key: [] for key in ("feat", "obs", "step", "game", "critic", "single", "branches")}
    for k, opponent in enumerate(("weak", "strong")):
        for g in range(games):
            game = play_game(agent, opponent, seed + g)
            steps = len(game["actions"])
            for t in rng.choice(steps, min(points, steps), replace=False):
                t = int(t)
                found["branches"].append(branch_returns(agent, opponent, seed + g, game, t,
                                                        branches))
                feat = game["state"].feat()[t]
                with torch.no_grad():
                    found["critic"].append(float(agent.behavior.critic(feat[None])))
                plain = discounted(game["rewards"], t, discount)
                steps_left = discount ** (len(game["rewards"]) - 1 - t)
                found["single"].append([plain, shaped_return(
                    plain, game["obs"][t], game["obs"][-1], game["terminated"], steps_left,
                    shaping)])
                found["feat"].append(feat.numpy())
                found["obs"].append(game["obs"][t])
                found["step"].append(t)
                found["game"].append(k * games + g)
    return {key: np.array(values) for key, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", default="agents/hockey.pt")
    parser.add_argument("--games", type=int, default=100, help="games per opponent")
    parser.add_argument("--points", type=int, default=3, help="states per game")
    parser.add_argument("--branches", type=int, default=16)
    parser.add_argument("--seed", type=int, default=90_000)
    parser.add_argument("--critic-updates", type=int, default=0)
    parser.add_argument("--replay-steps", type=int, default=100_000)
    parser.add_argument("--repval-scale", type=float, default=None)
    parser.add_argument("--real-returns", action="store_true",
                        help="critic-only updates from the replayed games alone, no dreams")
    parser.add_argument("--lam", type=float, default=None)
    parser.add_argument("--critic-lr", type=float, default=None)
    parser.add_argument("--batch-length", type=int, default=None)
    parser.add_argument("--slowreg-scale", type=float, default=None)
    parser.add_argument("--fresh-critic", action="store_true")
    parser.add_argument("--timeouts-end", action="store_true")
    args = parser.parse_args()
    if args.timeouts_end and not args.real_returns:
        parser.error("--timeouts-end changes the real-return updates: add --real-returns")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    agent = load_agent(args.agent)
    shaping = agent.config.env.options.get("potential", 0.0)
    s = sample_states(agent, args.games, args.points, args.branches, args.seed)
    value, single = s["critic"], s["single"]
    means = s["branches"].mean(-1)
    corr = lambda a, b: float(np.corrcoef(a, b)[0, 1])  # noqa: E731
    print(f"{len(value)} states of {2 * args.games} sampled games ({args.games} per opponent), "
          f"{args.branches} branches each; mean critic {value.mean():.2f}")
    for i, name in enumerate(("the game's return", f"with the training's shaping (scale "
                                                   f"{shaping})")):
        between, within = variance_parts(s["branches"][:, i])
        print(f"{name}: mean {single[:, i].mean():.2f}, Monte-Carlo value mean "
              f"{means[:, i].mean():.2f}; spread within a state (std) {within ** 0.5:.2f}, "
              f"between states {between ** 0.5:.2f}")
        print(f"  critic vs one real return:            {corr(value, single[:, i]):.3f}")
        print(f"  Monte-Carlo value vs one real return: {corr(means[:, i], single[:, i]):.3f}")
        print(f"  ceiling sqrt(between / total):        "
              f"{(between / (between + within)) ** 0.5:.3f}")
        print(f"  critic vs Monte-Carlo value:          {corr(value, means[:, i]):.3f}")
    if args.critic_updates:
        if args.repval_scale is not None:
            agent.config.behavior.repval_scale = args.repval_scale
        if args.lam is not None:
            agent.config.behavior.lam = args.lam
        if args.fresh_critic:
            restart_critic(agent)
        if args.slowreg_scale is not None:
            agent.config.behavior.slowreg_scale = args.slowreg_scale
        if args.batch_length is not None:
            agent.config.replay.batch_length = args.batch_length
        if args.critic_lr is not None:
            for group in agent.behavior.critic_optimizer.param_groups:
                group["lr"] = args.critic_lr
        feat, target = torch.tensor(s["feat"]), means[:, 1]
        if args.real_returns:
            train_critic_on_replay(agent, feat, target, args.critic_updates, args.replay_steps,
                                   args.timeouts_end)
        else:
            train_critic_alone(agent, feat, target, args.critic_updates, args.replay_steps)


def train_critic_alone(agent: Agent, feat: torch.Tensor, target: np.ndarray, updates: int,
                       replay_steps: int) -> None:
    """More updates for the critic alone on the agent's own replayed games; prints its
    correlation with `target` (the Monte-Carlo values of the shaped return at `feat`)."""
    replay = collect(agent, agent.config, replay_steps)
    for optimizer in (agent.world_model.optimizer, agent.behavior.actor_optimizer):
        for group in optimizer.param_groups:
            group["lr"] = 0.0
    c = agent.config.replay
    for update in range(1, updates + 1):
        agent.train_step(replay.sample(c.batch_size, c.batch_length))
        report(agent, feat, target, update, updates, f"critic-only updates on {len(replay)}")


def train_critic_on_replay(agent: Agent, feat: torch.Tensor, target: np.ndarray, updates: int,
                           replay_steps: int, timeouts_end: bool = False) -> None:
    """Like `train_critic_alone`, but the critic learns from the replayed games alone: the
    package's replay value loss with no dream starts, so every return bootstraps from the
    critic, then the critic's own AGC-clipped step and the slow critic's follow. With
    `timeouts_end` a time-out ends a return as a goal does."""
    replay = collect(agent, agent.config, replay_steps)
    no_dreams = BehaviorLosses(None, None, {}, None, torch.zeros(0), torch.zeros(0, dtype=int))
    for update in range(1, updates + 1):
        batch = batch_tensors(replay, agent.config)
        with torch.no_grad():
            posterior = agent.world_model.loss(batch)[2]
        ends = batch.is_last if timeouts_end else batch.is_terminal
        loss, _ = agent.behavior.replay_value_loss(posterior.feat(), batch.reward, batch.is_last,
                                                   ends, no_dreams)
        agent.behavior.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_by_agc(agent.behavior.critic.parameters(), agent.behavior.config.agc)
        agent.behavior.critic_optimizer.step()
        agent.behavior.update_slow_critic()
        report(agent, feat, target, update, updates, f"real-return updates on {len(replay)}")


def restart_critic(agent: Agent) -> None:
    """Give the critic and the slow critic the weights of a new critic, and its optimiser an
    empty state, as at the start of training."""
    behavior = agent.behavior
    fresh = TwoHotHead(agent.world_model.rssm.feat_dim, behavior.config.units,
                       behavior.config.critic_layers).state_dict()
    behavior.critic.load_state_dict(fresh)
    behavior.slow_critic.load_state_dict(fresh)
    behavior.critic_optimizer.state.clear()


def report(agent: Agent, feat: torch.Tensor, target: np.ndarray, update: int, updates: int,
           what: str) -> None:
    """Print the critic against `target` at four points of `updates`."""
    if update % max(updates // 4, 1) == 0:
        with torch.no_grad():
            value = agent.behavior.critic(feat).numpy()
        print(f"after {update} {what} replayed steps: critic vs Monte-Carlo value (shaped) "
              f"{np.corrcoef(value, target)[0, 1]:.3f}, mean critic {value.mean():.2f}",
              flush=True)


if __name__ == "__main__":
    main()
