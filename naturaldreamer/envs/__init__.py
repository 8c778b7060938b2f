"""Environments for the agent: the air-hockey game and, for sanity checks, any gymnasium task.

`make_env` is the one door the training code uses. Importing this package also registers the
gymnasium ids `Hockey-v0` and `Hockey-One-v0` (upstream's names, see `hockey`).
"""

import gymnasium as gym

from naturaldreamer.envs import hockey
from naturaldreamer.envs.shaping import PotentialShaping
from naturaldreamer.envs.single_player import SinglePlayerHockey


def make_env(name: str, **options) -> gym.Env:
    """Build an environment by name.

    "hockey" gives `SinglePlayerHockey(**options)`: player 1 of the air-hockey game against a
    built-in opponent, with options `opponent` ("weak" | "strong" | object with `act`), `mode`
    ("normal" | "train_shooting" | "train_defense"), `shaping` (float, 0 = sparse +-10),
    `backend` ("port" | "upstream") and `render_mode`; see its docstring for the semantics.
    `potential` (float, default 0) adds potential-based shaping with that scale and `discount`
    (default 0.997) as its γ, which must be the agent's (`shaping.PotentialShaping`).
    Any registered gymnasium id (e.g. "Pendulum-v1") gives `gymnasium.make(name, **options)`, so
    the same training code runs on a small sanity task.
    """
    if name == "hockey":
        scale = options.pop("potential", 0.0)
        discount = options.pop("discount", 0.997)
        env = SinglePlayerHockey(**options)
        return PotentialShaping(env, scale, discount) if scale else env
    if name in gym.registry:
        return gym.make(name, **options)
    raise ValueError(
        f"unknown environment {name!r}. make_env knows 'hockey' (the air-hockey game, played as "
        f"player 1) and these gymnasium ids: {', '.join(sorted(gym.registry))}. Pass one of "
        "these names exactly, version suffix included; for an id from another package, import "
        "that package first so that it registers its ids."
    )


__all__ = ["PotentialShaping", "SinglePlayerHockey", "hockey", "make_env"]
