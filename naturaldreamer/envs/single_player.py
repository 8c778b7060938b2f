"""The hockey game as a single-agent gymnasium env for player 1, made for training.

`make_env("hockey", ...)` builds it. Compared with upstream's `HockeyEnv_BasicOpponent` it
changes what a learner sees in four ways, each explained where it is done: time-outs are
truncations (unless the clock is shown), the reward is sparse unless shaping is asked for, every
episode is reproducible from its seed (opponent included), and stepping past the end is an error.
"""

import functools
import importlib
from types import ModuleType

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from naturaldreamer.envs import hockey
from naturaldreamer.envs.hockey_game import FPS, Mode

GOAL_REWARD = 10.0
OPPONENTS = ("weak", "strong")
BACKENDS = ("port", "upstream")
RENDER_MODES = ["human", "rgb_array"]

_UPSTREAM_MISSING = (
    "backend='upstream' needs the original hockey-env package (module hockey.hockey_env with "
    "HockeyEnv and BasicOpponent), which is not installed here. Install it with "
    "`pip install git+https://github.com/martius-lab/hockey-env.git`, or use backend='port' "
    "(this project's faithful port)."
)


def load_upstream() -> ModuleType:
    """Import upstream's `hockey.hockey_env`, or raise ImportError saying what to do.

    PyPI has an unrelated package also called `hockey`, so the module must really have the
    game's classes. Upstream registers broken gymnasium ids at import (§18 quirk 3); ours are
    put back so that `gym.make("Hockey-v0")` keeps working.
    """
    try:
        module = importlib.import_module("hockey.hockey_env")
    except ImportError as error:
        raise ImportError(_UPSTREAM_MISSING) from error
    finally:
        hockey.register_hockey_ids()
    if not (hasattr(module, "HockeyEnv") and hasattr(module, "BasicOpponent")):
        raise ImportError(_UPSTREAM_MISSING)
    return module


def parse_mode(mode: str | int | Mode) -> Mode:
    """Accept 'normal' / 'train_shooting' / 'train_defense', a Mode, or its int value."""
    if isinstance(mode, Mode):
        return mode
    if isinstance(mode, str):
        if mode.upper() not in Mode.__members__:
            choices = [name.lower() for name in Mode.__members__]
            raise ValueError(f"unknown hockey mode {mode!r}; use one of {choices}")
        return Mode[mode.upper()]
    return Mode(mode)


class _PrivateGlobalRNG:
    """Runs calls with numpy's global legacy RNG swapped for a private stream.

    Upstream's `BasicOpponent` draws from `np.random` (quirk 18), and so may an opponent object.
    Swapping the global state in and out around each call gives the opponent a reproducible
    stream of its own and leaves the global stream exactly as other code left it. The swap costs
    about 60 us per call. Not thread-safe: the global state is shared.
    """

    def __init__(self, rng: np.random.RandomState):
        self._state = rng.get_state()

    def call(self, function, *args):
        outside = np.random.get_state()
        np.random.set_state(self._state)
        try:
            return function(*args)
        finally:
            self._state = np.random.get_state()
            np.random.set_state(outside)


class SinglePlayerHockey(gym.Env):
    """Air hockey for player 1 (left, red) against a built-in opponent playing player 2.

    Observation: the game's 18 float32 numbers for player 1 (§7 of the game's specification),
    and with `clock` a 19th: the seconds left until the time-out (5.02 at the start of a normal
    game, 1.62 in the training modes, 0 at the time-out; 50 steps a second).
    Action: 4 floats in [-1, 1] (force x, force y, torque, shoot > 0.5), clipped on the way in.

    Reward: +10 when player 1 scores, -10 when it concedes, 0 otherwise, plus `shaping` times
    `info["reward_closeness_to_puck"]`. That term is the only shaped one in upstream's own reward
    (it is <= 0: minus the distance to the puck while the puck is in player 1's half and not
    moving away, scaled so that staying 250/60 units away for half a game would sum to -30;
    real games sum to a few units), so `shaping=1` gives exactly
    upstream's step reward. The touch and puck-direction terms are reported in `info` but not
    added, as upstream does.

    Episode end: a goal is a terminal state (`terminated=True`). The time-out (step 251, or 81
    in the training modes) is reported as `truncated=True, terminated=False`. Upstream calls it
    terminated, but the game does not end there in any physical sense: the puck is still moving
    and a goal may be one step away, so the value of that state is not zero, and a learner that
    bootstraps with zero there learns wrong values. After either, call `reset`.

    With `clock=True` the time-out is terminal instead: the game ends there and the learner
    sees it coming in the 19th number, so the state with the clock at 0 really is the end, and
    the value of every state is the time-limited one (Pardo et al. 2018, "Time Limits in
    Reinforcement Learning"). Without the clock the same state would have two values, one for
    each time left, and no learner could tell them apart.

    `info` has `winner` (+1 player 1 scored, -1 player 2 scored, 0 no goal) and upstream's
    `reward_closeness_to_puck`, `reward_touch_puck`, `reward_puck_direction`.

    Seeding: `reset(seed=s)` fully determines the episode. From the env's generator each reset
    draws the starting side (NORMAL mode), the game's seed and a seed for the opponent's own
    `np.random.RandomState`. The built-in opponent is rebuilt each episode drawing from it (the
    port's `BasicOpponent` takes it as `rng`). An opponent object, or upstream's `BasicOpponent`,
    may draw from numpy's global RNG instead, so its `act` and `reset()` run with the global
    state swapped for that private stream (`_PrivateGlobalRNG`); the two ways give the same
    numbers. Either way the global RNG is left untouched for other code. The possession
    counters that upstream carries from one episode into the next (quirk 19) are cleared, since
    they would make an episode depend on the one before it.

    Args:
        opponent: "weak" or "strong" (upstream's `BasicOpponent`), or any object with
            `act(obs) -> 4 actions` taking player 2's float32 observation (`obs_agent_two`),
            e.g. a frozen copy of a policy for self-play; its optional `reset()` is called at
            each episode start.
        mode: "normal", "train_shooting", "train_defense" (or a `Mode`, or its int).
        shaping: weight of the closeness term added to the sparse reward.
        backend: "port" (this project's game) or "upstream" (the original package, if
            installed).
        render_mode: None, "human" (draws a window at every step) or "rgb_array".
        clock: show the seconds left as a 19th observation and make the time-out terminal.
    """

    metadata = {"render_modes": RENDER_MODES, "render_fps": FPS}

    def __init__(
        self,
        opponent="weak",
        mode: str | int | Mode = "normal",
        shaping: float = 0.0,
        backend: str = "port",
        render_mode: str | None = None,
        clock: bool = False,
    ):
        if backend not in BACKENDS:
            raise ValueError(f"unknown hockey backend {backend!r}; use one of {BACKENDS}")
        if isinstance(opponent, str):
            if opponent not in OPPONENTS:
                raise ValueError(f"unknown hockey opponent {opponent!r}; use one of {OPPONENTS} "
                                 "or an object with an act(obs) method")
        elif not callable(getattr(opponent, "act", None)):
            raise TypeError("opponent must be 'weak', 'strong' or an object with act(obs)")
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"unknown render_mode {render_mode!r}; use one of {RENDER_MODES}")
        self.game_module = hockey if backend == "port" else load_upstream()
        self.mode = parse_mode(mode)
        self.opponent = opponent
        self.shaping = float(shaping)
        self.backend = backend
        self.render_mode = render_mode
        self.clock = bool(clock)
        # The upstream game's mode setter knows ints, not our Mode class.
        self.game = self.game_module.HockeyEnv(keep_mode=True, mode=self.mode.value)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(19 if self.clock else 18,),
                                            dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self._opponent_act = None
        self._episode_over = True

    def _start_opponent(self, rng: np.random.RandomState):
        """Set up the opponent for a new episode; returns its act function."""
        if isinstance(self.opponent, str) and self.backend == "port":
            return hockey.BasicOpponent(weak=self.opponent == "weak", rng=rng).act
        private = _PrivateGlobalRNG(rng)
        if isinstance(self.opponent, str):
            opponent = private.call(self.game_module.BasicOpponent, self.opponent == "weak")
        else:
            opponent = self.opponent
            if callable(getattr(opponent, "reset", None)):
                private.call(opponent.reset)
        return functools.partial(private.call, opponent.act)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; returns (observation, info). `options` is not used."""
        super().reset(seed=seed)
        one_starting = bool(self.np_random.integers(2))
        game_seed = int(self.np_random.integers(2**63))
        opponent_seed = int(self.np_random.integers(2**32))
        self.game.player1_has_puck = 0
        self.game.player2_has_puck = 0
        obs, info = self.game.reset(one_starting=one_starting, seed=game_seed)
        self._opponent_act = self._start_opponent(np.random.RandomState(opponent_seed))
        self._episode_over = False
        if self.render_mode == "human":
            self.render()
        return self._observe(obs), dict(info)

    def _observe(self, obs) -> np.ndarray:
        """The game's observation as float32, with the seconds left appended if `clock`."""
        obs = np.asarray(obs, dtype=np.float32)
        if not self.clock:
            return obs
        # The game ends on the step that finds time == max_timesteps, so max_timesteps + 1
        # steps make a game.
        left = (self.game.max_timesteps + 1 - self.game.time) / FPS
        return np.append(obs, np.float32(left))

    def step(self, action):
        """Play one step of 1/50 s; returns (obs, reward, terminated, truncated, info)."""
        if self._episode_over:
            raise RuntimeError("the hockey episode is over (or never started): call reset() "
                               "before step(); upstream would keep paying the goal reward")
        action = np.asarray(action, dtype=np.float32)  # the game clips it to [-1, 1] (§6.1)
        if action.shape != (4,):
            raise ValueError(f"expected 4 actions for player 1, got shape {action.shape}")
        opponent_obs = np.asarray(self.game.obs_agent_two(), dtype=np.float32)
        opponent_action = np.asarray(self._opponent_act(opponent_obs), dtype=np.float64)
        if opponent_action.shape != (4,):
            raise ValueError(f"the opponent must return 4 actions, got shape "
                             f"{opponent_action.shape}")
        obs, _, done, _, info = self.game.step(np.concatenate([action, opponent_action]))

        winner = int(info["winner"])
        terminated = bool(done) and (winner != 0 or self.clock)
        truncated = bool(done) and not terminated
        reward = GOAL_REWARD * winner + self.shaping * info["reward_closeness_to_puck"]
        self._episode_over = bool(done)
        info = dict(info, winner=winner)
        if self.render_mode == "human":
            self.render()
        return self._observe(obs), float(reward), terminated, truncated, info

    def render(self):
        """Draw the game in the env's `render_mode`."""
        if self.render_mode is None:
            gym.logger.warn("render() needs render_mode='human' or 'rgb_array' at construction.")
            return None
        return self.game.render(mode=self.render_mode)

    def close(self) -> None:
        """Close the game's window, if any."""
        self.game.close()
