"""What does the model know? A probe of a hockey agent on real games (chapter 10).

The agent plays plain games (NORMAL mode, sparse ±10 reward, no shaping) against both scripted
opponents. Every step keeps the observation, the action, the reward, the flags and the agent's
posterior state. From these the probe measures, in the game's own units:

- reconstruction: the decoder's output from the posterior against the observation;
- open-loop prediction k = 1, 5, 15 steps ahead: from the posterior at t the prior is rolled
  forward with the real actions a_t … a_{t+k−1} and decoded at t + k, next to the baseline
  that copies observation t as the guess for t + k;
- goals: the reward the model predicts over the k steps before a goal (k = 3, 8, 15),
  open-loop from k steps before with the real actions, against the real sparse reward and
  the smoothed reward the reward predictor learns (DreamSmooth, `replay.smoothing`);
- the continue predictor on real terminal and non-terminal steps;
- the critic's value at each posterior state against the real discounted return, over all
  steps and split by how the step's game ended (won, drawn at the time limit, lost). An agent
  trained with potential-based shaping learns the value of the shaped reward, which is the
  plain game's value minus Φ(s) wherever a game ends in a terminal state (the sum of the
  shaping telescopes to −Φ(s)); so the probe also correlates value + Φ(s) with the return.
  The correlation comes with a 95 % interval from resampling whole games: steps of one game
  are not independent draws, and a handful of drawn or lost games can move it by a tenth.

Errors are mean Euclidean distances over the entries of an observation group: for the puck
position, the distance in world units between the predicted and the real puck centre.
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from naturaldreamer.agent import Agent, Carry
from naturaldreamer.config import Config
from naturaldreamer.envs.shaping import potential
from naturaldreamer.replay import smooth_rewards
from naturaldreamer.rssm import State
from naturaldreamer.train import JUDGED_GAME, Collector, build_env
from naturaldreamer.world_model import WorldModel

# The hockey observation (shared/hockey SPEC §7): each player's position (world units, from
# the table centre), angle (rad), velocity (units/s) and angular velocity (rad/s); the puck's
# position and velocity; the two possession counters (steps).
GROUPS = {"own player": slice(0, 6), "opponent": slice(6, 12), "puck position": slice(12, 14),
          "puck velocity": slice(14, 16), "rest": slice(16, 18)}
HORIZONS = (1, 5, 15)
GOAL_WINDOWS = (3, 8, 15)
OPPONENTS = ("weak", "strong")
OUTCOMES = {"won": 1, "drawn": 0, "lost": -1}  # the sign of a game's final reward


@dataclass
class Recording:
    """Real games, all steps of all episodes one after another (N steps).

    obs (N, O), action (N, A): the action taken after seeing obs (ignored on an episode's last
    step); reward (N,): received on arriving in obs; episode (N,) int; position (N,): index of
    the step within its episode; length (N,): its episode's length; is_terminal (N,) bool;
    state: the agent's posterior at each step, (N, ...) tensors.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    episode: np.ndarray
    position: np.ndarray
    length: np.ndarray
    is_terminal: np.ndarray
    state: State


@dataclass
class GoalRow:
    """Goals of one side seen from `window` steps before: mean reward summed over the window."""

    window: int
    side: str  # "scored" (+10) or "conceded" (−10)
    goals: int
    predicted: float
    sparse: float
    smoothed: float


@dataclass
class ProbeResult:
    """The probe's numbers; errors are dicts group → mean Euclidean distance."""

    games: int  # per opponent
    steps: int
    explore: bool
    smoothing: str
    reconstruction: dict
    prediction: dict  # k → group → error of the model's open-loop prediction
    copy_baseline: dict  # k → group → error of "observation t again"
    goals: list[GoalRow]
    terminal_steps: int
    continue_terminal_below: float  # share of real terminal steps with p(continue) < 0.5
    continue_terminal_median: float
    continue_other_above: float  # share of the other steps with p(continue) > 0.5
    discount: float
    critic_correlation: float
    critic_interval: tuple[float, float]  # 95 % bootstrap interval over games
    critic_bias: float  # mean of value − real return
    critic_potential_correlation: float  # value + Φ(s) against the return; nan if no shaping
    value_mean: float
    return_mean: float
    critic_by_outcome: dict  # "won"/"drawn"/"lost" → (steps, mean value, mean real return)
    recording: Recording | None = field(default=None, repr=False)


def group_errors(predicted: np.ndarray, real: np.ndarray) -> dict:
    """Mean over rows of the Euclidean distance within each observation group: (N, O) → dict.
    The hockey env's clock (a 19th number, if shown) is in no group."""
    assert predicted.shape == real.shape and predicted.shape[-1] in (18, 19), predicted.shape
    return {name: float(np.linalg.norm(predicted[:, index] - real[:, index], axis=-1).mean())
            for name, index in GROUPS.items()}


def discounted_returns(rewards: np.ndarray, episode: np.ndarray, discount: float) -> np.ndarray:
    """G_t = Σ_{j>t} γ^(j−t−1) r_j up to the end of t's episode (G = 0 on its last step): the
    quantity the critic at state t estimates, since r_j is received on arriving in state j."""
    returns = np.zeros(len(rewards), np.float64)
    following = 0.0
    for t in reversed(range(len(rewards) - 1)):
        same = episode[t + 1] == episode[t]
        following = (rewards[t + 1] + discount * following) if same else 0.0
        returns[t] = following
    return returns


def resampled_correlations(x: np.ndarray, y: np.ndarray, group: np.ndarray,
                           draws: int = 2000, seed: int = 0) -> np.ndarray:
    """Pearson correlations of x and y (N,) over `draws` bootstrap samples of the groups
    (games): each sample draws as many games as there are, with replacement, and keeps all
    their steps. Computed from each game's sums (n, Σx, Σy, Σx², Σy², Σxy), so a sample costs
    one matrix product, not a copy of its steps. Returns (draws,)."""
    _, index = np.unique(group, return_inverse=True)
    games = index.max() + 1
    parts = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], 1)
    sums = np.zeros((games, 6))
    np.add.at(sums, index, parts)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(games, np.full(games, 1.0 / games), size=draws)
    n, sx, sy, sxx, syy, sxy = (counts @ sums).T
    covariance = sxy - sx * sy / n
    spread = np.sqrt(np.maximum(sxx - sx * sx / n, 0.0) * np.maximum(syy - sy * sy / n, 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return covariance / spread


def correlation_interval(x: np.ndarray, y: np.ndarray, group: np.ndarray,
                         level: float = 0.95) -> tuple[float, float]:
    """The percentile bootstrap interval of corr(x, y), resampling whole groups (games)."""
    correlations = resampled_correlations(x, y, group)
    correlations = correlations[np.isfinite(correlations)]
    if not len(correlations):
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(correlations, [tail, 100 - tail])
    return float(low), float(high)


def game_outcomes(rewards: np.ndarray, is_terminal: np.ndarray,
                  episode: np.ndarray) -> np.ndarray:
    """How each step's game ended, per step: +1 won, −1 lost (the sign of the reward on the
    game's terminal step), 0 drawn (no terminal step: the game stopped at its time limit)."""
    outcome = np.zeros(len(rewards), np.int64)
    for t in np.flatnonzero(is_terminal):
        outcome[episode == episode[t]] = np.sign(rewards[t])
    return outcome


def window_sums(values: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Σ values[end − window + 1 … end] for each end: (N,), (G,) → (G,)."""
    offsets = np.arange(-window + 1, 1)
    return values[ends[:, None] + offsets[None, :]].sum(-1)


def continue_shares(p_continue: np.ndarray,
                    is_terminal: np.ndarray) -> tuple[float, float, float]:
    """(share of terminal steps with p < 0.5, their median p, share of the others with p > 0.5)."""
    terminal, other = p_continue[is_terminal], p_continue[~is_terminal]
    below = float(np.mean(terminal < 0.5)) if len(terminal) else float("nan")
    median = float(np.median(terminal)) if len(terminal) else float("nan")
    return below, median, float(np.mean(other > 0.5))


@torch.no_grad()
def open_loop(world_model: WorldModel, start: State,
              actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Roll the prior from `start` (N, ...) with the given actions (N, K, A): state k is reached
    after actions[:, 0 … k−1]. Returns the decoded observations (N, K, O) and the predicted
    rewards (N, K) of states 1 … K (as dreams do, each prior state is a sample)."""
    state, observations, rewards = start, [], []
    for k in range(actions.shape[1]):
        state = world_model.rssm.img_step(state, actions[:, k])
        feat = state.feat()
        observations.append(world_model.decoder(feat))
        rewards.append(world_model.reward_predictor(feat))
    return torch.stack(observations, 1), torch.stack(rewards, 1)


class _Recorder:
    """Collects the steps the `Collector` hands to replay, per environment, into episodes, and
    keeps the first `quota[env]` complete episodes of each environment."""

    def __init__(self, quota: list[int]):
        self.quota = quota
        self.current: list[list[dict]] = [[] for _ in quota]
        self.episodes: list[list[list[dict]]] = [[] for _ in quota]
        self.pending: dict | None = None

    def add(self, step: dict) -> None:
        self.pending = step

    def commit(self, state: State) -> None:
        """File the pending step of every environment with its posterior state."""
        step, self.pending = self.pending, None
        for env in range(len(self.quota)):
            if step["is_first"][env]:
                self.current[env] = []
            self.current[env].append({
                "obs": step["obs"][env], "action": step["action"][env],
                "reward": float(step["reward"][env]),
                "is_terminal": bool(step["is_terminal"][env]),
                "state": tuple(x[env].cpu() for x in (state.deter, state.stoch, state.logits))})
            if step["is_last"][env] and len(self.episodes[env]) < self.quota[env]:
                self.episodes[env].append(self.current[env])

    def done(self) -> bool:
        return all(len(e) >= q for e, q in zip(self.episodes, self.quota))


def record_games(agent: Agent, config: Config, opponent: str, games: int, seed: int,
                 explore: bool, parallel: int = 16) -> list[list[dict]]:
    """Play `games` plain games against a scripted opponent (environment i seeded seed + i, as
    `train.evaluate` does) and return each one's steps, observation to last observation."""
    count = min(games, parallel)
    quota = [games // count + (i < games % count) for i in range(count)]
    envs = [build_env(config.env, opponent=opponent, **JUDGED_GAME) for _ in range(count)]
    collector = Collector(envs, seed)
    recorder = _Recorder(quota)
    carry = agent.initial_carry(count)
    while not recorder.done():
        carry = collector.step(agent, carry, recorder, explore)
        recorder.commit(carry.state)
    for env in envs:
        env.close()
    return [episode for episodes in recorder.episodes for episode in episodes]


def _flatten(episodes: list[list[dict]], device: torch.device) -> Recording:
    steps = [step for episode in episodes for step in episode]
    lengths = [len(episode) for episode in episodes]
    states = [torch.stack([step["state"][i] for step in steps]).to(device) for i in range(3)]
    return Recording(
        obs=np.stack([s["obs"] for s in steps]).astype(np.float64),
        action=np.stack([s["action"] for s in steps]).astype(np.float32),
        reward=np.array([s["reward"] for s in steps]),
        episode=np.repeat(np.arange(len(episodes)), lengths),
        position=np.concatenate([np.arange(n) for n in lengths]),
        length=np.repeat(lengths, lengths),
        is_terminal=np.array([s["is_terminal"] for s in steps]),
        state=State(*states))


def _index_state(state: State, index) -> State:
    return State(state.deter[index], state.stoch[index], state.logits[index])


def dream(agent: Agent, recording: Recording, start: int | np.ndarray, horizon: int,
          chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Open-loop predictions from each start index (S,) with the real actions: decoded
    observations (S, horizon, O) and rewards (S, horizon) for steps start + 1 … start + horizon.
    Starts too close to their episode's end get padding actions; callers mask those steps."""
    starts = np.atleast_1d(start)
    last = len(recording.obs) - 1
    future = np.minimum(starts[:, None] + np.arange(horizon)[None, :], last)
    actions = torch.as_tensor(recording.action[future], device=agent.device)
    observations, rewards = [], []
    for begin in range(0, len(starts), chunk):
        part = slice(begin, begin + chunk)
        obs, reward = open_loop(agent.world_model,
                                _index_state(recording.state, torch.as_tensor(starts[part])),
                                actions[part])
        observations.append(obs.cpu().numpy())
        rewards.append(reward.cpu().numpy())
    return (np.concatenate(observations).astype(np.float64),
            np.concatenate(rewards).astype(np.float64))


def probe(agent: Agent, config: Config, games: int = 20, seed: int = 10_000,
          explore: bool = False, keep_recording: bool = False) -> ProbeResult:
    """Play `games` plain games against each scripted opponent and measure what the model knows.

    explore=False (default) acts deterministically: the most likely latent and the actor's
    mode, as `python -m naturaldreamer evaluate` does; explore=True samples both. Torch's
    random state is restored afterwards, so a probe during training leaves the run as it was.
    """
    if config.env.name != "hockey":
        raise ValueError(f"the probe reads hockey observations; this agent was trained on "
                         f"{config.env.name!r}")
    if games < 1:
        raise ValueError(f"games per opponent must be at least 1, got {games}")
    devices = [agent.device] if agent.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        recording = play_and_record(agent, config, games, seed, explore)
        result = measure(agent, config, recording, games, explore)
    result.recording = recording if keep_recording else None
    return result


@torch.no_grad()
def play_and_record(agent: Agent, config: Config, games: int, seed: int = 10_000,
                    explore: bool = False) -> Recording:
    """Play `games` plain games against each scripted opponent (weak first) and keep every
    step, one row per step: observation, action, reward and the agent's posterior state."""
    episodes = [episode for opponent in OPPONENTS
                for episode in record_games(agent, config, opponent, games, seed, explore)]
    return _flatten(episodes, agent.device)


@torch.no_grad()
def observe_recording(agent: Agent, recording: Recording) -> Recording:
    """The same games seen by another agent's world model: its own posterior at every step,
    computed from the recorded observations and actions as `Agent.act` computes them with
    explore=False (the most likely latent). All episodes step together, padded to the longest.
    """
    r, device = recording, agent.device
    episodes = np.unique(r.episode)
    longest = int(r.length.max())
    rows = np.searchsorted(episodes, r.episode)  # each step's episode, 0 … E − 1
    obs = np.zeros((len(episodes), longest, r.obs.shape[1]), np.float32)
    actions = np.zeros((len(episodes), longest, r.action.shape[1]), np.float32)
    obs[rows, r.position], actions[rows, r.position] = r.obs, r.action
    carry = agent.initial_carry(len(episodes))
    states = []
    for t in range(longest):
        _, carry = agent.act(obs[:, t], np.full(len(episodes), t == 0), carry, explore=False)
        carry = Carry(carry.state, torch.as_tensor(actions[:, t], device=device))
        states.append(carry.state)
    index = (torch.as_tensor(rows, device=device), torch.as_tensor(r.position, device=device))
    state = State(*(torch.stack([getattr(s, name) for s in states], 1)[index]
                    for name in ("deter", "stoch", "logits")))
    return Recording(r.obs, r.action, r.reward, r.episode, r.position, r.length,
                     r.is_terminal, state)


@torch.no_grad()
def measure(agent: Agent, config: Config, recording: Recording, games: int,
            explore: bool) -> ProbeResult:
    """The probe's numbers for `recording` (whose states are this agent's posteriors)."""
    wm, r = agent.world_model, recording
    feat = r.state.feat()
    reconstruction = group_errors(wm.decoder(feat).cpu().numpy().astype(np.float64), r.obs)

    horizon = max(max(HORIZONS), max(GOAL_WINDOWS))
    starts = np.arange(len(r.obs))
    dreamed, dreamed_reward = dream(agent, r, starts, horizon)
    prediction, copy_baseline = {}, {}
    for k in HORIZONS:
        valid = r.position + k <= r.length - 1
        prediction[k] = group_errors(dreamed[valid, k - 1], r.obs[starts[valid] + k])
        copy_baseline[k] = group_errors(r.obs[valid], r.obs[starts[valid] + k])

    smoothed = r.reward.copy()
    c = config.replay
    for episode in np.unique(r.episode):
        steps = r.episode == episode
        smoothed[steps] = smooth_rewards(r.reward[steps], c.smoothing, c.smoothing_alpha,
                                         c.smoothing_sigma)
    goals = []
    for window in GOAL_WINDOWS:
        for side, sign in (("scored", 1.0), ("conceded", -1.0)):
            ends = np.flatnonzero(r.is_terminal & (sign * r.reward > 0) & (r.position >= window))
            predicted = dreamed_reward[ends - window, :window].sum(-1)
            goals.append(GoalRow(window, side, len(ends), _mean(predicted),
                                 _mean(window_sums(r.reward, ends, window)),
                                 _mean(window_sums(smoothed, ends, window))))

    p_continue = wm.continue_predictor(feat).cpu().numpy()
    below, median, above = continue_shares(p_continue, r.is_terminal)

    discount = config.behavior.discount
    returns = discounted_returns(r.reward, r.episode, discount)
    alive = r.position < r.length - 1  # nothing follows an episode's last state
    values = agent.behavior.critic(feat).cpu().numpy().astype(np.float64)[alive]
    returns = returns[alive]
    outcome = game_outcomes(r.reward, r.is_terminal, r.episode)[alive]
    by_outcome = {name: (int(np.sum(outcome == sign)), _mean(values[outcome == sign]),
                         _mean(returns[outcome == sign])) for name, sign in OUTCOMES.items()}
    spread = returns.std() > 0 and values.std() > 0  # a correlation needs both to vary
    correlation = float(np.corrcoef(values, returns)[0, 1]) if spread else float("nan")
    interval = (correlation_interval(values, returns, r.episode[alive]) if spread
                else (float("nan"), float("nan")))
    scale = config.env.options.get("potential", 0.0)
    with_potential = values + potential(r.obs[alive], scale)
    potential_correlation = (float(np.corrcoef(with_potential, returns)[0, 1])
                             if scale and spread else float("nan"))
    return ProbeResult(
        games=games, steps=len(r.obs), explore=explore, smoothing=c.smoothing,
        reconstruction=reconstruction, prediction=prediction, copy_baseline=copy_baseline,
        goals=goals, terminal_steps=int(r.is_terminal.sum()), continue_terminal_below=below,
        continue_terminal_median=median, continue_other_above=above, discount=discount,
        critic_correlation=correlation, critic_interval=interval,
        critic_bias=float(np.mean(values - returns)),
        critic_potential_correlation=potential_correlation,
        value_mean=float(values.mean()), return_mean=float(returns.mean()),
        critic_by_outcome=by_outcome)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def format_table(result: ProbeResult) -> str:
    """The probe's numbers as a plain-text table."""
    actions = "sampled" if result.explore else "deterministic"
    lines = [f"What the model knows: {result.games} games against each of "
             f"{' and '.join(OPPONENTS)}, {result.steps} steps, {actions} actions",
             "Errors: mean Euclidean distance over each group's entries, in the observation's",
             "units (world units for positions, units/s for velocities, rad for angles).",
             ""]
    header = f"{'group':<15}{'posterior':>10}"
    for k in HORIZONS:
        header += f"{f'k={k} model':>13}{'copy':>7}"
    lines.append(header)
    for name in GROUPS:
        line = f"{name:<15}{result.reconstruction[name]:>10.3f}"
        for k in HORIZONS:
            line += f"{result.prediction[k][name]:>13.3f}{result.copy_baseline[k][name]:>7.3f}"
        lines.append(line)
    lines += ["", "Goals: reward summed over the k steps before each goal, predicted open-loop "
              "from k steps",
              f"before with the real actions; real sparse and smoothed ({result.smoothing}).",
              f"{'k':>3}  {'side':<9}{'goals':>6}{'predicted':>11}{'sparse':>8}{'smoothed':>10}"]
    for row in result.goals:
        lines.append(f"{row.window:>3}  {row.side:<9}{row.goals:>6}{row.predicted:>11.2f}"
                     f"{row.sparse:>8.2f}{row.smoothed:>10.2f}")
    lines += ["",
              f"Continue: p < 0.5 on {100 * result.continue_terminal_below:.0f} % of "
              f"{result.terminal_steps} real terminal steps (median p "
              f"{result.continue_terminal_median:.2f});",
              f"          p > 0.5 on {100 * result.continue_other_above:.1f} % of the other "
              f"steps.",
              f"Critic vs real discounted return (γ = {result.discount}): correlation "
              f"{result.critic_correlation:.2f}",
              f"          (95 % interval, resampling games: {result.critic_interval[0]:.2f} "
              f"to {result.critic_interval[1]:.2f}),",
              f"          mean value {result.value_mean:+.2f}, mean return "
              f"{result.return_mean:+.2f}, bias (value − return) {result.critic_bias:+.2f};",
              "          by how the step's game ended (drawn: stopped at the time limit):"]
    if not np.isnan(result.critic_potential_correlation):
        lines.insert(-2, f"          value + Φ(s) (the shaping's potential, which the plain "
                         f"game's return lacks): correlation "
                         f"{result.critic_potential_correlation:.2f};")
    for name, (steps, value, real) in result.critic_by_outcome.items():
        lines.append(f"          {name:<6} mean value {value:+.2f}, mean return {real:+.2f} "
                     f"({steps} steps)" if steps else f"          {name:<6} no such game")
    return "\n".join(lines)


def probe_metrics(result: ProbeResult) -> dict:
    """Flat `probe/...` metrics (floats) for metrics.csv."""
    key = {name: name.replace(" ", "_") for name in GROUPS}
    metrics = {f"probe/rec_{key[n]}": v for n, v in result.reconstruction.items()}
    for k in HORIZONS:
        for name in GROUPS:
            metrics[f"probe/pred{k}_{key[name]}"] = result.prediction[k][name]
            metrics[f"probe/copy{k}_{key[name]}"] = result.copy_baseline[k][name]
    for row in result.goals:
        for part in ("predicted", "sparse", "smoothed"):
            metrics[f"probe/goal{row.window}_{row.side}_{part}"] = getattr(row, part)
    metrics.update({
        "probe/continue_terminal_below_half": result.continue_terminal_below,
        "probe/continue_terminal_median": result.continue_terminal_median,
        "probe/continue_other_above_half": result.continue_other_above,
        "probe/critic_correlation": result.critic_correlation,
        "probe/critic_correlation_low": result.critic_interval[0],
        "probe/critic_correlation_high": result.critic_interval[1],
        "probe/critic_bias": result.critic_bias,
        "probe/critic_potential_correlation": result.critic_potential_correlation,
        "probe/value_mean": result.value_mean,
        "probe/return_mean": result.return_mean})
    for name, (_, value, real) in result.critic_by_outcome.items():
        metrics[f"probe/value_mean_{name}"] = value
        metrics[f"probe/return_mean_{name}"] = real
    return {name: float(value) for name, value in metrics.items()}
