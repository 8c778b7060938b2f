"""Behaviour of the ported air-hockey game against the fact sheet (shared/hockey/SPEC.md).

Numbers marked §20 were measured on upstream hockey-env; the others follow from the sheet's
formulas and are derived in the test that uses them.
"""

import math
import pickle
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils import seeding
from gymnasium.utils.env_checker import check_env

from naturaldreamer.envs import hockey
from naturaldreamer.envs.hockey import (
    BasicOpponent,
    HockeyEnv,
    HockeyEnv_BasicOpponent,
    Mode,
)

ZERO_ACTIONS = np.zeros(8)
RED = (235, 98, 53)
BLUE = (93, 158, 199)


@pytest.fixture
def keep_global_rng():
    """Let a test seed numpy's global RNG (BasicOpponent's source) without leaking it."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def make_state(player1=(-3.0, 0.0), player2=(3.0, 0.0), puck=(0.0, 0.0), puck_velocity=(0, 0),
               counters=(0, 0)) -> np.ndarray:
    """An observation-layout state with players at rest, facing forward."""
    state = np.zeros(18)
    state[0:2] = player1
    state[6:8] = player2
    state[12:14] = puck
    state[14:16] = puck_velocity
    state[16:18] = counters
    return state


def play_until_done(env, action=ZERO_ACTIONS, max_steps=400):
    """Step a constant action until the episode ends; returns (steps, last step's results)."""
    for steps in range(1, max_steps + 1):
        result = env.step(action)
        if result[2]:
            return steps, result
    raise AssertionError(f"episode did not end within {max_steps} steps")


# --------------------------------------------------------------------------------- world (§3, §20)

def test_constants_match_the_sheet():
    assert (hockey.FPS, hockey.SCALE, hockey.VIEWPORT_W, hockey.VIEWPORT_H) == (50, 60.0, 600, 480)
    assert (hockey.W, hockey.H, hockey.CENTER_X, hockey.CENTER_Y, hockey.ZONE) == (
        10.0, 8.0, 5.0, 4.0, 0.5)
    assert hockey.MAX_ANGLE == pytest.approx(math.pi / 3)
    assert (hockey.MAX_TIME_KEEP_PUCK, hockey.GOAL_SIZE, hockey.RACKETFACTOR) == (15, 75, 1.2)
    assert (hockey.FORCEMULTIPLIER, hockey.SHOOTFORCEMULTIPLIER, hockey.TORQUEMULTIPLIER,
            hockey.MAX_PUCK_SPEED) == (6000, 60, 400, 25)
    assert hockey.dist_positions(np.array([1.0, 2.0]), np.array([4.0, 6.0])) == 5.0
    many = hockey.dist_positions(np.array([[0.0, 0.0], [3.0, 4.0]]), np.zeros(2))
    np.testing.assert_array_equal(many, [0.0, 5.0])


def test_masses_and_inertias_match_upstream():
    env = HockeyEnv()
    assert np.float32(env.player1.mass) == np.float32(58.000004)  # §20
    for player, sign in ((env.player1, -1), (env.player2, 1)):
        assert player.mass == pytest.approx(58.0, abs=1e-5)
        assert player.inertia == pytest.approx(4.57809, abs=1e-5)
        assert tuple(player.localCenter) == pytest.approx((sign * 0.122375, 0.0), abs=1e-6)
    assert env.puck.mass == pytest.approx(1.032362, abs=1e-6)
    assert env.puck.inertia == pytest.approx(0.0242318, abs=1e-7)


def test_bodies_fixtures_and_collision_bits():
    env = HockeyEnv()
    # 5 decorations + 6 walls, then 2 goals, 2 players, 1 puck.
    assert len(env.world_objects) == 11 and len(env.world.bodies) == 16
    assert env.drawlist[-3:] == [env.player1, env.player2, env.puck]
    decorations, walls = env.world_objects[:5], env.world_objects[5:]
    for body in decorations:
        assert [(f.filterData.categoryBits, f.filterData.maskBits) for f in body.fixtures] == [
            (0, 0)]
    for body in walls:
        (fixture,) = body.fixtures
        assert (fixture.filterData.categoryBits, fixture.filterData.maskBits) == (0x11, 0x11)
        assert fixture.friction == pytest.approx(0.1)
    for goal in (env.goal_player_1, env.goal_player_2):
        kinds = sorted((f.sensor, f.filterData.categoryBits, f.filterData.maskBits)
                       for f in goal.fixtures)
        assert kinds == [(False, 0x10, 0x10), (True, 0x10, 0x01)]
    assert tuple(env.goal_player_1.position) == pytest.approx((0.75, 4.0))
    assert tuple(env.goal_player_2.position) == pytest.approx((9.25, 4.0))
    (puck_fixture,) = env.puck.fixtures
    assert puck_fixture.restitution == pytest.approx(0.95)
    assert env.puck.linearDamping == pytest.approx(0.05)
    # Player angular damping is 0 until the first step (quirk 6), then 2 within the angle limit.
    assert env.player1.angularDamping == 0.0
    env.step(ZERO_ACTIONS)
    assert env.player1.angularDamping == 2.0
    # The puck's spin is never damped (quirk 6).
    assert env.puck.angularDamping == 0.0


# --------------------------------------------------------------------------------- reset (§4, §5)

@pytest.mark.parametrize("one_starting, puck", [(True, (-1.636962, -0.460427)),
                                                (False, (1.636961, -0.460427))])
def test_seed_zero_reset_normal_matches_upstream(one_starting, puck):
    env = HockeyEnv()
    obs, info = env.reset(one_starting=one_starting, seed=0)
    assert obs.dtype == np.float32 and obs.shape == (18,)
    np.testing.assert_allclose(obs[12:14], puck, atol=1e-6)  # §20
    np.testing.assert_array_equal(obs[0:2], [-3.0, 0.0])
    np.testing.assert_array_equal(obs[6:8], [3.0, 0.0])
    if one_starting:
        assert info["reward_closeness_to_puck"] == pytest.approx(-0.0828693, abs=1e-7)


def test_seed_zero_reset_training_modes_match_upstream():
    env = HockeyEnv(mode=Mode.TRAIN_SHOOTING)
    obs, info = env.reset(seed=0)
    np.testing.assert_allclose(obs[6:8], (2.851475, -0.920853), atol=1e-6)  # §20
    np.testing.assert_allclose(obs[12:14], (-1.040973, -0.966945), atol=1e-6)
    assert info["reward_closeness_to_puck"] == pytest.approx(-0.393240, abs=1e-6)

    env = HockeyEnv(mode=Mode.TRAIN_DEFENSE)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs[6:8], (2.851475, -0.920853), atol=1e-6)
    np.testing.assert_allclose(obs[12:14], (0.136579, -3.094223), atol=1e-6)
    np.testing.assert_array_equal(obs[14:16], [0.0, 0.0])  # the kick acts in the first step
    obs, *_ = env.step(ZERO_ACTIONS)
    np.testing.assert_allclose(obs[14:16], (-49.246117, 34.170506), atol=1e-5)
    assert np.hypot(*obs[14:16]) == pytest.approx(60 * 0.999, rel=1e-6)


@pytest.mark.parametrize("seed", [1, 7, 123])
def test_reset_draws_follow_the_documented_order(seed):
    """Each start position is one Generator.uniform draw, in the order of §5."""
    env = HockeyEnv(mode=Mode.TRAIN_SHOOTING)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    c, d = rng.uniform(-10 / 3, 10 / 6), rng.uniform(-2, 2)
    a, b = rng.uniform(1, 2), rng.uniform(-1, 1)
    np.testing.assert_allclose(obs[6:8], (3 + c, d), atol=1e-6)
    np.testing.assert_allclose(obs[12:14], (-a, b), atol=1e-6)

    env.mode = Mode.TRAIN_DEFENSE
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    c, d = rng.uniform(-10 / 3, 10 / 6), rng.uniform(-2, 2)
    e, f, g = rng.uniform(0, 10 / 3), rng.uniform(-4, 4), rng.uniform(-1.25, 1.25)
    np.testing.assert_allclose(obs[12:14], (e, 0.8 * f), atol=1e-6)
    obs, *_ = env.step(ZERO_ACTIONS)
    aim = np.array([0.0, 4 + 0.6 * g]) - np.array([5 + e, 4 + 0.8 * f])
    np.testing.assert_allclose(obs[14:16], 59.94 * aim / np.linalg.norm(aim), atol=1e-4)


def test_normal_mode_alternates_sides_and_unseeded_resets_differ():
    env = HockeyEnv()
    # The constructor reset with one_starting=True, so plain resets go: player 2's half, 1's, 2's.
    sides = [np.sign(env.reset()[0][12]) for _ in range(3)]
    assert sides == [1, -1, 1]
    assert env.reset()[0][13] != env.reset()[0][13]  # fresh entropy at every unseeded reset


def test_reset_with_mode_switches_mode_and_bad_mode_leaves_env_usable():
    env = HockeyEnv()
    obs, _ = env.reset(mode="TRAIN_DEFENSE", seed=0)
    assert env.mode is Mode.TRAIN_DEFENSE and env.max_timesteps == 80
    np.testing.assert_allclose(obs[12:14], (0.136579, -3.094223), atol=1e-6)
    with pytest.raises(ValueError):
        env.reset(mode="PENALTIES")
    assert env.mode is Mode.TRAIN_DEFENSE
    env.step(ZERO_ACTIONS)  # the bodies were not destroyed


def test_mode_property_accepts_names_ints_and_members():
    env = HockeyEnv()
    env.mode = "TRAIN_SHOOTING"
    assert env.mode is Mode.TRAIN_SHOOTING
    env.mode = 2
    assert env.mode is Mode.TRAIN_DEFENSE
    env.mode = Mode.NORMAL
    assert env.mode is Mode.NORMAL
    with pytest.raises(ValueError):
        env.mode = "train_shooting"  # names are case-sensitive, as upstream
    with pytest.raises(ValueError):
        env.mode = 3
    with pytest.raises(TypeError):
        env.mode = 1.0


# --------------------------------------------------------------------------------- step (§6)

def test_twenty_step_rollout_matches_upstream():
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    action = np.array([1, 0.3, 0.5, 0, -0.5, 0.2, -0.3, 0])
    for _ in range(20):
        obs, reward, terminated, truncated, _ = env.step(action)
    expected = [-0.484001, 0.933921, 0.794065, -1.967157, 1.271723, 1.972885, 3.572217,
                -0.813113, -0.798919, 0, -3.271369, 0.743134, -1.636962, -0.460427, 0, 0, 0, 0]
    np.testing.assert_allclose(obs, expected, atol=1e-6)  # §20
    assert reward == pytest.approx(-0.104215, abs=1e-6)
    assert not terminated and not truncated


def test_world_step_uses_dt_and_solver_iterations(monkeypatch):
    env = HockeyEnv()
    calls = []
    world_step = env.world.Step
    monkeypatch.setattr(env.world, "Step", lambda *args: (calls.append(args), world_step(*args)))
    env.step(ZERO_ACTIONS)
    assert calls == [(0.02, 180, 60)]  # once per env step (§2)


def test_boundary_rule_stops_a_player_at_once():
    """Pushing out of the own zone or into a side wall zeroes that velocity, with no force."""
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    state = make_state(player1=(-3.6, 0.0), puck=(0.0, 3.0))  # x < 1.5 in the world
    state[3] = -1.0
    env.set_state(state)
    obs, *_ = env.step([-1, 0, 0, 0, 0, 0, 0, 0])
    assert obs[3] == 0.0 and obs[0] == pytest.approx(-3.6, abs=1e-6)
    state = make_state(player1=(-3.0, 2.9), puck=(0.0, -3.0))  # y > 6.8 in the world
    state[4] = 1.0
    env.set_state(state)
    obs, *_ = env.step([0, 1, 0, 0, 0, 0, 0, 0])
    assert obs[4] == 0.0 and obs[1] == pytest.approx(2.9, abs=1e-6)
    # Both rules at once, in the corner.
    state = make_state(player1=(-3.6, 2.9), puck=(0.0, -3.0))
    state[3:5] = (-1.0, 1.0)
    env.set_state(state)
    obs, *_ = env.step([-1, 1, 0, 0, 0, 0, 0, 0])
    assert obs[3] == obs[4] == 0.0


def test_forces_are_rounded_like_upstream(monkeypatch):
    """§6.10: the action is float32; the centre-band force sums two float32-rounded terms."""
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    forces = []
    apply = env.player1.ApplyForceToCenter
    monkeypatch.setattr(env.player1, "ApplyForceToCenter",
                        lambda force, wake: (forces.append(force), apply(force, wake)))
    env.step([0.3, -0.7, 0, 0, 0, 0, 0, 0])
    # 6000 * float32(0.3) rounds to 1800.0001, not to 1800 as 6000 * 0.3 would.
    assert forces[-1] == (float(np.float32(6000 * np.float32(0.3))),
                          float(np.float32(6000 * np.float32(-0.7))))
    assert forces[-1][0] != 1800.0

    state = make_state(player1=(-0.2, 0.0), puck=(0.0, 3.0))  # in the centre band
    state[3] = 0.123
    env.set_state(state)
    x, vx, mass = env.player1.position[0], env.player1.linearVelocity[0], env.player1.mass
    push = -2 * vx * mass / 0.02
    pull = -(x - 5) * vx * mass / 0.02
    expected = np.float32(push) + np.float32(pull)
    assert expected != np.float32(push + pull)  # these numbers tell the two ways apart
    env.step(ZERO_ACTIONS)
    assert forces[-1][0] == float(expected)


def test_full_action_velocity_saw_tooth():
    """From rest, a_y = 1 accelerates, then the speed cap brakes with damping 20 (§6.3)."""
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    vy = [float(env.step([0, 1, 0, 0, 0, 0, 0, 0])[0][4]) for _ in range(10)]
    expected = [1.862, 3.538, 5.046, 6.404, 7.625, 8.725, 9.714, 10.605, 6.363, 7.589]
    np.testing.assert_allclose(vy, expected, atol=1e-3)


def test_angular_and_linear_damping_of_an_idle_player():
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    state = env._get_obs()
    state[3] = 1.0  # x velocity, outside the centre band: damping 5
    state[5] = 1.0  # angular velocity within the angle limit: damping 2
    env.set_state(state)
    obs, *_ = env.step(ZERO_ACTIONS)
    assert obs[5] == pytest.approx(0.96, abs=1e-6)  # §20
    assert obs[3] == pytest.approx(0.9, abs=1e-6)


def test_centre_band_pushes_player_back():
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    env.set_state(make_state(player1=(-0.2, 0.0), puck=(-3.0, 3.0)))
    for _ in range(20):
        obs, *_ = env.step([1, 0, 0, 0, 0, 0, 0, 0])
    # Full forward action, yet the player never crosses the centre line and stops moving.
    assert -0.5 < obs[0] < 0.0
    assert abs(obs[3]) < 0.5


def test_idle_episodes_time_out_one_step_late_and_report_terminated():
    for mode, length in ((Mode.NORMAL, 251), (Mode.TRAIN_SHOOTING, 81)):  # §20
        env = HockeyEnv(mode=mode)
        env.reset(seed=3)
        steps, (_, reward, terminated, truncated, info) = play_until_done(env)
        assert steps == length
        assert terminated and not truncated  # quirk 1
        assert info["winner"] == 0
        assert reward == info["reward_closeness_to_puck"]


@pytest.mark.parametrize("side", [1, -1])
def test_goal_ends_the_episode_with_ten_and_the_winner(side):
    """A puck shot into a goal: +10 for player 1's goal, -10 for player 2's (§8)."""
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    # The defender of the goal being attacked steps aside.
    player1 = (-3.0, 0.0) if side == 1 else (-2.0, 2.5)
    player2 = (2.0, 2.5) if side == 1 else (3.0, 0.0)
    env.set_state(make_state(player1, player2, puck=(3.0 * side, 0.0),
                             puck_velocity=(15.0 * side, 0.0)))
    steps, (obs, reward, terminated, truncated, info) = play_until_done(env, max_steps=20)
    assert steps < 10
    assert terminated and not truncated
    assert info["winner"] == env.winner == side
    assert reward == 10 * side + info["reward_closeness_to_puck"]
    if side == -1:
        # Puck in player 1's half moving towards it: closeness = distance * -30 / (25/6 * 125).
        distance = np.hypot(*(obs[0:2] - obs[12:14]))
        assert info["reward_closeness_to_puck"] == pytest.approx(-0.0576 * distance, rel=1e-5)
    # Stepping on after the end keeps the game going and pays the goal again (quirk 14).
    _, reward_again, terminated_again, _, _ = env.step(ZERO_ACTIONS)
    assert terminated_again and reward_again == 10 * side + _closeness(env)


def _closeness(env) -> float:
    return env._get_info()["reward_closeness_to_puck"]


def test_closeness_coefficient_depends_on_episode_length():
    for mode, coefficient in ((Mode.NORMAL, -0.0576), (Mode.TRAIN_SHOOTING, -0.18)):
        env = HockeyEnv(mode=mode)
        env.reset(one_starting=True, seed=0)
        env.set_state(make_state(player1=(-3.0, 0.0), puck=(-1.0, 0.0)))
        assert _closeness(env) == pytest.approx(2.0 * coefficient, rel=1e-6)
        # Not counted when the puck moves away from player 1 or is in player 2's half.
        env.set_state(make_state(puck=(-1.0, 0.0), puck_velocity=(0.5, 0.0)))
        assert _closeness(env) == 0.0
        env.set_state(make_state(puck=(1.0, 0.0)))
        assert _closeness(env) == 0.0


def test_info_terms_for_both_players():
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    env.set_state(make_state(player2=(3.0, 0.0), puck=(1.0, 0.0), puck_velocity=(2.0, 0.0),
                             counters=(0, 15)))
    info = env._get_info()
    two = env.get_info_agent_two()
    assert info["reward_puck_direction"] == pytest.approx(2.0 / (250 * 25))
    assert two["reward_puck_direction"] == pytest.approx(-2.0 / (250 * 25))
    assert info["reward_touch_puck"] == 0.0 and two["reward_touch_puck"] == 1.0
    assert info["reward_closeness_to_puck"] == 0.0
    assert two["reward_closeness_to_puck"] == pytest.approx(2.0 * -0.0576, rel=1e-6)
    assert env.get_reward_agent_two(two) == two["reward_closeness_to_puck"]
    assert all(isinstance(value, float) for key, value in info.items() if key != "winner")


def test_puck_never_leaves_the_table_in_long_play(keep_global_rng):
    """Random and scripted play, 300 episodes: the puck stays inside the walls.

    Limits are the walls' inner faces minus the puck radius (13/60), plus 0.02 for the
    overlap Box2D tolerates; only a goal lets the puck through an end line, and it ends the game.
    """
    np.random.seed(0)
    rng = np.random.default_rng(0)
    env = HockeyEnv()
    players = [BasicOpponent(weak=False), BasicOpponent(weak=True)]
    radius = 13 / 60
    for episode in range(300):
        obs, _ = env.reset(seed=episode)
        done = False
        while not done:
            if episode % 2:
                action = rng.uniform(-1, 1, 8)
            else:
                action = np.hstack([players[0].act(obs), players[1].act(env.obs_agent_two())])
            obs, _, done, _, info = env.step(action)
            x, y = obs[12:14]
            assert abs(y) < 4 - 2 / 3 - radius + 0.02
            assert abs(x) < 5.0
            if abs(y) > 1.6:  # beside the goal mouth: inside the end walls
                assert abs(x) < 5 - 0.75 - 1 / 6 - radius + 0.02
            if abs(x) > 4.1 and not done:
                # Past the end walls' inner line only inside the goal mouth.
                assert abs(y) < 1.25 + radius


# --------------------------------------------------------------------------------- possession

def test_catch_carry_and_automatic_shot():
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    env.set_state(make_state(player1=(-3.0, 0.0), puck=(-2.6, 0.0), puck_velocity=(-1.0, 0.0)))
    counters, touches, speeds = [], [], []
    for _ in range(25):
        obs, _, _, _, info = env.step(ZERO_ACTIONS)
        counters.append(int(obs[16]))
        touches.append(info["reward_touch_puck"])
        speeds.append(float(np.hypot(*obs[14:16])))
    catch = counters.index(15)
    # Carried with counters 15 .. 2, shot when the counter would reach 1 (§6.7).
    assert counters[catch:catch + 15] == list(range(15, 1, -1)) + [0]
    assert touches[catch] == 1.0 and sum(touches) == 1.0
    assert max(speeds[catch:catch + 14]) < 0.1  # the puck moves with the (idle) player
    shot = catch + 14
    assert speeds[shot] == pytest.approx(59.94, abs=0.05)  # +60 along the player's facing
    # Above MAX_PUCK_SPEED the puck is damped x0.8 per step (quirk 9).
    assert speeds[shot + 1] == pytest.approx(0.8 * speeds[shot], rel=1e-4)


@pytest.mark.parametrize("side", [1, -1])
@pytest.mark.parametrize("speed, caught", [(0.05, True), (0.5, False)])
def test_a_catch_needs_a_puck_not_moving_away(side, speed, caught):
    """Player 1 catches if puck vx < 0.1, player 2 if vx > -0.1, at the contact's start."""
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    # The puck slightly overlaps the flat face of player `side`, moving away at `speed`.
    env.set_state(make_state(puck=(-2.7 * side, 0.0), puck_velocity=(speed * side, 0.0)))
    obs, *_ = env.step(ZERO_ACTIONS)
    counters = (obs[16], obs[17]) if side == 1 else (obs[17], obs[16])
    assert counters == ((15, 0) if caught else (0, 0))


def test_shoot_action_releases_the_puck_at_once():
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    env.set_state(make_state(player2=(2.6, 0.0), puck=(2.2, 0.0), puck_velocity=(1.0, 0.0)))
    for _ in range(10):
        obs, *_ = env.step(ZERO_ACTIONS)
        if obs[17] == 15:
            break
    assert obs[17] == 15
    obs, *_ = env.step([0, 0, 0, 0, 0, 0, 0, 1])
    assert obs[17] == 0
    # Player 2 faces left at angle 0: the shot goes to -x.
    assert obs[14] == pytest.approx(-59.94, abs=0.05)


def test_possession_counters_carry_across_reset():
    env = HockeyEnv()
    obs, _ = env.reset(seed=0)
    assert obs[16] == obs[17] == 0
    env.set_state(make_state(counters=(15, 7)))
    obs, info = env.reset(one_starting=True, seed=0)
    assert (obs[16], obs[17]) == (15, 7)  # quirk 19
    assert info["reward_touch_puck"] == 1.0
    obs, *_ = env.step(ZERO_ACTIONS)
    # Both players pull the new puck; player 2's teleport comes last and wins.
    assert (obs[16], obs[17]) == (14, 6)
    assert np.hypot(*(obs[12:14] - obs[6:8])) < 0.5


# --------------------------------------------------------------------------------- observation

def test_agent_two_observation_is_the_point_mirror():
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    state = np.array([-2.0, 0.5, 0.3, 1.0, -0.5, 0.2, 1.5, -0.8, -0.2, -1.0, 0.7, -0.4,
                      -0.6, 0.3, -3.0, 0.5, 4.0, 9.0])
    env.set_state(state)
    np.testing.assert_allclose(env._get_obs(), state, atol=1e-6)
    p1, a1, v1, w1 = state[0:2], state[2], state[3:5], state[5]
    p2, a2, v2, w2 = state[6:8], state[8], state[9:11], state[11]
    expected = np.concatenate([-p2, [a2], -v2, [w2], -p1, [a1], -v1, [w1],
                               -state[12:14], -state[14:16], [9.0, 4.0]])
    two = env.obs_agent_two()
    assert two.dtype == np.float32
    np.testing.assert_allclose(two, expected, atol=1e-6)


def mirror(state: np.ndarray) -> np.ndarray:
    """The state of the game turned by 180 degrees about the table centre, players swapped."""
    mirrored = np.concatenate([state[6:12], state[0:6], state[12:16], state[[17, 16]]])
    mirrored[[0, 1, 3, 4, 6, 7, 9, 10, 12, 13, 14, 15]] *= -1
    return mirrored


def test_game_is_symmetric_under_the_mirror():
    """Player 2 in a game equals player 1 in the mirrored game with the actions swapped.

    This checks the observation mirror together with the action conventions (player 2's forces
    and shot negated, torque not) through 30 steps of physics that include a catch and a shot.
    """
    state = np.array([-2.0, 0.5, 0.3, 1.0, -0.5, 0.2, 1.5, -0.8, -0.2, -1.0, 0.7, -0.4,
                      -0.6, 0.3, -3.0, 0.5, 0, 0])
    action_1 = np.array([0.8, -0.3, 0.6, 0])
    action_2 = np.array([-0.2, 0.9, -0.4, 0])
    game, mirrored_game = HockeyEnv(), HockeyEnv()
    game.reset(seed=0)
    mirrored_game.reset(seed=0)
    game.set_state(state)
    mirrored_game.set_state(mirror(state))
    caught = False
    for _ in range(30):
        game.step(np.concatenate([action_1, action_2]))
        obs, *_ = mirrored_game.step(np.concatenate([action_2, action_1]))
        np.testing.assert_allclose(game.obs_agent_two(), obs, atol=1e-4)
        caught |= obs[17] > 0
    assert caught


def test_set_state_then_step_is_deterministic_whatever_the_history():
    state = np.array([-2.0, 0.5, 0.3, 1.0, -0.5, 0.2, 1.5, -0.8, -0.2, -1.0, 0.7, -0.4,
                      -0.6, 0.3, -3.0, 0.5, 0, 0])
    action = np.array([0.8, -0.3, 0.6, 0, -0.2, 0.9, -0.4, 0])
    results = []
    for history in range(3):
        env = HockeyEnv()
        env.reset(seed=history)
        rng = np.random.default_rng(history)
        for _ in range(40 * history):
            env.step(rng.uniform(-1, 1, 8))
        env.set_state(state)
        results.append(env.step(action))
    for obs, reward, _, _, info in results[1:]:
        np.testing.assert_allclose(obs, results[0][0], atol=1e-6)
        assert reward == pytest.approx(results[0][1], abs=1e-6)
        assert info == pytest.approx(results[0][4], abs=1e-6)


def test_same_seed_gives_the_same_episode():
    episodes = []
    for _ in range(2):
        env = HockeyEnv()
        observations = [env.reset(one_starting=True, seed=11)[0]]
        rng = np.random.default_rng(5)
        for _ in range(150):
            observations.append(env.step(rng.uniform(-1, 1, 8))[0])
        episodes.append(np.array(observations))
    np.testing.assert_array_equal(episodes[0], episodes[1])


def test_keep_mode_off_has_16_observations_and_6_actions():
    env = HockeyEnv(keep_mode=False, mode=Mode.TRAIN_SHOOTING)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (16,) and env.observation_space.shape == (16,)
    assert env.action_space.shape == (6,) and env.num_actions == 3
    assert env.discrete_to_continous_action(7) == [0.0, 0.0, 0.0]
    obs, *_ = env.step(np.ones(6))
    assert obs.shape == (16,) and env.player1_has_puck == 0


def test_discrete_actions():
    env = HockeyEnv()
    expected = {0: [0, 0, 0, 0], 1: [-1, 0, 0, 0], 2: [1, 0, 0, 0], 3: [0, -1, 0, 0],
                4: [0, 1, 0, 0], 5: [0, 0, -1, 0], 6: [0, 0, 1, 0], 7: [0, 0, 0, 1]}
    for code, action in expected.items():
        assert env.discrete_to_continous_action(code) == action
    assert env.discrete_action_space.n == 7  # quirk 5


# --------------------------------------------------------------------------------- API

def test_built_in_opponent_env_uses_the_opponent_on_agent_two_view(keep_global_rng):
    # Both opponents draw from the global RNG, so give each the same draws by re-seeding.
    np.random.seed(5)
    env = HockeyEnv_BasicOpponent(weak_opponent=True)
    np.random.seed(5)
    reference = HockeyEnv()
    opponent = BasicOpponent(weak=True)
    assert env.opponent.weak and env.action_space.shape == (4,)
    obs, _ = env.reset(seed=2)
    reference.reset(seed=2)
    for step in range(50):
        action = np.array([0.5, -0.2, 0.1, 0.0])
        np.random.seed(step)
        expected = reference.step(np.hstack([action, opponent.act(reference.obs_agent_two())]))
        np.random.seed(step)
        obs, reward, *_ = env.step(action)
        np.testing.assert_array_equal(obs, expected[0])
        assert reward == expected[1]


def test_gymnasium_registrations_import_our_module():
    env = gym.make("Hockey-One-v0", mode=0, weak_opponent=True)
    assert isinstance(env.unwrapped, HockeyEnv_BasicOpponent) and env.unwrapped.opponent.weak
    obs, _ = env.reset(seed=0)
    env.step(env.action_space.sample())
    assert gym.make("Hockey-v0").action_space.shape == (8,)
    hockey.register_hockey_ids()  # again: no error, nothing replaced
    assert gym.registry["Hockey-v0"].entry_point == "naturaldreamer.envs.hockey:HockeyEnv"


def test_pickled_env_comes_back_as_a_default_env():
    env = HockeyEnv(mode=Mode.TRAIN_DEFENSE)
    assert pickle.loads(pickle.dumps(env)).mode is Mode.NORMAL  # quirk 17


def test_render_rgb_array_headless():
    env = HockeyEnv()
    env.reset(one_starting=True, seed=0)
    image = env.render(mode="rgb_array")
    assert image.dtype == np.uint8 and image.shape == (480, 600, 3)

    def pixel(x, y):  # world coordinates -> screen row/column (y points up on screen)
        return tuple(image[int(480 - y * 60), int(x * 60)])

    assert pixel(1.9, 4.0) == RED
    assert pixel(8.1, 4.0) == BLUE
    puck_x, puck_y = env.puck.position
    assert pixel(puck_x, puck_y) == (0, 0, 0)
    assert pixel(5.0, 7.5) == (0, 0, 0)  # top wall
    assert pixel(5.0, 5.0) == (204, 204, 204)  # centre circle
    assert pixel(3.0, 2.0) == (255, 255, 255)
    with pytest.warns(UserWarning):
        assert env.render(mode=None) is None


def test_render_human_without_display_uses_dummy_driver(monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    env = HockeyEnv()
    assert env.render(mode="human") is None
    import os
    assert os.environ["SDL_VIDEODRIVER"] == "dummy"
    assert env.screen is not None
    env.close()
    assert not env.isopen


def test_human_opponent_maps_keys_per_player(monkeypatch):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    import pygame

    from naturaldreamer.envs.hockey import HumanOpponent

    env = HockeyEnv()
    pressed = set()

    class HeldKeys:  # stands in for pygame's key state
        def __getitem__(self, key):
            return key in pressed

    monkeypatch.setattr(pygame.key, "get_pressed", HeldKeys)
    one, two = HumanOpponent(env, player=1), HumanOpponent(env, player=2)
    assert one.act(None) == [0.0, 0.0, 0.0, 0.0]
    pressed.add(pygame.K_LEFT)
    assert one.act(None) == [-1.0, 0.0, 0.0, 0.0]
    assert two.act(None) == [1.0, 0.0, 0.0, 0.0]  # mirrored: left on screen for player 2
    pressed.add(pygame.K_SPACE)
    assert one.act(None) == [0.0, 0.0, 0.0, 1.0]  # the last pressed key in the map wins
    env.close()


def test_importing_the_envs_does_not_import_pygame():
    code = "import sys, naturaldreamer.envs; assert 'pygame' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


ALLOWED_CHECKER_WARNINGS = (
    "minimum value is -infinity",  # positions and speeds have no hard bound
    "maximum value is infinity",
    "support for the `seed` function is dropped",  # upstream API
    "not having a spec",
)


def check_env_with_allowed_warnings(env):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    unexpected = [str(w.message) for w in caught
                  if not any(text in str(w.message) for text in ALLOWED_CHECKER_WARNINGS)]
    assert not unexpected


@pytest.fixture
def reproducible_entropy(monkeypatch):
    """gymnasium's checker resets the env and samples an action without a seed (fresh entropy).
    A possession counter that such a step leaves behind survives the checker's next seeded
    reset (quirk 19), so its same-seed-same-step comparison fails in a few runs out of a hundred
    in TRAIN_DEFENSE. Unseeded draws here come from a fixed seed instead, so the check is the
    same in every run."""
    fixed = seeding.np_random

    def np_random(seed=None):
        return fixed(20_251 if seed is None else seed)

    monkeypatch.setattr(seeding, "np_random", np_random)


@pytest.mark.parametrize("mode", [Mode.TRAIN_SHOOTING, Mode.TRAIN_DEFENSE])
@pytest.mark.parametrize("keep_mode", [True, False])
def test_check_env_passes_in_training_modes(mode, keep_mode, reproducible_entropy):
    check_env_with_allowed_warnings(HockeyEnv(keep_mode=keep_mode, mode=mode))


def test_a_carried_counter_breaks_the_same_seed_step():
    """Why the checker above needs fixed entropy: after a step that leaves player 2 holding the
    puck, two resets with the same seed and the same action give different observations."""
    env = HockeyEnv(mode=Mode.TRAIN_DEFENSE)
    action = np.zeros(8)
    env.reset(seed=123)
    env.player2_has_puck = 15  # as after a catch in the step before
    first = env.step(action)[0].copy()
    env.reset(seed=123)
    second = env.step(action)[0]
    assert first[17] != second[17]
    np.testing.assert_array_equal(np.delete(first, 17), np.delete(second, 17))


def test_check_env_normal_mode_only_trips_over_alternating_sides():
    """NORMAL mode alternates the puck's side at every reset, seeded or not (upstream
    behaviour kept on purpose), so gymnasium's same-seed-same-step check must fail there."""
    env = HockeyEnv()
    first, _ = env.reset(seed=123)
    second, _ = env.reset(seed=123)
    np.testing.assert_allclose(first[12:14], second[12:14] * [-1, 1], atol=1e-6)
    with pytest.raises(AssertionError, match="Deterministic step observations"):
        check_env(HockeyEnv())
