"""Ready-made hockey players: the scripted `BasicOpponent`, a keyboard player, and the game with a
built-in scripted opponent (`HockeyEnv_BasicOpponent`), as in upstream `hockey.hockey_env`."""

import numpy as np
from gymnasium import spaces

from naturaldreamer.envs.hockey_game import MAX_ANGLE, HockeyEnv, Mode, _import_pygame


class BasicOpponent:
    """Scripted PD controller for the player whose observation it is given (§12).

    It chases the puck when the puck comes towards it and guards its goal otherwise, wiggling
    its angle on a random phase. Weak and strong differ only in the position gain. Its
    randomness comes from numpy's global legacy RNG, as upstream's (quirk 18): one draw for the
    phase here and one at every `act`, so reproducing its actions needs the same global calls.
    `rng` is this port's addition: a `np.random.RandomState` to draw from instead, giving the
    same numbers as the global RNG would after the same seeding, without touching it.
    """

    def __init__(self, weak: bool = True, keep_mode: bool = True, *,
                 rng: np.random.RandomState | None = None):
        self.weak = weak
        self.keep_mode = keep_mode
        self.rng = rng
        self.phase = self._uniform(0, np.pi)

    def _uniform(self, low: float, high: float) -> float:
        return (np.random if self.rng is None else self.rng).uniform(low, high)

    def act(self, obs, verbose: bool = False) -> np.ndarray:
        """Return [force x, force y, torque] (+ [shoot] with keep_mode) for one observation."""
        # Float64 like upstream's observations, so a float32 observation gives the same actions.
        obs = np.asarray(obs, dtype=np.float64)
        pose = obs[0:3]  # x, y, angle (observation frame)
        velocity = obs[3:6]
        puck = obs[12:14]
        puck_velocity = obs[14:16]
        self.phase += self._uniform(0, 0.2)

        kp = 0.5 if self.weak else 10.0
        kd = 0.5
        brake_horizon = 0.1
        if puck_velocity[0] < 30.0 / 60:
            # Puck coming or slow: hit it from behind, or first get behind it.
            behind_puck = pose[0] < puck[0] and abs(pose[1] - puck[1]) < 30.0 / 60
            if behind_puck:
                dist = np.sqrt(np.sum((pose[0:2] - puck) ** 2))
                target_xy = [puck[0] + 0.2, puck[1] + 0.1 * puck_velocity[1] * dist]
            else:
                target_xy = [-210 / 60, puck[1]]
        else:
            target_xy = [-210 / 60, 0.0]  # in front of the own goal
        target_angle = MAX_ANGLE * np.sin(self.phase)
        shoot = 1.0 if self.keep_mode and 0 < obs[16] < 7 else 0.0

        error = np.array([target_xy[0], target_xy[1], target_angle]) - pose
        # Brake on an axis when, at the current speed, the target is less than a horizon away.
        time_to_target = np.abs(error / (velocity + 0.01))
        need_brake = time_to_target < [brake_horizon, brake_horizon, brake_horizon * 10]
        if verbose:
            print(error, time_to_target, need_brake)
        gains = np.array([kp, kp / 5, kp / 2])
        action = np.clip(error * gains - velocity * need_brake * kd, -1, 1)
        if self.keep_mode:
            return np.hstack([action, [shoot]])
        return action


class HumanOpponent:
    """Keyboard player through pygame: arrows move, w / s turn, space shoots (§13)."""

    def __init__(self, env: HockeyEnv, player: int = 1):
        pygame = _import_pygame()
        self.env = env
        self.player = player
        self.a = 0
        if env.screen is None:
            env.render()
        # Codes of `discrete_to_continous_action`; player 2's arrows are mirrored so that they
        # move the blue player the same way on screen.
        one = player == 1
        self.key_action_mapping = {
            pygame.K_LEFT: 1 if one else 2,
            pygame.K_UP: 4 if one else 3,
            pygame.K_RIGHT: 2 if one else 1,
            pygame.K_DOWN: 3 if one else 4,
            pygame.K_w: 5,
            pygame.K_s: 6,
            pygame.K_SPACE: 7,
        }
        print("Human controls:")
        print(" left / right / up / down arrows: move")
        print(" w: tilt clockwise,  s: tilt anti-clockwise")
        print(" space: shoot")

    def act(self, obs) -> list[float]:
        """The action for the keys held now (the last pressed one in the map wins)."""
        pygame = _import_pygame()
        keys = pygame.key.get_pressed()
        code = 0
        for key, key_code in self.key_action_mapping.items():
            if keys[key]:
                code = key_code
        return self.env.discrete_to_continous_action(code)


class HockeyEnv_BasicOpponent(HockeyEnv):
    """The game as a single-player env: player 1 acts, a `BasicOpponent` plays player 2 (§14).

    Upstream semantics are kept: the time-out is reported as terminated, the opponent draws from
    numpy's global RNG. For training, `naturaldreamer.envs.make_env("hockey")` is the better
    choice.
    """

    def __init__(self, mode: int | str | Mode = Mode.NORMAL, weak_opponent: bool = False):
        super().__init__(mode=mode, keep_mode=True)
        self.opponent = BasicOpponent(weak=weak_opponent)
        self.action_space = spaces.Box(-1, +1, (4,), dtype=np.float32)

    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Step with player 1's 4 actions; the opponent acts on the state before the step."""
        opponent_action = self.opponent.act(self.obs_agent_two())
        return super().step(np.hstack([action, opponent_action]))
