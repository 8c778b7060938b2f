"""The agent: world model + behaviour, acting in real environments (chapter 9).

Acting keeps a recurrent state per environment. Each step the agent folds the new observation
into its posterior state (resetting where an episode begins) and samples an action from the
actor. Several environments are handled as one batch, with one network call per step.
"""

from dataclasses import dataclass
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import nn

from naturaldreamer.behavior import Behavior
from naturaldreamer.config import Config, from_dict, to_dict
from naturaldreamer.files import atomic_write
from naturaldreamer.rssm import State, mode_onehot
from naturaldreamer.world_model import Batch, WorldModel


@dataclass
class Carry:
    """What the agent remembers between steps: model state and previous action (batch, ...)."""

    state: State
    action: torch.Tensor


class Agent(nn.Module):
    """The whole learner. `act` runs in the environment; `train_step` is one update of both
    parts: the world model's losses, then the behaviour's on dreams from its posteriors."""

    def __init__(self, obs_dim: int, action_dim: int, config: Config):
        super().__init__()
        self.obs_dim, self.action_dim, self.config = obs_dim, action_dim, config
        self.world_model = WorldModel(obs_dim, action_dim, config.world_model)
        self.behavior = Behavior(self.world_model.rssm.feat_dim, action_dim, config.behavior)

    @property
    def device(self) -> torch.device:
        return self.world_model.encoder.net[0].weight.device

    def initial_carry(self, batch: int) -> Carry:
        state = self.world_model.rssm.initial_state(batch)
        return Carry(state, torch.zeros(batch, self.action_dim, device=self.device))

    @torch.no_grad()
    def act(self, obs: np.ndarray, is_first: np.ndarray, carry: Carry,
            explore: bool = True) -> tuple[np.ndarray, Carry]:
        """obs (batch, obs_dim), is_first (batch,) → actions (batch, action_dim) in [−1, 1].

        explore=True samples the latent state and the action (what the official agent does, in
        training and in evaluation); explore=False takes the most likely latent and the
        actor's mode, so the same observations always give the same actions.
        """
        wm = self.world_model
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        first = torch.as_tensor(is_first, dtype=torch.bool, device=self.device)
        posterior, _ = wm.rssm.obs_step(carry.state, carry.action, wm.encoder(obs_t), first)
        if not explore:
            stoch = mode_onehot(posterior.logits).flatten(-2)
            posterior = State(posterior.deter, stoch, posterior.logits)
        dist = self.behavior.actor(posterior.feat())
        action = dist.sample()[1] if explore else dist.mode_action()
        return action.cpu().numpy(), Carry(posterior, action)

    def losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Every loss of one update, all computed with the same parameters (as the official
        agent does): the world model's; the actor's and critic's on dreams from its detached
        posteriors; and the replay value loss on the posteriors themselves.

        Returns (actor loss, the sum of all other losses, metrics as 0-d tensors). This is the
        function `train.compile` hands to torch.compile; `train_step` applies the gradients.
        """
        c = self.config.behavior
        with torch.autocast(self.device.type, torch.bfloat16,
                            enabled=self.config.train.precision == "bfloat16"):
            world_loss, metrics, posterior = self.world_model.loss(batch)
            metrics = {key: value.detach() for key, value in metrics.items()}
            behavior = self.behavior.loss(self.world_model, posterior.detach(),
                                          batch.is_terminal)
            other_loss = world_loss + behavior.critic
            metrics.update(behavior.metrics)
            if c.repval_scale > 0:
                replay_loss, replay_metrics = self.behavior.replay_value_loss(
                    posterior.feat(), batch.reward, batch.is_last, batch.is_terminal, behavior)
                other_loss = other_loss + c.repval_scale * replay_loss
                metrics.update(replay_metrics)
        return behavior.actor, other_loss, metrics

    def train_step(self, batch: dict) -> dict:
        """One update of every network on a replayed batch (numpy): all losses first, then
        zero_grad, backward, clip and one optimiser step each. Returns 0-d tensor metrics;
        nothing here waits for a number to reach Python (the training loop averages them
        when it logs)."""
        tensors = Batch(**{key: torch.as_tensor(batch[key], device=self.device)
                           for key in ("obs", "action", "reward", "is_first", "is_terminal",
                                       "is_last")})
        actor_loss, other_loss, metrics = self.losses(tensors)
        self.zero_grad(set_to_none=True)
        self.behavior.backward(actor_loss, other_loss)
        metrics.update(self.world_model.step())
        metrics.update(self.behavior.step())
        return metrics

    def optimizers(self) -> dict:
        return {"world_model": self.world_model.optimizer,
                "actor": self.behavior.actor_optimizer,
                "critic": self.behavior.critic_optimizer}


class Policy:
    """A trained agent as a plain controller: `reset()` at the start of each game, then
    `act(obs) -> action` every step. It keeps its own recurrent state between calls."""

    def __init__(self, agent: Agent):
        self.agent = agent.eval()
        self.reset()

    def reset(self) -> None:
        self._carry = self.agent.initial_carry(1)
        self._first = True

    def act(self, obs, explore: bool = False) -> np.ndarray:
        """obs: float array (obs_dim,) → action: float32 array (action_dim,) in [−1, 1]."""
        obs = np.asarray(obs, dtype=np.float32).reshape(1, -1)
        if obs.shape[1] != self.agent.obs_dim:
            hint = ("; this agent was trained with the clock: append the seconds left in the "
                    "game, as make_env('hockey', clock=True) does"
                    if self.agent.config.env.options.get("clock") else "")
            raise ValueError(f"expected an observation of {self.agent.obs_dim} numbers, "
                             f"got {obs.shape[1]}{hint}")
        if not np.all(np.isfinite(obs)):
            # The networks would turn NaN into a plausible-looking action: refuse instead.
            bad = np.flatnonzero(~np.isfinite(obs[0])).tolist()
            raise ValueError(f"the observation has NaN or infinite values at positions {bad}; "
                             f"the agent cannot act on it: check where the observation comes "
                             f"from")
        action, self._carry = self.agent.act(obs, np.array([self._first]), self._carry, explore)
        self._first = False
        return np.clip(action[0], -1.0, 1.0).astype(np.float32)


def select_device(name: str) -> torch.device:
    """'auto' → cuda when available, else cpu; anything else is passed to torch."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}; use cpu, cuda, cuda:N (the N-th GPU) or "
                         f"auto") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but torch sees no CUDA GPU; use "
                           f"--device cpu, or install the CUDA build of torch (README)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise RuntimeError(f"device {name!r} requested but torch sees only "
                           f"{torch.cuda.device_count()} GPU(s), cuda:0 to "
                           f"cuda:{torch.cuda.device_count() - 1}")
    return device


POLICY_FORMAT = "naturaldreamer-policy-1"


def save_policy(agent: Agent, path: str | Path) -> None:
    """Write what `load_policy` needs: network weights, sizes and the config (no optimiser).
    The file is written atomically (`files.atomic_write`)."""
    state = {"format": POLICY_FORMAT, "obs_dim": agent.obs_dim,
             "action_dim": agent.action_dim, "config": to_dict(agent.config),
             "agent": agent.state_dict()}
    atomic_write(path, lambda file: torch.save(state, file))


def load_agent(path: str | Path, device: str = "cpu") -> Agent:
    """Rebuild an Agent from a policy file or a training checkpoint, on `device`."""
    path = Path(path)
    target = select_device(device)  # before reading, so a device error is not a file error
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give the agent file in it, e.g. "
                         f"{path / 'policy.pt'}")
    if not path.is_file():
        raise FileNotFoundError(f"no agent file at {path}; train one with `python -m "
                                f"naturaldreamer train` or use the shipped agents/hockey.pt")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        agent = Agent(data["obs_dim"], data["action_dim"], from_dict(data["config"]))
        agent.load_state_dict(data["agent"])
    except (RuntimeError, KeyError, EOFError, ValueError, TypeError, IndexError,
            AttributeError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path} is not a readable naturaldreamer agent "
                         f"({type(error).__name__}); the file may be truncated or from another "
                         f"program: download or train it again") from error
    return agent.to(target)


def load_policy(path: str | Path = "agents/hockey.pt", device: str = "cpu") -> Policy:
    """Load a trained agent as a `Policy` with `reset()` and `act(obs, explore=False)`."""
    return Policy(load_agent(path, device))
