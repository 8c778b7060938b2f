"""The agent-facing factory `make_env` and its single-player hockey env."""

import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from naturaldreamer.envs import SinglePlayerHockey, make_env
from naturaldreamer.envs.hockey import Mode


class IdleOpponent:
    """Stands still; counts its resets and remembers what it saw."""

    def __init__(self):
        self.resets = 0
        self.observations = []

    def reset(self):
        self.resets += 1

    def act(self, obs):
        self.observations.append(obs.copy())
        return np.zeros(4)


class RandomGlobalOpponent:
    """Acts from numpy's global RNG, as upstream's BasicOpponent does."""

    def __init__(self):
        self.first_draws = []

    def reset(self):
        self.first_draws.append(np.random.uniform())

    def act(self, obs):
        return np.random.uniform(-1, 1, 4)


def global_rng_fingerprint():
    state = np.random.get_state()
    return state[1].copy(), state[2]


def rollout(env, seed, steps=120, action_seed=0):
    """Observations and rewards of one seeded episode under seeded random actions."""
    rng = np.random.default_rng(action_seed)
    observations = [env.reset(seed=seed)[0]]
    rewards = []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 4))
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards)


def score(env, side):
    """Put the puck on its way into a goal: side 1 into player 2's goal, -1 into player 1's."""
    state = np.zeros(18)
    state[0:2] = (-3.0, 0.0) if side == 1 else (-2.0, 2.5)
    state[6:8] = (2.0, 2.5) if side == 1 else (3.0, 0.0)
    state[12:16] = (3.0 * side, 0.0, 15.0 * side, 0.0)
    env.game.set_state(state)
    for _ in range(20):
        result = env.step(np.zeros(4))
        if result[2] or result[3]:
            return result
    raise AssertionError("no goal")


def test_spaces_and_reset():
    env = make_env("hockey")
    assert isinstance(env, SinglePlayerHockey)
    assert env.observation_space.shape == (18,) and env.observation_space.dtype == np.float32
    assert env.action_space == gym.spaces.Box(-1, 1, (4,), np.float32)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (18,)
    assert info["winner"] == 0
    assert set(info) == {"winner", "reward_closeness_to_puck", "reward_touch_puck",
                         "reward_puck_direction"}


def test_time_out_is_truncation_not_termination():
    env = make_env("hockey", opponent=IdleOpponent(), mode="train_shooting")
    env.reset(seed=0)
    steps, truncated = 0, False
    while not truncated and steps < 100:
        _, reward, terminated, truncated, info = env.step(np.zeros(4))
        steps += 1
        assert reward == 0.0  # sparse by default
        assert not terminated
    assert steps == 81 and truncated and info["winner"] == 0
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4))


@pytest.mark.parametrize("mode, steps", [("normal", 251), ("train_shooting", 81)])
def test_clock_counts_down_to_a_terminal_time_out(mode, steps):
    """The 19th number falls by 1/50 s a step and reaches 0 at the time-out, which is then
    terminal; the other 18 are those of the same game without the clock (idle players: no
    goal)."""
    plain = make_env("hockey", opponent=IdleOpponent(), mode=mode)
    timed = make_env("hockey", opponent=IdleOpponent(), mode=mode, clock=True)
    assert timed.observation_space.shape == (19,)
    first, _ = timed.reset(seed=3)
    assert first.shape == (19,) and np.array_equal(first[:18], plain.reset(seed=3)[0])
    clock = [first[18]]
    for step in range(1, steps + 1):
        obs, _, terminated, truncated, info = timed.step(np.zeros(4))
        base, _, _, base_truncated, _ = plain.step(np.zeros(4))
        assert np.array_equal(obs[:18], base) and not truncated
        assert terminated == base_truncated == (step == steps) and info["winner"] == 0
        clock.append(obs[18])
    assert np.allclose(clock, (steps - np.arange(steps + 1)) / 50.0, atol=1e-6)
    assert clock[-1] == 0.0


@pytest.mark.parametrize("side", [1, -1])
def test_goal_is_termination_with_ten_and_winner(side):
    env = make_env("hockey", opponent=IdleOpponent())
    env.reset(seed=0)
    _, reward, terminated, truncated, info = score(env, side)
    assert terminated and not truncated
    assert reward == 10.0 * side
    assert info["winner"] == side


def test_shaping_adds_the_weighted_closeness_term():
    # Training-shooting puts the puck in player 1's half, where the term is active.
    env = make_env("hockey", opponent=IdleOpponent(), mode="train_shooting", shaping=0.5)
    env.reset(seed=1)
    closeness = []
    for _ in range(30):
        _, reward, _, _, info = env.step(np.array([0.3, 0.2, 0.0, 0.0]))
        closeness.append(info["reward_closeness_to_puck"])
        assert reward == 0.5 * info["reward_closeness_to_puck"]
    assert min(closeness) < 0  # the term was active
    # With weight 1 a goal pays exactly upstream's reward: +-10 plus closeness.
    env = make_env("hockey", opponent=IdleOpponent(), shaping=1.0)
    env.reset(seed=0)
    _, reward, _, _, info = score(env, -1)
    assert reward == env.game.get_reward(info) == -10.0 + info["reward_closeness_to_puck"]


def test_actions_are_clipped():
    """Actions outside [-1, 1] act like their clipped values."""
    runs = []
    for clip_first in (False, True):
        env = make_env("hockey", opponent="strong")
        rng = np.random.default_rng(0)
        observations = [env.reset(seed=2)[0]]
        for _ in range(40):
            action = 5 * rng.uniform(-1, 1, 4)
            obs, _, terminated, truncated, _ = env.step(
                np.clip(action, -1, 1) if clip_first else action)
            observations.append(obs)
            if terminated or truncated:
                break
        runs.append(np.array(observations))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_same_seed_same_episode_whatever_came_before():
    env = make_env("hockey", opponent="strong")
    first = rollout(env, seed=3)
    rollout(env, seed=4)
    np.random.seed(123)  # the opponent must not depend on the global RNG
    again = rollout(env, seed=3)
    fresh = rollout(make_env("hockey", opponent="strong"), seed=3)
    for other in (again, fresh):
        np.testing.assert_array_equal(first[0], other[0])
        np.testing.assert_array_equal(first[1], other[1])
    different = rollout(env, seed=5)
    assert not np.array_equal(first[0][0], different[0][0])


def test_unseeded_resets_continue_the_seeded_stream():
    starts = []
    for _ in range(2):
        env = make_env("hockey")
        env.reset(seed=1)
        starts.append([env.reset()[0] for _ in range(3)])
    np.testing.assert_array_equal(starts[0], starts[1])


def test_opponent_rng_is_private_and_leaves_global_rng_alone():
    before = global_rng_fingerprint()
    runs = []
    for _ in range(2):
        env = make_env("hockey", opponent=RandomGlobalOpponent())
        runs.append(rollout(env, seed=7, steps=50)[0])
    after = global_rng_fingerprint()
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(before[0], after[0])
    assert before[1] == after[1]
    # Each reset seed gives the opponent its own stream.
    opponent = RandomGlobalOpponent()
    env = make_env("hockey", opponent=opponent)
    for seed in (1, 2, 1):
        env.reset(seed=seed)
    first, second, again = opponent.first_draws
    assert first == again and first != second


def test_opponent_object_sees_player_two_view_and_is_reset():
    opponent = IdleOpponent()
    env = make_env("hockey", opponent=opponent, mode=Mode.TRAIN_DEFENSE)
    env.reset(seed=0)
    env.reset(seed=1)
    assert opponent.resets == 2
    expected = env.game.obs_agent_two()
    env.step(np.zeros(4))
    seen = opponent.observations[-1]
    assert seen.dtype == np.float32 and seen.shape == (18,)
    np.testing.assert_array_equal(seen, expected)


def test_possession_counters_are_cleared_at_reset():
    env = make_env("hockey")
    env.reset(seed=0)
    env.game.player1_has_puck = 15
    env.game.player2_has_puck = 9
    obs, info = env.reset(seed=0)
    assert obs[16] == obs[17] == 0 and info["reward_touch_puck"] == 0.0


@pytest.mark.parametrize("mode", ["train_defense", Mode.TRAIN_DEFENSE, 2])
def test_mode_option_forms(mode):
    env = make_env("hockey", mode=mode)
    assert env.game.mode is Mode.TRAIN_DEFENSE and env.game.max_timesteps == 80


@pytest.mark.parametrize("options, error", [
    ({"opponent": "medium"}, ValueError),
    ({"opponent": object()}, TypeError),
    ({"mode": "penalties"}, ValueError),
    ({"backend": "original"}, ValueError),
    ({"render_mode": "ascii"}, ValueError),
    ({"speed": 2}, TypeError),
])
def test_bad_options_are_rejected(options, error):
    with pytest.raises(error):
        make_env("hockey", **options)


def test_render_through_the_factory():
    env = make_env("hockey", render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.dtype == np.uint8 and image.shape == (480, 600, 3)
    quiet = make_env("hockey")
    quiet.reset(seed=0)
    with pytest.warns(UserWarning):
        assert quiet.render() is None


def test_check_env_passes_with_only_expected_warnings():
    allowed = ("minimum value is -infinity", "maximum value is infinity", "not having a spec")
    for options in ({}, {"opponent": "strong", "mode": "train_defense", "shaping": 1.0}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(make_env("hockey", **options))
        unexpected = [str(w.message) for w in caught
                      if not any(text in str(w.message) for text in allowed)]
        assert not unexpected


def test_gymnasium_ids_go_to_gymnasium_make():
    env = make_env("Pendulum-v1", g=9.0)
    assert env.spec.id == "Pendulum-v1" and env.unwrapped.g == 9.0
    hockey_one = make_env("Hockey-One-v0", weak_opponent=True)
    assert hockey_one.unwrapped.opponent.weak


def test_unknown_name_explains_what_is_available():
    with pytest.raises(ValueError) as error:
        make_env("Hockey")
    message = str(error.value)
    assert "'hockey'" in message and "Pendulum-v1" in message and "Hockey-v0" in message


# --------------------------------------------------------------------------------- upstream

@pytest.fixture
def no_hockey_modules(monkeypatch):
    """Hide any imported `hockey` package, and forget fakes a test imports."""
    for name in [name for name in sys.modules if name == "hockey" or name.startswith("hockey.")]:
        monkeypatch.delitem(sys.modules, name)
    yield monkeypatch
    for name in [name for name in sys.modules if name == "hockey" or name.startswith("hockey.")]:
        del sys.modules[name]


def test_upstream_backend_without_the_package_says_what_to_do(no_hockey_modules, tmp_path):
    try:
        import hockey.hockey_env  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the real upstream package is installed")
    with pytest.raises(ImportError, match="backend='port'"):
        make_env("hockey", backend="upstream")
    # PyPI's unrelated `hockey` package must not be taken for the game.
    (tmp_path / "hockey").mkdir()
    (tmp_path / "hockey" / "__init__.py").write_text("")
    no_hockey_modules.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="hockey-env"):
        make_env("hockey", backend="upstream")
    (tmp_path / "hockey" / "hockey_env.py").write_text("NOT_THE_GAME = 1\n")
    with pytest.raises(ImportError, match="hockey-env"):
        make_env("hockey", backend="upstream")


FAKE_UPSTREAM = '''
import gymnasium as gym
from naturaldreamer.envs.hockey import BasicOpponent, HockeyEnv

# Like upstream: register ids whose entry points name the old package.
gym.register(id="Hockey-v0", entry_point="laserhockey.hockey_env:HockeyEnv")
'''


def test_upstream_backend_uses_the_package_and_keeps_our_ids(no_hockey_modules, tmp_path):
    (tmp_path / "hockey").mkdir()
    (tmp_path / "hockey" / "__init__.py").write_text("")
    (tmp_path / "hockey" / "hockey_env.py").write_text(FAKE_UPSTREAM)
    no_hockey_modules.syspath_prepend(str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = make_env("hockey", backend="upstream", opponent="strong")
    assert env.game_module.__name__ == "hockey.hockey_env"
    assert gym.registry["Hockey-v0"].entry_point == "naturaldreamer.envs.hockey:HockeyEnv"
    # The stand-in's BasicOpponent draws from the (swapped) global RNG, the port's from its
    # own RandomState: both routes must give the same episode.
    before = global_rng_fingerprint()
    upstream_run = rollout(env, seed=0, steps=200)
    port_run = rollout(make_env("hockey", opponent="strong"), seed=0, steps=200)
    np.testing.assert_array_equal(upstream_run[0], port_run[0])
    np.testing.assert_array_equal(before[0], global_rng_fingerprint()[0])
