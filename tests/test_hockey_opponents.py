"""The scripted BasicOpponent (§12 of shared/hockey/SPEC.md) and strong-vs-weak statistics."""

import math

import numpy as np
import pytest

from naturaldreamer.envs.hockey import BasicOpponent, HockeyEnv_BasicOpponent


@pytest.fixture(autouse=True)
def keep_global_rng():
    """BasicOpponent draws from numpy's global RNG; tests seed it and must not leak that."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def observation(pose=(0.0, 0.0, 0.0), velocity=(0.0, 0.0, 0.0), puck=(0.0, 0.0),
                puck_velocity=(0.0, 0.0), counter=0) -> np.ndarray:
    obs = np.zeros(18)
    obs[0:3], obs[3:6], obs[16] = pose, velocity, counter
    obs[12:14], obs[14:16] = puck, puck_velocity
    return obs


def opponent_and_angle_target(weak: bool, seed: int = 0) -> tuple[BasicOpponent, float]:
    """An opponent built from a seeded global RNG, and the target angle of its first act."""
    np.random.seed(seed)
    opponent = BasicOpponent(weak=weak)
    draws = np.random.RandomState(seed)
    phase = draws.uniform(0, np.pi) + draws.uniform(0, 0.2)
    return opponent, math.pi / 3 * math.sin(phase)


def test_draws_one_global_number_at_construction_and_one_per_act():
    np.random.seed(3)
    opponent = BasicOpponent()
    draws = np.random.RandomState(3)
    phase = draws.uniform(0, np.pi)
    assert opponent.phase == phase
    opponent.act(observation())
    assert opponent.phase == phase + draws.uniform(0, 0.2)
    # Nothing else was drawn: the global stream continues exactly where `draws` is.
    assert np.random.uniform() == draws.uniform()


def test_private_rng_gives_the_global_draws_without_touching_them():
    obs = observation(pose=(-2.0, 0.1, 0.2), puck=(-1.0, 0.3), puck_velocity=(-1.0, 2.0))
    np.random.seed(11)
    global_actions = [BasicOpponent().act(obs)]
    before = np.random.get_state()[1].copy()
    private = BasicOpponent(rng=np.random.RandomState(11))
    np.testing.assert_array_equal(private.act(obs), global_actions[0])
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_puck_moving_away_means_guard_the_goal():
    """pvx >= 0.5: target (-3.5, 0). Errors are large, so no axis brakes."""
    obs = observation(pose=(-1.0, 1.0, 0.0), puck=(2.0, 1.0), puck_velocity=(1.0, 0.0))
    weak, angle = opponent_and_angle_target(weak=True)
    # Gains (kp, kp/5, kp/2) = (0.5, 0.1, 0.25) on errors (-2.5, -1, angle).
    np.testing.assert_allclose(weak.act(obs), [-1.0, -0.1, 0.25 * angle, 0.0], atol=1e-12)
    strong, angle = opponent_and_angle_target(weak=False)
    # Gains (10, 2, 5): both position actions saturate.
    expected_turn = np.clip(5 * angle, -1, 1)
    np.testing.assert_allclose(strong.act(obs), [-1.0, -1.0, expected_turn, 0.0], atol=1e-12)


def test_puck_coming_and_player_in_front_means_get_behind_it():
    """pvx < 0.5 and not behind the puck: target (-3.5, puck y)."""
    obs = observation(pose=(1.0, 0.0, 0.0), puck=(0.0, 1.5), puck_velocity=(-2.0, 0.3))
    weak, angle = opponent_and_angle_target(weak=True, seed=1)
    np.testing.assert_allclose(weak.act(obs), [-1.0, 0.15, 0.25 * angle, 0.0], atol=1e-12)


def test_player_behind_the_puck_goes_for_it():
    """x < puck x and |y - puck y| < 0.5: target (px + 0.2, py + 0.1 * pvy * distance)."""
    obs = observation(pose=(-2.0, 0.0, 0.0), puck=(-1.0, 0.3), puck_velocity=(-1.0, 2.0))
    weak, angle = opponent_and_angle_target(weak=True, seed=2)
    distance = math.hypot(1.0, 0.3)
    target_y = 0.3 + 0.1 * 2.0 * distance
    expected = [0.5 * 1.2, 0.1 * target_y, 0.25 * angle, 0.0]
    np.testing.assert_allclose(weak.act(obs), expected, atol=1e-12)


def test_brakes_near_the_target():
    """An axis brakes with -kd * v when |error / (v + 0.01)| is below its horizon."""
    # Guarding (puck away), 0.1 short of x = -3.5 and moving there at 2/s: 0.05 s < 0.1 s.
    obs = observation(pose=(-3.4, 0.0, 0.0), velocity=(-2.0, 0.0, 0.0), puck_velocity=(1.0, 0))
    strong, angle = opponent_and_angle_target(weak=False, seed=4)
    action = strong.act(obs)
    assert action[0] == pytest.approx(10 * -0.1 - 0.5 * -2.0, abs=1e-12)  # = 0
    assert action[1] == 0.0  # zero error and speed: "brakes" with zero velocity
    # The same error while standing still: 0.1 / 0.01 = 10 s, no braking.
    standing = observation(pose=(-3.4, 0.0, 0.0), puck_velocity=(1.0, 0.0))
    strong, _ = opponent_and_angle_target(weak=False, seed=4)
    assert strong.act(standing)[0] == pytest.approx(-1.0)


@pytest.mark.parametrize("counter, shoot", [(0, 0.0), (1, 1.0), (6, 1.0), (7, 0.0), (15, 0.0)])
def test_shoots_when_possession_counter_is_low(counter, shoot):
    opponent, _ = opponent_and_angle_target(weak=True)
    assert opponent.act(observation(counter=counter))[3] == shoot


def test_without_keep_mode_returns_three_actions():
    np.random.seed(0)
    opponent = BasicOpponent(keep_mode=False)
    assert opponent.act(observation(counter=3)[:16]).shape == (3,)


def test_float32_observation_gives_the_same_action():
    obs = observation(pose=(-2.0, 0.1, 0.2), velocity=(0.3, -0.2, 0.1), puck=(-1.0, 0.3),
                      puck_velocity=(-1.0, 2.0))
    obs32 = obs.astype(np.float32)
    first, _ = opponent_and_angle_target(weak=False, seed=8)
    from_float64 = first.act(obs32.astype(np.float64))
    second, _ = opponent_and_angle_target(weak=False, seed=8)
    np.testing.assert_array_equal(second.act(obs32), from_float64)


def play_strong_against_weak(games: int, strong_is_player_one: bool = True):
    """§20's measurement: one env reused (counters carry over), reset(seed=i) per game.

    Returns (win, draw, loss) fractions of the player-1 script and the mean episode length.
    """
    env = HockeyEnv_BasicOpponent(weak_opponent=strong_is_player_one)
    player = BasicOpponent(weak=not strong_is_player_one)
    outcomes, lengths = [], []
    for game in range(games):
        obs, _ = env.reset(seed=game)
        done, steps = False, 0
        while not done:
            obs, _, done, _, info = env.step(player.act(obs))
            steps += 1
        outcomes.append(info["winner"])
        lengths.append(steps)
    outcomes = np.array(outcomes)
    rates = [np.mean(outcomes == 1), np.mean(outcomes == 0), np.mean(outcomes == -1)]
    return rates, np.array(lengths)


def test_strong_beats_weak_at_the_measured_rates():
    """300 games; upstream over 2000: 39.2 % wins, 45.8 % draws, 15.1 % losses, mean 173.8.

    Each rate must lie within 3 standard errors of upstream's for this sample size, and wins
    must beat losses by more than 10 points (upstream: 24, with a standard error of ~4 here).
    """
    np.random.seed(0)
    games = 300
    (win, draw, loss), lengths = play_strong_against_weak(games)
    for rate, upstream in ((win, 0.392), (draw, 0.458), (loss, 0.151)):
        standard_error = math.sqrt(upstream * (1 - upstream) / games)
        assert abs(rate - upstream) < 3 * standard_error
    assert win - loss > 0.10
    assert abs(lengths.mean() - 173.8) < 3 * lengths.std() / math.sqrt(games)
