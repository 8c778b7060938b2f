"""Learning to act inside the world model: imagination, λ-returns, critic, actor (chapters 5–7).

One `update` of the behaviour:
1. imagine `horizon` steps ahead from every posterior state of the replayed batch;
2. predict rewards, continue probabilities and values along those dreams;
3. compute λ-returns, and normalise the advantages by the return range S (`Moments`);
4. train the critic towards the returns (two-hot) and towards its slow EMA copy;
5. train the actor to raise advantage-weighted log-probabilities plus an entropy bonus.
"""

import copy
from dataclasses import dataclass

import torch
from torch import nn

from naturaldreamer.actor import Actor
from naturaldreamer.config import BehaviorConfig
from naturaldreamer.distributions import twohot_loss
from naturaldreamer.networks import TwoHotHead
from naturaldreamer.optim import LaProp, clip_by_agc
from naturaldreamer.rssm import State
from naturaldreamer.world_model import WorldModel


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, continues: torch.Tensor,
                   discount: float, lam: float) -> torch.Tensor:
    """TD(λ) returns of a trajectory of T steps (the paper's critic learning section).

    rewards[t] and continues[t] belong to the step from state t to state t + 1 (both are
    predicted from state t + 1); values has one more entry, v_0 … v_T. Backwards from R_T = v_T:

        R_t = r_t + discount · c_t · ((1 − λ) · v_{t+1} + λ · R_{t+1})

    The bootstrap value is that of the *next* state t + 1. Shapes (..., T), (..., T + 1),
    (..., T) → (..., T).
    """
    assert values.shape[-1] == rewards.shape[-1] + 1 == continues.shape[-1] + 1
    returns = []
    following = values[..., -1]
    for t in reversed(range(rewards.shape[-1])):
        following = rewards[..., t] + discount * continues[..., t] * (
            (1.0 - lam) * values[..., t + 1] + lam * following)
        returns.append(following)
    return torch.stack(returns[::-1], -1)


class Moments(nn.Module):
    """Return normalisation: EMAs of the 5th and 95th return percentiles.

    From the paper's actor learning section.

    Each call with a tensor of returns updates low ← decay·low + (1 − decay)·P_low(returns)
    (likewise high) and returns (offset, scale) = (low, max(floor, high − low)). The EMAs start
    at 0 without debiasing, as in the official agent, and are buffers: they are saved in
    checkpoints with the networks.
    """

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95,
                 floor: float = 1.0):
        super().__init__()
        self.decay, self.low_quantile, self.high_quantile, self.floor = decay, low, high, floor
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))

    @torch.no_grad()
    def forward(self, returns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = returns.detach().flatten().float()
        quantiles = torch.quantile(flat, torch.tensor([self.low_quantile, self.high_quantile],
                                                      device=flat.device))
        self.low.mul_(self.decay).add_((1.0 - self.decay) * quantiles[0])
        self.high.mul_(self.decay).add_((1.0 - self.decay) * quantiles[1])
        scale = torch.clamp(self.high - self.low, min=self.floor)
        return self.low.clone(), scale


@dataclass
class Dream:
    """An imagined trajectory from N start states: feat (N, H + 1, F), raw action samples
    (N, H, A), predicted rewards and continues (N, H) for the steps t → t + 1."""

    feat: torch.Tensor
    samples: torch.Tensor
    rewards: torch.Tensor
    continues: torch.Tensor


class Behavior(nn.Module):
    """Actor, critic, slow critic and return normalisation, with their optimisers."""

    def __init__(self, feat_dim: int, action_dim: int, config: BehaviorConfig):
        super().__init__()
        self.config = config
        self.actor = Actor(feat_dim, action_dim, config)
        self.critic = TwoHotHead(feat_dim, config.units, config.critic_layers)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.moments = Moments(config.return_decay, config.return_low, config.return_high,
                               config.return_floor)
        self.actor_optimizer = LaProp(self.actor.parameters(), config.lr, eps=config.eps,
                                      warmup=config.warmup)
        self.critic_optimizer = LaProp(self.critic.parameters(), config.lr, eps=config.eps,
                                       warmup=config.warmup)

    def imagine(self, world_model: WorldModel, start: State) -> Dream:
        """Dream `horizon` steps from each start state (N, ...) with the current actor.

        For REINFORCE nothing needs gradients here. For backpropagation through the dynamics
        the actions are reparameterised samples and the dream keeps its graph; the world model's
        own parameters are frozen by the caller so that the actor loss cannot change them.
        """
        keep_graph = self.config.actor_grad == "dynamics"

        def policy(state: State):
            return self.actor(state.feat()).sample(reparameterize=keep_graph)

        with torch.set_grad_enabled(keep_graph):
            states, outputs = world_model.rssm.imagine(start, policy, self.config.horizon)
            feat = states.feat()
            rewards = world_model.reward_predictor(feat[:, 1:])
            continues = world_model.continue_predictor(feat[:, 1:])
        samples = torch.stack([sample for sample, _ in outputs[:-1]], 1)
        return Dream(feat, samples, rewards, continues)

    def update(self, world_model: WorldModel, posterior: State,
               is_terminal: torch.Tensor) -> dict:
        """One actor and one critic step from the posterior states of a replayed batch.

        posterior: (batch, time, ...) detached; is_terminal: (batch, time). Every posterior
        state starts a dream (or a random `imagine_starts` of them); a terminal start state gets
        weight 0 (nothing follows it).
        """
        c = self.config
        start = State(*(x.flatten(0, 1) for x in (posterior.deter, posterior.stoch,
                                                  posterior.logits)))
        is_terminal = is_terminal.flatten()
        if 0 < c.imagine_starts < len(is_terminal):
            chosen = torch.randperm(len(is_terminal), device=is_terminal.device)
            chosen = chosen[:c.imagine_starts]
            start = State(start.deter[chosen], start.stoch[chosen], start.logits[chosen])
            is_terminal = is_terminal[chosen]
        world_model.requires_grad_(False)
        self.critic.requires_grad_(False)
        try:
            dream = self.imagine(world_model, start)
            with torch.set_grad_enabled(c.actor_grad == "dynamics"):
                values = self.critic(dream.feat)
                returns = lambda_returns(dream.rewards, values, dream.continues,
                                         c.discount, c.lam)
        finally:
            world_model.requires_grad_(True)
            self.critic.requires_grad_(True)

        # Weight of step t: probability that the dream is still alive there, discounted.
        alive = 1.0 - is_terminal.float()
        cumulative = torch.cumprod(c.discount * dream.continues.detach(), 1)
        weight = alive[:, None] * torch.cat([torch.ones_like(cumulative[:, :1]),
                                             cumulative[:, :-1]], 1)
        offset, scale = self.moments(returns)
        advantage = (returns - values[:, :-1]) / scale

        dist = self.actor(dream.feat[:, :-1].detach()
                          if c.actor_grad == "reinforce" else dream.feat[:, :-1])
        entropy = (dist.gaussian_entropy() if c.entropy == "gaussian"
                   else dist.action_entropy(dream.samples))
        if c.actor_grad == "reinforce":
            objective = dist.log_prob(dream.samples) * advantage.detach()
        else:
            objective = (returns - offset) / scale
        actor_loss = -(weight * (objective + c.entropy_scale * entropy)).mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        actor_grad_norm = clip_by_agc(self.actor.parameters(), c.agc)
        self.actor_optimizer.step()

        feat = dream.feat[:, :-1].detach()
        slow_target = self.slow_critic(feat).detach()
        logits = self.critic.net(feat)
        critic_loss = (weight * (twohot_loss(logits, returns.detach(), self.critic.bins)
                                 + c.slowreg_scale * twohot_loss(logits, slow_target,
                                                                 self.critic.bins))).mean()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        critic_grad_norm = clip_by_agc(self.critic.parameters(), c.agc)
        self.critic_optimizer.step()
        self.update_slow_critic()

        entropy = entropy.detach()
        advantage = advantage.detach()
        return {
            "behavior/actor_loss": float(actor_loss.detach()),
            "behavior/critic_loss": float(critic_loss.detach()),
            "behavior/actor_grad_norm": float(actor_grad_norm),
            "behavior/critic_grad_norm": float(critic_grad_norm),
            "behavior/entropy_mean": float(entropy.mean()),
            "behavior/entropy_std": float(entropy.std()),
            "behavior/entropy_min": float(entropy.min()),
            "behavior/entropy_max": float(entropy.max()),
            "behavior/gaussian_entropy": float(dist.gaussian_entropy().detach().mean()),
            "behavior/action_entropy": float(dist.action_entropy(dream.samples).detach().mean()),
            "behavior/actor_std": float(dist.std.detach().mean()),
            "behavior/advantage_mean": float(advantage.mean()),
            "behavior/advantage_std": float(advantage.std()),
            "behavior/advantage_abs_mean": float(advantage.abs().mean()),
            # Ratio of the two terms of the actor loss, as readers' own code logs it. Its value
            # depends on where entropy has its zero (the units of the action), so also:
            "behavior/entropy_to_advantage": float(
                c.entropy_scale * entropy.abs().mean() / (advantage.abs().mean() + 1e-8)),
            # the ratio of their pulls on log σ: the bonus pulls with η per dimension, the
            # advantage term with about |adv| (E|ε² − 1| ≈ 0.96 for a unit normal ε).
            "behavior/entropy_pull_to_advantage": float(
                c.entropy_scale / (advantage.abs().mean() + 1e-8)),
            "behavior/return_mean": float(returns.detach().mean()),
            "behavior/return_low": float(offset),
            "behavior/return_high": float(self.moments.high),
            "behavior/return_scale": float(scale),
            "behavior/return_scale_at_floor": float(scale <= c.return_floor),
            "behavior/value_mean": float(values.detach().mean()),
            "behavior/imagined_reward_mean": float(dream.rewards.detach().mean()),
            "behavior/imagined_continue_mean": float(dream.continues.detach().mean()),
        }

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        """slow ← (1 − mix) · slow + mix · critic, after every critic step (mix 0.02)."""
        for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
            slow.lerp_(fast, self.config.slow_critic_mix)
