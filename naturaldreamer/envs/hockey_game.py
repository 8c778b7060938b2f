"""The two-player air-hockey game: a port of upstream `hockey.hockey_env` (hockey-env 2.6).

Written from a specification of the upstream game (kept outside this repository), not from upstream
code. The section numbers in comments (§6.3, §18 quirk 7, ...) point into it. Upstream's odd
behaviours are kept on purpose, because agents trained here are later played against the upstream
game; the only ones fixed are those no working program can rely on (§18 quirks 2, 3 and the
observation dtype/shape of quirk 4).

Units: Box2D world units (metres); upstream writes sizes in pixels, `px / SCALE`. Box2D stores
positions, velocities, forces and masses as float32, and §6.10 of the specification lists where
upstream's own arithmetic is float32 too. The code below repeats those roundings: without them one
step differs by ~1e-5, and since the game is chaotic, long seeded rollouts drift apart from
upstream.
"""

import math
import os
import sys
from enum import Enum

import Box2D
import gymnasium as gym
import numpy as np
from Box2D.b2 import circleShape, contactListener, fixtureDef, polygonShape
from gymnasium import spaces
from gymnasium.error import DependencyNotInstalled
from gymnasium.utils import EzPickle, seeding

FPS = 50
SCALE = 60.0  # pixels per world unit
VIEWPORT_W = 600
VIEWPORT_H = 480
W = VIEWPORT_W / SCALE
H = VIEWPORT_H / SCALE
CENTER_X = W / 2
CENTER_Y = H / 2
ZONE = W / 20  # half-width of the neutral band around the centre line
MAX_ANGLE = math.pi / 3  # soft limit of a player's rotation
MAX_TIME_KEEP_PUCK = 15  # possession counter right after a catch
GOAL_SIZE = 75  # half-height of a goal, px
RACKETPOLY = [(-10, 20), (5, 20), (5, -20), (-10, -20), (-18, -10), (-21, 0), (-18, 10)]
RACKETFACTOR = 1.2
FORCEMULTIPLIER = 6000
SHOOTFORCEMULTIPLIER = 60
TORQUEMULTIPLIER = 400
MAX_PUCK_SPEED = 25

MAX_PLAYER_SPEED = 10  # above it a player may only brake (§6.3)
VELOCITY_ITERATIONS = 180
POSITION_ITERATIONS = 60
EPISODE_STEPS_NORMAL = 250
EPISODE_STEPS_TRAINING = 80

# Collision categories (§3.6). Players touch walls, each other and the puck; goals share the
# players' category: a goal's solid copy masks players only, its sensor the puck only.
# Decorations have category and mask 0 and touch nothing.
PUCK_BITS = 0x01
PLAYER_BITS = 0x10
WALL_BITS = PUCK_BITS | PLAYER_BITS

RED = (235, 98, 53)
BLUE = (93, 158, 199)
BLACK = (0, 0, 0)
GREY = (128, 128, 128)

# Observation indices of the three positions, which are reported relative to the table centre.
_POSITION_INDICES = [0, 1, 6, 7, 12, 13]
_CENTER32 = np.array([CENTER_X, CENTER_Y] * 3, dtype=np.float32)
# Agent two's view (§7): swap the players, negate positions and velocities, keep angles.
_MIRROR_ORDER = [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 17, 16]
_MIRROR_SIGN = np.array([-1, -1, 1, -1, -1, 1] * 2 + [-1] * 4 + [1, 1], dtype=np.float32)


def dist_positions(p1, p2) -> np.ndarray | float:
    """Euclidean distance between 2-vectors (or arrays of them, along the last axis)."""
    return np.sqrt(np.sum((np.asarray(p1) - np.asarray(p2)) ** 2, axis=-1))


def _engine_distance(position_a, position_b) -> float:
    """Distance as upstream computes it: float32 difference, then float64 squares and root."""
    dx = float(np.float32(position_a[0]) - np.float32(position_b[0]))
    dy = float(np.float32(position_a[1]) - np.float32(position_b[1]))
    return math.sqrt(dx * dx + dy * dy)


class Mode(Enum):
    """Which game is played: the full game, or one of the two shorter training drills."""

    NORMAL = 0
    TRAIN_SHOOTING = 1
    TRAIN_DEFENSE = 2


class ContactDetector(contactListener):
    """Box2D listener that turns contact-begin events into goals and puck catches (§6.8)."""

    def __init__(self, env: "HockeyEnv", verbose: bool = False):
        contactListener.__init__(self)
        self.env = env
        self.verbose = verbose

    def BeginContact(self, contact) -> None:
        """Score a goal or start a possession; runs inside the world step."""
        env = self.env
        bodies = (contact.fixtureA.body, contact.fixtureB.body)
        if env.puck not in bodies:
            return
        if env.goal_player_2 in bodies:
            if self.verbose:
                print("Player 1 scored")
            env.done = True
            env.winner = 1
        if env.goal_player_1 in bodies:
            if self.verbose:
                print("Player 2 scored")
            env.done = True
            env.winner = -1
        if not env.keep_mode:
            return
        # The x velocity is read mid-step (quirk 12); a catch needs a free counter.
        puck_vx = env.puck.linearVelocity[0]
        if env.player1 in bodies and puck_vx < 0.1 and env.player1_has_puck == 0:
            env.player1_has_puck = MAX_TIME_KEEP_PUCK
        if env.player2 in bodies and puck_vx > -0.1 and env.player2_has_puck == 0:
            env.player2_has_puck = MAX_TIME_KEEP_PUCK

    def EndContact(self, contact) -> None:
        """Ends of contacts do not matter to the game."""


def _world_vertices(pixel_poly, flip_x: bool = False, flip_y: bool = False) -> list:
    """Convert a pixel polygon to world units, optionally mirrored."""
    sign_x = -1 if flip_x else 1
    sign_y = -1 if flip_y else 1
    return [(sign_x * x / SCALE, sign_y * y / SCALE) for x, y in pixel_poly]


class HockeyEnv(gym.Env, EzPickle):
    """Two-player air hockey: player 1 (red, left) against player 2 (blue, right).

    `step` takes both players' actions concatenated: per player force x, force y, torque and,
    with `keep_mode`, a shoot flag, each in [-1, 1]. Player 2's x/y actions are in its own
    mirrored frame, so a policy written for player 1 drives player 2 when it is fed
    `obs_agent_two()`. Observations are float32 (upstream returns float64 arrays of the same
    float32 values, so nothing is lost).
    """

    metadata = {"render.modes": ["human", "rgb_array"], "render_fps": FPS}
    continuous = False

    def __init__(
        self, keep_mode: bool = True, mode: int | str | Mode = Mode.NORMAL, verbose: bool = False
    ):
        # Upstream pickles without arguments, so an unpickled env is a default one (quirk 17).
        EzPickle.__init__(self)
        self.seed()
        self.screen = None
        self.clock = None
        self.surf = None
        self.isopen = True
        self.mode = mode
        self.keep_mode = keep_mode
        self.player1_has_puck = 0
        self.player2_has_puck = 0

        self.world = Box2D.b2World(gravity=(0, 0))
        self.player1 = None
        self.player2 = None
        self.puck = None
        self.goal_player_1 = None
        self.goal_player_2 = None
        self.world_objects = []
        self.drawlist = []
        self.done = False
        self.winner = 0
        self.one_starts = True
        self.timeStep = 1.0 / FPS
        self.time = 0
        self.max_timesteps = None
        self.closest_to_goal_dist = 1000
        self.prev_shaping = None

        obs_size = 18 if keep_mode else 16
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(obs_size,), dtype=np.float32)
        self.num_actions = 4 if keep_mode else 3
        self.action_space = spaces.Box(-1, +1, (self.num_actions * 2,), dtype=np.float32)
        # Upstream says 7 although code 7 (shoot) exists (quirk 5).
        self.discrete_action_space = spaces.Discrete(7)
        self.verbose = verbose
        self.reset(self.one_starts)

    # ----------------------------------------------------------------------------- mode, seed

    @property
    def mode(self) -> Mode:
        """The game mode; a change takes effect at the next reset."""
        return self._mode

    @mode.setter
    def mode(self, value: int | str | Mode) -> None:
        if isinstance(value, Mode):
            self._mode = value
        elif isinstance(value, str):
            if value not in Mode.__members__:
                names = list(Mode.__members__)
                raise ValueError(f"unknown mode name {value!r}; use one of {names}")
            self._mode = Mode[value]
        elif isinstance(value, int):
            try:
                self._mode = Mode(value)
            except ValueError:
                raise ValueError(
                    f"unknown mode value {value}; use one of {[m.value for m in Mode]}"
                ) from None
        else:
            raise TypeError(f"mode must be a Mode, a name or an int, not {type(value).__name__}")

    def seed(self, seed: int | None = None) -> list[int]:
        """Replace the env's random generator; returns `[seed used]`."""
        self.np_random, seed = seeding.np_random(seed)
        return [seed]

    def r_uniform(self, mini: float, maxi: float) -> float:
        """One uniform draw from the env's random generator."""
        return float(self.np_random.uniform(mini, maxi))

    # ----------------------------------------------------------------------------- building

    def _destroy(self) -> None:
        if self.player1 is None:
            return
        # Detach the listener first so that destroying bodies fires no game events.
        self.world.contactListener = None
        for body in [self.player1, self.player2, self.puck, self.goal_player_1,
                     self.goal_player_2, *self.world_objects]:
            self.world.DestroyBody(body)
        self.player1 = self.player2 = self.puck = None
        self.goal_player_1 = self.goal_player_2 = None
        self.world_objects = []
        self.drawlist = []

    def _create_static(self, position, shape, color, category: int, mask: int, **fixture):
        body = self.world.CreateStaticBody(
            position=position,
            angle=0.0,
            fixtures=fixtureDef(shape=shape, categoryBits=category, maskBits=mask, **fixture),
        )
        body.userData = {"color": color}
        return body

    def _create_world(self) -> None:
        """Create the 5 decorations and 6 walls, in upstream's order (§3.1, §3.2)."""
        left_mask = [(0, 100), (100, 100), (100, -100), (0, -100)]
        right_mask = [(100, 100), (0, 100), (0, -100), (100, -100)]
        goal_disc = circleShape(radius=GOAL_SIZE / SCALE, pos=(0, 0))
        decorations = [
            ((CENTER_X, CENTER_Y), circleShape(radius=100 / SCALE, pos=(0, 0)), (204, 204, 204)),
            ((CENTER_X - 250 / SCALE, CENTER_Y), goal_disc, (239, 203, 138)),
            ((CENTER_X - 240 / SCALE, CENTER_Y),
             polygonShape(vertices=_world_vertices(left_mask)), (255, 255, 255)),
            ((CENTER_X + 250 / SCALE, CENTER_Y), goal_disc, (239, 203, 138)),
            ((CENTER_X + 140 / SCALE, CENTER_Y),
             polygonShape(vertices=_world_vertices(right_mask)), (255, 255, 255)),
        ]
        objects = [self._create_static(position, shape, color, 0, 0)
                   for position, shape, color in decorations]

        side = [(-250, 10), (-250, -10), (250, -10), (250, 10)]
        # End-wall piece from the side wall to the goal mouth: 135 px = (H - 1) / 2 * SCALE -
        # GOAL_SIZE; its rink-facing edge is 7 px shorter, which bevels the goal post.
        post = [(-10, 135), (10, 128), (10, -5), (-10, -5)]
        left_x = CENTER_X - 245 / SCALE
        right_x = CENTER_X + 245 / SCALE
        walls = [
            ((CENTER_X, H - 0.5), _world_vertices(side)),
            ((CENTER_X, 0.5), _world_vertices(side)),
            ((left_x, H - 0.5), _world_vertices(post, flip_y=True)),
            ((left_x, 0.5), _world_vertices(post)),
            ((right_x, H - 0.5), _world_vertices(post, flip_x=True, flip_y=True)),
            ((right_x, 0.5), _world_vertices(post, flip_x=True)),
        ]
        objects += [
            self._create_static(position, polygonShape(vertices=vertices), BLACK, WALL_BITS,
                                WALL_BITS, density=0, friction=0.1, restitution=0.0)
            for position, vertices in walls
        ]
        self.world_objects = objects
        self.drawlist = list(objects)

    def _create_goal(self, position, poly):
        """A goal: a sensor that sees the puck plus a solid copy that stops players (§3.3)."""
        vertices = _world_vertices(poly)
        goal = self.world.CreateStaticBody(
            position=position,
            angle=0.0,
            fixtures=[
                fixtureDef(shape=polygonShape(vertices=vertices), density=0, friction=0.1,
                           categoryBits=PLAYER_BITS, maskBits=PUCK_BITS, isSensor=True),
                fixtureDef(shape=polygonShape(vertices=vertices), density=0, friction=0.1,
                           categoryBits=PLAYER_BITS, maskBits=PLAYER_BITS),
            ],
        )
        goal.userData = {"color": GREY}  # assigned but never drawn (quirk 15)
        return goal

    def _create_player(self, position, color, is_player_two: bool):
        """A player; angular damping stays at 0 until the first step sets it (quirk 6)."""
        sign = -1 if is_player_two else 1
        vertices = [(sign * x * RACKETFACTOR / SCALE, y * RACKETFACTOR / SCALE)
                    for x, y in RACKETPOLY]
        player = self.world.CreateDynamicBody(
            position=position,
            angle=0.0,
            fixtures=fixtureDef(shape=polygonShape(vertices=vertices),
                                density=200.0 / RACKETFACTOR, friction=1.0, restitution=0.0,
                                categoryBits=PLAYER_BITS, maskBits=PUCK_BITS | PLAYER_BITS),
        )
        player.userData = {"color": color}
        return player

    def _create_puck(self, position, color):
        puck = self.world.CreateDynamicBody(
            position=position,
            angle=0.0,
            fixtures=fixtureDef(shape=circleShape(radius=13 / SCALE, pos=(0, 0)), density=7.0,
                                friction=0.1, restitution=0.95, categoryBits=PUCK_BITS,
                                maskBits=PLAYER_BITS),
            linearDamping=0.05,
        )
        puck.userData = {"color": color}
        return puck

    def _kick_puck_towards_own_goal(self) -> None:
        """TRAIN_DEFENSE: push the puck at 60 units/s towards player 1's goal line (§5)."""
        aim_y = np.float32(H / 2 + 0.6 * self.r_uniform(-GOAL_SIZE / SCALE, GOAL_SIZE / SCALE))
        position = np.array(tuple(self.puck.position), dtype=np.float32)
        direction = position - np.array([0.0, aim_y], dtype=np.float32)
        length = np.sqrt(direction[0] * direction[0] + direction[1] * direction[1])
        direction = direction / length
        force = -direction * np.float32(SHOOTFORCEMULTIPLIER)
        force = force * np.float32(self.puck.mass) / np.float32(self.timeStep)
        self.puck.ApplyForceToCenter((float(force[0]), float(force[1])), True)

    # ----------------------------------------------------------------------------- reset

    def reset(
        self,
        one_starting: bool | None = None,
        mode: int | str | Mode | None = None,
        seed: int | None = None,
        options: dict | None = None,
    ) -> tuple[np.ndarray, dict]:
        """Start a new episode; returns player 1's observation and info.

        In NORMAL mode the puck starts in player 1's half when `one_starting` is true; when it is
        None the side alternates. Passing `mode` switches the mode (upstream raises here).
        Every reset replaces the random generator, so `seed=None` draws fresh entropy. The
        possession counters are not reset: they carry over from the last episode (quirk 19).
        """
        if mode is not None:
            # Validate before anything is destroyed, so a bad mode leaves the env usable.
            self.mode = mode
        self._destroy()
        self.seed(seed)
        self.world.contactListener = ContactDetector(self, verbose=self.verbose)
        self.done = False
        self.winner = 0
        self.prev_shaping = None
        self.time = 0
        if self.mode == Mode.NORMAL:
            self.max_timesteps = EPISODE_STEPS_NORMAL
            self.one_starts = (not self.one_starts) if one_starting is None else one_starting
        else:
            self.max_timesteps = EPISODE_STEPS_TRAINING
        self.closest_to_goal_dist = 1000

        self._create_world()
        goal_poly = [(-10, GOAL_SIZE), (10, GOAL_SIZE), (10, -GOAL_SIZE), (-10, -GOAL_SIZE)]
        self.goal_player_1 = self._create_goal(
            (CENTER_X - 245 / SCALE - 10 / SCALE, CENTER_Y), goal_poly)
        self.goal_player_2 = self._create_goal(
            (CENTER_X + 245 / SCALE + 10 / SCALE, CENTER_Y), goal_poly)
        self.player1 = self._create_player((W / 5, H / 2), RED, False)
        if self.mode == Mode.NORMAL:
            self.player2 = self._create_player((4 * W / 5, H / 2), BLUE, True)
        else:
            # Can start in player 1's half or inside its own goal area (quirk 8).
            x = 4 * W / 5 + self.r_uniform(-W / 3, W / 6)
            y = H / 2 + self.r_uniform(-H / 4, H / 4)
            self.player2 = self._create_player((x, y), BLUE, True)

        if self.mode == Mode.TRAIN_DEFENSE:
            x = W / 2 + self.r_uniform(0, W / 3)
            y = H / 2 + 0.8 * self.r_uniform(-H / 2, H / 2)
            self.puck = self._create_puck((x, y), BLACK)
            self._kick_puck_towards_own_goal()
        else:
            # The x offset range is built from H, not W (quirk 8).
            offset = self.r_uniform(H / 8, H / 4)
            y = H / 2 + self.r_uniform(-H / 8, H / 8)
            player_one_side = self.one_starts or self.mode == Mode.TRAIN_SHOOTING
            x = W / 2 - offset if player_one_side else W / 2 + offset
            self.puck = self._create_puck((x, y), BLACK)
        self.drawlist.extend([self.player1, self.player2, self.puck])
        return self._get_obs(), self._get_info()

    # ----------------------------------------------------------------------------- control

    def _check_boundaries(self, force: np.ndarray, player, is_player_one: bool) -> np.ndarray:
        """Stop a player pushing out of its half or into a side wall (§6.4).

        The blocked velocity component is zeroed at once and the force component becomes 0.
        Upstream meant to brake with -v, but read the velocity it had just zeroed (quirk 7).
        """
        x, y = player.position
        vx, vy = player.linearVelocity
        # Player 1 may not push left of x = 1.5 nor right of the centre; player 2 mirrored.
        if is_player_one:
            stop_x = ((x < CENTER_X - 210 / SCALE and force[0] < 0)
                      or (x > CENTER_X and force[0] > 0))
        else:
            stop_x = ((x > CENTER_X + 210 / SCALE and force[0] > 0)
                      or (x < CENTER_X and force[0] < 0))
        if stop_x:
            vx = 0.0
            player.linearVelocity = (vx, vy)
            force[0] = 0.0
        if (y > H - 1.2 and force[1] > 0) or (y < 1.2 and force[1] < 0):
            player.linearVelocity = (vx, 0.0)
            force[1] = 0.0
        return force

    def _push(self, player, force: np.ndarray, is_player_one: bool) -> None:
        force = self._check_boundaries(force, player, is_player_one)
        player.ApplyForceToCenter((float(force[0]), float(force[1])), True)

    def _apply_translation_action_with_max_speed(
        self, player, action: np.ndarray, max_speed: float, is_player_one: bool
    ) -> None:
        """Turn a player's (x, y) action into a force, with centre band and speed cap (§6.3)."""
        vx, vy = player.linearVelocity
        speed = math.sqrt(vx * vx + vy * vy)
        # float32 like the action; player 2 pushes in its mirrored frame.
        force = action * FORCEMULTIPLIER if is_player_one else -action * FORCEMULTIPLIER
        x = player.position[0]
        mass = player.mass
        if (is_player_one and x > CENTER_X - ZONE) or (not is_player_one and x < CENTER_X + ZONE):
            # Near the centre line: a spring and a brake replace the x action.
            push = 0.0
            if is_player_one:
                if vx > 0:
                    push = -2 * vx * mass / self.timeStep
                pull = -(x - CENTER_X) * vx * mass / self.timeStep
            else:
                if vx < 0:
                    push = -2 * vx * mass / self.timeStep
                pull = (x - CENTER_X) * vx * mass / self.timeStep
            # Each term is rounded to float32 and summed in float32, as upstream's array does.
            force[0] = np.float32(push) + np.float32(pull)
            player.linearDamping = 20.0
            self._push(player, force, is_player_one)
            return
        if speed < max_speed:
            player.linearDamping = 5.0
            self._push(player, force, is_player_one)
            return
        player.linearDamping = 20.0
        # At the cap, accept only a force that would slow the player down.
        delta_v = self.timeStep * force / mass
        new_vx = vx + float(delta_v[0])
        new_vy = vy + float(delta_v[1])
        if math.sqrt(new_vx * new_vx + new_vy * new_vy) < speed:
            self._push(player, force, is_player_one)

    def _apply_rotation_action_with_max_speed(self, player, action: np.float32) -> None:
        """Turn a torque action into a torque, springing back beyond +-MAX_ANGLE (§6.5)."""
        angle = player.angle
        torque = float(action * TORQUEMULTIPLIER)
        if abs(angle) > MAX_ANGLE:
            # Scaled with the mass, not the inertia (quirk 11).
            omega = player.angularVelocity
            torque = 0.0
            if angle * omega > 0:
                torque = -0.1 * omega * player.mass / self.timeStep
            torque += -0.1 * angle * player.mass / self.timeStep
            player.angularDamping = 10.0
        else:
            player.angularDamping = 2.0
        player.ApplyTorque(torque, True)

    def _limit_puck_speed(self) -> None:
        """Damp the puck heavily above MAX_PUCK_SPEED (its spin is left alone, quirk 6)."""
        vx, vy = self.puck.linearVelocity
        if math.sqrt(vx * vx + vy * vy) > MAX_PUCK_SPEED:
            self.puck.linearDamping = 10.0
        else:
            self.puck.linearDamping = 0.05

    def _keep_puck(self, player) -> None:
        """Carry the puck: put it on the player's origin with the player's velocity."""
        self.puck.position = tuple(player.position)
        self.puck.linearVelocity = tuple(player.linearVelocity)

    def _shoot(self, player, is_player_one: bool = True) -> None:
        """Kick the puck along the player's facing direction, +60 units/s in this step."""
        sign = 1.0 if is_player_one else -1.0
        direction = np.array([math.cos(player.angle) * sign, math.sin(player.angle) * sign],
                             dtype=np.float32)
        force = direction * np.float32(self.puck.mass) / np.float32(self.timeStep)
        force = force * np.float32(SHOOTFORCEMULTIPLIER)
        self.puck.ApplyForceToCenter((float(force[0]), float(force[1])), True)

    def _handle_possession(self, action: np.ndarray) -> None:
        """Carry the puck for a holding player and shoot when asked or time is up (§6.7)."""
        if self.player1_has_puck > 1:
            self._keep_puck(self.player1)
            self.player1_has_puck -= 1
            if self.player1_has_puck == 1 or action[3] > 0.5:
                self._shoot(self.player1, True)
                self.player1_has_puck = 0
        if self.player2_has_puck > 1:
            self._keep_puck(self.player2)
            self.player2_has_puck -= 1
            if self.player2_has_puck == 1 or action[7] > 0.5:
                self._shoot(self.player2, False)
                self.player2_has_puck = 0

    # ----------------------------------------------------------------------------- step

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Advance the game by 1/50 s with both players' actions concatenated.

        Returns player 1's (obs, reward, terminated, truncated, info). Upstream reports its
        time-out as terminated and never truncates (quirk 1); it also keeps simulating after the
        end and pays the goal reward again on each further step (quirk 14).
        """
        action = np.clip(action, -1, +1).astype(np.float32)
        second = self.num_actions
        self._apply_translation_action_with_max_speed(self.player1, action[0:2],
                                                      MAX_PLAYER_SPEED, True)
        self._apply_rotation_action_with_max_speed(self.player1, action[2])
        self._apply_translation_action_with_max_speed(self.player2, action[second:second + 2],
                                                      MAX_PLAYER_SPEED, False)
        self._apply_rotation_action_with_max_speed(self.player2, action[second + 2])
        self._limit_puck_speed()
        if self.keep_mode:
            self._handle_possession(action)
        self.world.Step(self.timeStep, VELOCITY_ITERATIONS, POSITION_ITERATIONS)

        obs = self._get_obs()
        if self.time >= self.max_timesteps:
            self.done = True
        info = self._get_info()
        reward = self.get_reward(info)
        self.closest_to_goal_dist = min(self.closest_to_goal_dist,
                                        _engine_distance(self.puck.position, (W, H / 2)))
        self.time += 1
        return obs, reward, self.done, False, info

    # ----------------------------------------------------------------------------- observe

    def _get_obs(self) -> np.ndarray:
        p1, p2, puck = self.player1, self.player2, self.puck
        values = [*p1.position, p1.angle, *p1.linearVelocity, p1.angularVelocity,
                  *p2.position, p2.angle, *p2.linearVelocity, p2.angularVelocity,
                  *puck.position, *puck.linearVelocity]
        if self.keep_mode:
            values += [self.player1_has_puck, self.player2_has_puck]
        obs = np.array(values, dtype=np.float32)
        # The engine values are float32, and upstream subtracts the centre in float32 too.
        obs[_POSITION_INDICES] -= _CENTER32
        return obs

    def obs_agent_two(self) -> np.ndarray:
        """Player 2's observation: the same moment seen after a 180-degree turn of the table."""
        obs = self._get_obs()
        size = obs.shape[0]
        return obs[_MIRROR_ORDER[:size]] * _MIRROR_SIGN[:size]

    def _closeness_factor(self) -> float:
        """Closeness reward per unit distance: scaled so that staying 250/60 units from the puck
        for half an episode would add up to -30 (real games sum to much less)."""
        max_dist = 250.0 / SCALE
        max_reward = -30.0
        return max_reward / (max_dist * self.max_timesteps / 2)

    def _get_info(self) -> dict:
        closeness = 0.0
        if self.puck.position[0] < CENTER_X and self.puck.linearVelocity[0] <= 0:
            factor = self._closeness_factor()
            closeness = _engine_distance(self.player1.position, self.puck.position) * factor
        touch = 1.0 if self.player1_has_puck == MAX_TIME_KEEP_PUCK else 0.0
        direction_factor = 1.0 / (self.max_timesteps * 25)
        return {
            "winner": self.winner,
            "reward_closeness_to_puck": float(closeness),
            "reward_touch_puck": touch,
            "reward_puck_direction": float(self.puck.linearVelocity[0] * direction_factor),
        }

    def get_info_agent_two(self) -> dict:
        """Player 2's info: the same terms measured from its side."""
        closeness = 0.0
        if self.puck.position[0] > CENTER_X and self.puck.linearVelocity[0] >= 0:
            factor = self._closeness_factor()
            closeness = _engine_distance(self.player2.position, self.puck.position) * factor
        touch = 1.0 if self.player2_has_puck == MAX_TIME_KEEP_PUCK else 0.0
        direction_factor = 1.0 / (self.max_timesteps * 25)
        return {
            "winner": -self.winner,
            "reward_closeness_to_puck": float(closeness),
            "reward_touch_puck": touch,
            "reward_puck_direction": float(-self.puck.linearVelocity[0] * direction_factor),
        }

    def _compute_reward(self) -> float:
        """The goal part: +10 / -10 for player 1 once a goal has ended the game, else 0."""
        if not self.done:
            return 0.0
        return 10.0 * self.winner

    def get_reward(self, info: dict) -> float:
        """Player 1's reward: goal part plus the closeness term (touch, direction not added)."""
        return float(self._compute_reward() + info["reward_closeness_to_puck"])

    def get_reward_agent_two(self, info_two: dict) -> float:
        """Player 2's reward, from `get_info_agent_two()`."""
        return float(-self._compute_reward() + info_two["reward_closeness_to_puck"])

    def set_state(self, state) -> None:
        """Put the game into an observation-layout state (§9).

        Hidden state is not restored: puck angle and spin, time, done, winner, pending forces,
        the contact cache and sleep flags.
        """
        state = np.asarray(state)
        for body, start in ((self.player1, 0), (self.player2, 6)):
            body.position = (float(state[start]) + CENTER_X, float(state[start + 1]) + CENTER_Y)
            body.angle = float(state[start + 2])
            body.linearVelocity = (float(state[start + 3]), float(state[start + 4]))
            body.angularVelocity = float(state[start + 5])
        self.puck.position = (float(state[12]) + CENTER_X, float(state[13]) + CENTER_Y)
        self.puck.linearVelocity = (float(state[14]), float(state[15]))
        if self.keep_mode:
            self.player1_has_puck = state[16]
            self.player2_has_puck = state[17]

    def discrete_to_continous_action(self, discrete_action: int) -> list[float]:
        """One player's continuous action for a discrete code 0-7 (spelling as upstream).

        0 nothing, 1 left, 2 right, 3 down, 4 up, 5 turn clockwise, 6 anticlockwise, 7 shoot.
        """
        action = [0.0] * self.num_actions
        axis_and_value = {1: (0, -1.0), 2: (0, 1.0), 3: (1, -1.0), 4: (1, 1.0),
                          5: (2, -1.0), 6: (2, 1.0)}
        if self.keep_mode:
            axis_and_value[7] = (3, 1.0)
        if discrete_action in axis_and_value:
            axis, value = axis_and_value[discrete_action]
            action[axis] = value
        return action

    # ----------------------------------------------------------------------------- render

    def render(self, mode: str | None = "human") -> np.ndarray | None:
        """Draw the table; returns an RGB uint8 (480, 600, 3) array for mode 'rgb_array'."""
        if mode is None:
            gym.logger.warn("HockeyEnv.render needs a rendering mode: 'human' or 'rgb_array'.")
            return None
        pygame = _import_pygame()
        if self.screen is None and mode == "human":
            pygame.init()
            pygame.display.init()
            self.screen = pygame.display.set_mode((VIEWPORT_W, VIEWPORT_H))
        if self.clock is None:
            self.clock = pygame.time.Clock()

        surf = pygame.Surface((VIEWPORT_W, VIEWPORT_H))
        surf.fill((255, 255, 255))
        for body in self.drawlist:
            color = body.userData["color"]
            transform = body.transform
            for fixture in body.fixtures:
                shape = fixture.shape
                if isinstance(shape, circleShape):
                    center = tuple(transform * shape.pos * SCALE)
                    radius = shape.radius * SCALE
                    pygame.draw.circle(surf, color, center, radius)
                    pygame.draw.circle(surf, color, center, radius, width=2)
                else:
                    path = [tuple(transform * vertex * SCALE) for vertex in shape.vertices]
                    pygame.draw.polygon(surf, color, path)
                    pygame.draw.polygon(surf, color, path, width=2)
        # World y points up, screen rows go down.
        self.surf = pygame.transform.flip(surf, False, True)

        if mode == "human":
            self.screen.blit(self.surf, (0, 0))
            pygame.event.pump()
            self.clock.tick(self.metadata["render_fps"])
            pygame.display.flip()
            return None
        if mode == "rgb_array":
            return np.transpose(np.array(pygame.surfarray.pixels3d(self.surf)), axes=(1, 0, 2))
        return None

    def close(self) -> None:
        """Close the window, if one was opened."""
        if self.screen is not None:
            pygame = _import_pygame()
            pygame.display.quit()
            pygame.quit()
            self.isopen = False


def _import_pygame():
    """Import pygame on first use, choosing SDL's dummy video driver when there is no display."""
    has_display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if sys.platform.startswith("linux") and not has_display:
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as error:
        raise DependencyNotInstalled("rendering the hockey game needs pygame: "
                                     "pip install pygame") from error
    return pygame
