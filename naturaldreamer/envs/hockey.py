"""The air-hockey game with upstream's public API: a drop-in for `hockey.hockey_env`.

`from naturaldreamer.envs import hockey as h` gives the same names as `import hockey.hockey_env
as h`. The game itself lives in `hockey_game`, the ready-made players in `hockey_opponents`.
Importing this module registers the gymnasium ids `Hockey-v0` and `Hockey-One-v0`, as upstream's
module does, but with entry points that import (upstream's name a module that no longer exists).
"""

import gymnasium as gym

from naturaldreamer.envs.hockey_game import (
    CENTER_X,
    CENTER_Y,
    FORCEMULTIPLIER,
    FPS,
    GOAL_SIZE,
    MAX_ANGLE,
    MAX_PUCK_SPEED,
    MAX_TIME_KEEP_PUCK,
    RACKETFACTOR,
    RACKETPOLY,
    SCALE,
    SHOOTFORCEMULTIPLIER,
    TORQUEMULTIPLIER,
    VIEWPORT_H,
    VIEWPORT_W,
    ZONE,
    ContactDetector,
    H,
    HockeyEnv,
    Mode,
    W,
    dist_positions,
)
from naturaldreamer.envs.hockey_opponents import (
    BasicOpponent,
    HockeyEnv_BasicOpponent,
    HumanOpponent,
)

__all__ = [
    "CENTER_X", "CENTER_Y", "FORCEMULTIPLIER", "FPS", "GOAL_SIZE", "H", "MAX_ANGLE",
    "MAX_PUCK_SPEED", "MAX_TIME_KEEP_PUCK", "RACKETFACTOR", "RACKETPOLY", "SCALE",
    "SHOOTFORCEMULTIPLIER", "TORQUEMULTIPLIER", "VIEWPORT_H", "VIEWPORT_W", "W", "ZONE",
    "BasicOpponent", "ContactDetector", "HockeyEnv", "HockeyEnv_BasicOpponent", "HumanOpponent",
    "Mode", "dist_positions",
]

# id -> (entry point, default constructor arguments), as upstream registers them.
HOCKEY_IDS = {
    "Hockey-v0": ("naturaldreamer.envs.hockey:HockeyEnv", {"mode": 0}),
    "Hockey-One-v0": (
        "naturaldreamer.envs.hockey:HockeyEnv_BasicOpponent",
        {"mode": 0, "weak_opponent": False},
    ),
}


def register_hockey_ids() -> None:
    """Register the hockey ids with gymnasium; safe to call again.

    An existing registration is kept, unless it is upstream's broken one (its entry point names
    the package's old name `laserhockey`, which cannot be imported, §18 quirk 3).
    """
    for env_id, (entry_point, kwargs) in HOCKEY_IDS.items():
        existing = gym.registry.get(env_id)
        if existing is not None and not str(existing.entry_point).startswith("laserhockey"):
            continue
        gym.registry.pop(env_id, None)
        gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs)


register_hockey_ids()
