"""Every hyperparameter in one place: YAML files → validated dataclasses (chapter 9).

Each default is the official DreamerV3 value for vector observations (the `dmc_proprio` preset,
which uses the `size1m` model), unless its comment says why the book differs. A YAML file only
lists what it changes. An unknown key or a value of the wrong type or range is an error that
names the key, so a typo cannot silently fall back to a default.
"""

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from naturaldreamer.files import atomic_write_text


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message names the key."""


@dataclass
class EnvConfig:
    name: str = "Pendulum-v1"  # "hockey" or any gymnasium id
    options: dict = field(default_factory=dict)  # passed to naturaldreamer.envs.make_env
    num_envs: int = 4  # official 16; fewer suit a 2-core CPU
    # Hockey only: opponents sampled per training episode, with weights (e.g. weak: 1,
    # strong: 1, self: 1 for the agent's own past checkpoints). Empty means options alone.
    opponents: dict = field(default_factory=dict)
    self_play_every: int = 50_000  # env steps between snapshots added to the self-play pool
    # Hockey only: share of the parallel envs playing each mode (e.g. normal: 2,
    # train_shooting: 1, train_defense: 1). Empty means options alone.
    modes: dict = field(default_factory=dict)

    def __post_init__(self):
        _positive(self, "num_envs", "self_play_every")
        for key, weight in self.modes.items():
            if key not in ("normal", "train_shooting", "train_defense") \
                    or not isinstance(weight, (int, float)) or weight < 0:
                raise ConfigError(f"env.modes.{key}: expected normal/train_shooting/"
                                  f"train_defense with a non-negative weight, got {key}: {weight!r}")
        if self.modes and sum(self.modes.values()) <= 0:
            raise ConfigError("env.modes: at least one weight must be positive")
        for key, weight in self.opponents.items():
            if key not in ("weak", "strong", "self") or not isinstance(weight, (int, float)) \
                    or weight < 0:
                raise ConfigError(f"env.opponents.{key}: expected weak/strong/self with a "
                                  f"non-negative weight, got {key}: {weight!r}")


@dataclass
class WorldModelConfig:
    deter: int = 512  # size1m
    stoch: int = 32
    classes: int = 4  # size1m
    hidden: int = 64  # size1m
    blocks: int = 8
    units: int = 64  # size1m
    encoder_layers: int = 3
    decoder_layers: int = 3
    reward_layers: int = 1
    continue_layers: int = 1
    prior_layers: int = 2
    posterior_layers: int = 1
    unimix: float = 0.01
    free_nats: float = 1.0
    rec_scale: float = 1.0
    # Per observation dimension, a weight on its term of the decoder loss; empty means all 1
    # (official). Hockey weighs the puck's position (chapter 10).
    obs_weights: list = field(default_factory=list)
    reward_scale: float = 1.0
    continue_scale: float = 1.0
    dyn_scale: float = 1.0  # current official; the 2023 paper used 0.5
    rep_scale: float = 0.1
    lr: float = 4e-5
    agc: float = 0.3
    eps: float = 1e-20
    warmup: int = 1000

    def __post_init__(self):
        _finite(self)
        _positive(self, "deter", "stoch", "classes", "hidden", "blocks", "units", "lr", "agc",
                  "eps", "encoder_layers", "decoder_layers", "reward_layers", "continue_layers",
                  "prior_layers", "posterior_layers")
        _non_negative(self, "free_nats", "rec_scale", "reward_scale", "continue_scale",
                      "dyn_scale", "rep_scale", "warmup")
        _in_range(self, "unimix", 0.0, 1.0)
        for index, weight in enumerate(self.obs_weights):
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                    or not math.isfinite(weight) or weight < 0:
                raise ConfigError(f"world_model.obs_weights[{index}] must be a number ≥ 0, "
                                  f"got {weight!r}")
        if self.deter % self.blocks:
            raise ConfigError(f"world_model.deter ({self.deter}) must be divisible by "
                              f"world_model.blocks ({self.blocks})")


@dataclass
class BehaviorConfig:
    actor_dist: Literal["bounded_normal", "tanh_normal"] = "bounded_normal"
    min_std: float = 0.1  # bounded_normal
    max_std: float = 1.0  # bounded_normal
    log_std_min: float = -2.0  # tanh_normal (the readers' bounds)
    log_std_max: float = 2.0  # tanh_normal
    # Which entropy enters the actor loss: the Gaussian's (official, for bounded_normal) or a
    # Monte-Carlo estimate of the entropy of the action actually taken.
    entropy: Literal["gaussian", "action"] = "gaussian"
    entropy_scale: float = 3e-4
    actor_grad: Literal["reinforce", "dynamics"] = "reinforce"
    units: int = 64  # size1m
    actor_layers: int = 3
    critic_layers: int = 3
    horizon: int = 15
    imagine_starts: int = 0  # dreams per update; 0 = one from every replayed state (official)
    discount: float = 0.997  # 1 − 1/333
    lam: float = 0.95
    return_decay: float = 0.99
    return_low: float = 0.05
    return_high: float = 0.95
    return_floor: float = 1.0
    slow_critic_mix: float = 0.02
    slowreg_scale: float = 1.0
    # The critic also learns λ-returns along the replayed sequences (official `repval`, 0.3),
    # so that real rewards and goals reach it at full size; 0 turns it off.
    repval_scale: float = 0.3
    lr: float = 4e-5
    agc: float = 0.3
    eps: float = 1e-20
    warmup: int = 1000

    def __post_init__(self):
        _finite(self)
        _positive(self, "min_std", "units", "horizon", "lr", "return_floor", "agc", "eps",
                  "actor_layers", "critic_layers")
        _non_negative(self, "slowreg_scale", "warmup")
        _in_range(self, "discount", 0.0, 1.0)
        _in_range(self, "lam", 0.0, 1.0)
        _in_range(self, "return_decay", 0.0, 1.0)
        _in_range(self, "slow_critic_mix", 0.0, 1.0)
        if not self.min_std < self.max_std:
            raise ConfigError("behavior.min_std must be smaller than behavior.max_std")
        if not self.log_std_min < self.log_std_max:
            raise ConfigError("behavior.log_std_min must be smaller than behavior.log_std_max")
        if not 0.0 <= self.return_low < self.return_high <= 1.0:
            raise ConfigError("behavior.return_low/return_high must satisfy 0 ≤ low < high ≤ 1")
        if self.imagine_starts < 0:
            raise ConfigError("behavior.imagine_starts must be ≥ 0 (0 = all replayed states)")
        if self.entropy_scale < 0:
            raise ConfigError("behavior.entropy_scale must be ≥ 0")
        if self.repval_scale < 0:
            raise ConfigError("behavior.repval_scale must be ≥ 0 (0 turns it off)")


@dataclass
class ReplayConfig:
    capacity: int = 1_000_000  # official 5e6; one million steps is more than any run here
    batch_size: int = 16
    batch_length: int = 64
    # DreamSmooth (Lee et al., 2023): train the reward predictor on rewards smoothed in time.
    smoothing: Literal["none", "ema", "gaussian"] = "none"
    smoothing_alpha: float = 0.33  # ema: weight carried to the previous step
    smoothing_sigma: float = 3.0  # gaussian: kernel width in steps

    def __post_init__(self):
        _finite(self)
        _positive(self, "capacity", "batch_size", "batch_length", "smoothing_sigma")
        if not 0.0 <= self.smoothing_alpha < 1.0:
            raise ConfigError(f"replay.smoothing_alpha must be in [0, 1), "
                              f"got {self.smoothing_alpha!r}")


@dataclass
class TrainConfig:
    steps: int = 100_000  # environment steps, summed over parallel envs
    train_ratio: float = 1024.0  # replayed steps per env step (official dmc_proprio value)
    train_start: int = 1024  # env steps before the first update (official: one batch)
    seed: int = 0
    device: str = "auto"  # auto = cuda when available
    # torch CPU threads; 0 keeps torch's default (all cores). One thread per run: two runs on
    # two cores do 1.7x the updates of one run with two threads (chapter 9).
    threads: int = 1
    # Compile the training step with torch.compile (chapter 9): the shipped configs switch it
    # on; it pays off after a few hundred updates. Falls back to eager, with a warning, if
    # compiling fails.
    compile: bool = False
    # Matrix products of the training step in bfloat16 (autocast) or float32 (chapter 9).
    precision: Literal["float32", "bfloat16"] = "float32"
    eval_every: int = 10_000
    eval_episodes: int = 10
    eval_mode: Literal["sample", "mode"] = "sample"  # official evaluates with samples
    # Hockey: games per opponent the probe of the model (chapter 10) plays at each
    # evaluation, with deterministic actions as `python -m naturaldreamer probe`;
    # its numbers are the probe/ columns of metrics.csv. 0 switches it off. Four keep an
    # evaluation short, but their critic correlation swings by tenths; 200 pin it to about a
    # tenth either way (probe/critic_correlation_low, _high) for some 20 s per evaluation.
    probe_games: int = 4
    # Hockey: games per opponent played at each evaluation with deterministic actions, the
    # way `python -m naturaldreamer evaluate` judges a shipped agent (seeds from 10 000);
    # the eval/deterministic_ columns of metrics.csv. 0 switches it off.
    eval_games: int = 0
    # Warm start: a policy or checkpoint file whose networks a fresh run starts from (its
    # optimisers and replay start empty); "" starts from a fresh initialisation.
    init: str = ""
    log_every: int = 1_000
    checkpoint_every: int = 10_000

    def __post_init__(self):
        _finite(self)
        _positive(self, "steps", "train_ratio", "eval_every", "eval_episodes", "log_every",
                  "checkpoint_every")
        _non_negative(self, "train_start", "threads", "seed", "probe_games", "eval_games")


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    behavior: BehaviorConfig = field(default_factory=BehaviorConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def updates_per_step(self) -> float:
        """Gradient updates per env step implied by the official train ratio."""
        return self.train.train_ratio / (self.replay.batch_size * self.replay.batch_length)


def _finite(section) -> None:
    """NaN passes every comparison-free check and inf most others: reject both first."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{_section_name(section)}.{f.name} must be a finite number, "
                              f"got {value!r}")


def _positive(section, *names: str) -> None:
    for name in names:
        if not getattr(section, name) > 0:
            raise ConfigError(f"{_section_name(section)}.{name} must be > 0, "
                              f"got {getattr(section, name)!r}")


def _non_negative(section, *names: str) -> None:
    for name in names:
        if not getattr(section, name) >= 0:
            raise ConfigError(f"{_section_name(section)}.{name} must be ≥ 0, "
                              f"got {getattr(section, name)!r}")


def _in_range(section, name: str, low: float, high: float) -> None:
    if not low <= getattr(section, name) <= high:
        raise ConfigError(f"{_section_name(section)}.{name} must be in [{low}, {high}], "
                          f"got {getattr(section, name)!r}")


def _section_name(section) -> str:
    return next(f.name for f in dataclasses.fields(Config)
                if f.default_factory is type(section))


def _check_type(key: str, value, expected):
    """Return `value` converted to `expected` where that is lossless, else raise ConfigError."""
    if typing.get_origin(expected) is Literal:
        if value not in typing.get_args(expected):
            raise ConfigError(f"{key}: {value!r} is not one of {list(typing.get_args(expected))}")
        return value
    if expected in (int, float) and isinstance(value, str):
        raise ConfigError(f"{key}: expected {expected.__name__}, got the text {value!r}"
                          f"{_number_hint(value, expected)}")
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if expected is dict and value is None:
        return {}
    if expected is list and value is None:
        return []
    if expected is list and not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list ([a, b, ...]), got {value!r}")
    if expected is dict and not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping (indented `name: value` lines, or "
                          f"{{name: value}}), got {value!r}")
    if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {expected.__name__}, got {value!r}")
    return value


def _number_hint(text: str, expected) -> str:
    """Why YAML read a number as text, and how to write it."""
    try:
        number = float(text)
    except ValueError:
        return ""
    if expected is int and number.is_integer() and abs(number) < 1e18:
        return f"; YAML read it as text: write the plain whole number {int(number)}"
    if "e" in text.lower() and "." not in text:
        mantissa, _, exponent = text.lower().partition("e")
        return (f"; YAML reads e-notation without a decimal point as text: write "
                f"{mantissa}.0e{exponent}")
    return "; YAML read it as text: remove the quotes"


def from_dict(data: dict) -> Config:
    """Build a Config from nested dicts, rejecting unknown sections and keys by name."""
    if not isinstance(data, dict):
        raise ConfigError("a config must be a mapping of sections (env, world_model, ...)")
    sections = {f.name: f.default_factory for f in dataclasses.fields(Config)}
    built = {}
    for name, values in data.items():
        if name not in sections:
            raise ConfigError(_unknown(name, sections))
        if not isinstance(values, dict | None):
            raise ConfigError(f"{name}: expected a mapping of its keys (indented `key: value` "
                              f"lines under `{name}:`), got {values!r}")
        cls = sections[name]
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for key, value in (values or {}).items():
            if key not in hints:
                raise ConfigError(_unknown(f"{name}.{key}", [f"{name}.{k}" for k in hints]))
            kwargs[key] = _check_type(f"{name}.{key}", value, hints[key])
        built[name] = cls(**kwargs)
    return Config(**built)


def _unknown(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    return f"unknown config key {key!r}{hint}"


def to_dict(config: Config) -> dict:
    """The config as nested plain dicts (what `from_dict` reads and YAML writes)."""
    return dataclasses.asdict(config)


def load_config(path: str | Path, overrides: dict | None = None) -> Config:
    """Read a YAML config file; `overrides` maps 'section.key' to a value and wins over it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; the shipped ones are in configs/")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if data is None:
        raise ConfigError(f"{path} is empty: a config lists the values it changes (see "
                          f"configs/pendulum.yaml); write {{}} in it to train with every "
                          f"default on purpose")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections (env, world_model, "
                          f"...), got {data!r}")
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        values = data.get(section) or {}
        if isinstance(values, dict):  # else from_dict names the broken section
            data[section] = {**values, key: value}
    return from_dict(data)


def save_config(config: Config, path: str | Path) -> None:
    """Write the full config, defaults included, so a run records every value it used."""
    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))
