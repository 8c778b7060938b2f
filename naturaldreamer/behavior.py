"""Learning to act inside the world model: imagination, λ-returns, critic, actor (chapters 5–7).

One `update` of the behaviour:
1. imagine `horizon` steps ahead from every posterior state of the replayed batch;
2. predict rewards, continue probabilities and values along those dreams;
3. compute λ-returns, and normalise the advantages by the return range S (`Moments`);
4. train the critic towards the returns (two-hot) and towards its slow EMA copy;
5. train the actor to raise advantage-weighted log-probabilities plus an entropy bonus.
In a whole update of the agent the critic also learns from the replayed sequences themselves
(`replay_value_loss`), where real rewards reach it at full size.
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


def replay_returns(rewards: torch.Tensor, boot: torch.Tensor, is_last: torch.Tensor,
                   is_terminal: torch.Tensor, discount: float, lam: float) -> torch.Tensor:
    """λ-returns along a *replayed* sequence, for the replay value loss (chapter 7).

    Index t is a replayed step: rewards[t] is the reward received on arriving in state t (the one
    the reward predictor learns), boot[t] the value the return leans on at state t (the
    λ-return of the dream that starts there, else the critic's value). Backwards from
    R_{T−1} = boot_{T−1}, with live_t = γ · (1 − terminal_t) and c_t = λ · (1 − last_t):

        R_t = r_{t+1} + live_{t+1} · ((1 − c_{t+1}) · boot_{t+1} + c_{t+1} · R_{t+1})

    A real goal at t + 1 (terminal) gives R_t = r_{t+1} exactly; at a time-out (last, not
    terminal) the return bootstraps from boot_{t+1} and never reads into the next episode.
    Shapes (batch, T) → (batch, T − 1).
    """
    live = discount * (1.0 - is_terminal[:, 1:].to(rewards.dtype))
    cont = lam * (1.0 - is_last[:, 1:].to(rewards.dtype))
    returns = []
    following = boot[:, -1]
    for t in reversed(range(rewards.shape[1] - 1)):
        following = rewards[:, t + 1] + live[:, t] * (
            (1.0 - cont[:, t]) * boot[:, t + 1] + cont[:, t] * following)
        returns.append(following)
    return torch.stack(returns[::-1], 1)


@dataclass
class Dream:
    """An imagined trajectory from N start states: feat (N, H + 1, F), raw action samples
    (N, H, A), predicted rewards and continues (N, H) for the steps t → t + 1."""

    feat: torch.Tensor
    samples: torch.Tensor
    rewards: torch.Tensor
    continues: torch.Tensor


@dataclass
class BehaviorLosses:
    """The two losses of one behaviour update (scalars), its metrics (0-d tensors), the dream
    they were computed on, and what the replay value loss needs: each dream's λ-return at its
    start (N,), detached, and which of the flattened replayed states (batch · time) started the
    N dreams (None: all of them)."""

    actor: torch.Tensor
    critic: torch.Tensor
    metrics: dict
    dream: Dream
    start_returns: torch.Tensor
    starts: torch.Tensor | None


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
        the actions are reparameterised samples and the dream keeps its graph; `backward`
        then sends the actor loss's gradient to the actor alone, never to the world model.
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

    def loss(self, world_model: WorldModel, posterior: State,
             is_terminal: torch.Tensor) -> BehaviorLosses:
        """Actor and critic losses from the posterior states of a replayed batch.

        posterior: (batch, time, ...) detached; is_terminal: (batch, time). Every posterior
        state starts a dream (or a random `imagine_starts` of them); a terminal start state gets
        weight 0 (nothing follows it). The critic's logits on the dream are computed once:
        the critic loss trains them, and (for REINFORCE) their decoded values feed the
        λ-returns. The Moments update is the only state this changes.
        """
        c = self.config
        start = State(*(x.flatten(0, 1) for x in (posterior.deter, posterior.stoch,
                                                  posterior.logits)))
        is_terminal = is_terminal.flatten()
        starts = None
        if 0 < c.imagine_starts < len(is_terminal):
            starts = torch.randperm(len(is_terminal), device=is_terminal.device)
            starts = starts[:c.imagine_starts]
            start = State(start.deter[starts], start.stoch[starts], start.logits[starts])
            is_terminal = is_terminal[starts]
        dream = self.imagine(world_model, start)
        feat = dream.feat.detach()
        critic_logits = self.critic.net(feat)
        if c.actor_grad == "dynamics":  # the returns must carry gradients back into the dream
            values = self.critic(dream.feat)
        else:
            values = self.critic.decode(critic_logits.detach())
        returns = lambda_returns(dream.rewards, values, dream.continues, c.discount, c.lam)

        # Weight of step t: probability that the dream is still alive there, discounted.
        alive = 1.0 - is_terminal.float()
        cumulative = torch.cumprod(c.discount * dream.continues.detach(), 1)
        weight = alive[:, None] * torch.cat([torch.ones_like(cumulative[:, :1]),
                                             cumulative[:, :-1]], 1)
        offset, scale = self.moments(returns)
        advantage = (returns - values[:, :-1]) / scale

        # The policy reads sg(dream): its entropy bonus shapes the actor alone and never
        # reaches earlier actions through the dynamics (the official agent does the same).
        dist = self.actor(feat[:, :-1])
        entropy = (dist.gaussian_entropy() if c.entropy == "gaussian"
                   else dist.action_entropy(dream.samples))
        if c.actor_grad == "reinforce":
            objective = dist.log_prob(dream.samples) * advantage.detach()
        else:
            objective = (returns - offset) / scale
        actor_loss = -(weight * (objective + c.entropy_scale * entropy)).mean()

        slow_target = self.slow_critic(feat[:, :-1]).detach()
        logits = critic_logits[:, :-1]
        critic_loss = (weight * (twohot_loss(logits, returns.detach(), self.critic.bins)
                                 + c.slowreg_scale * twohot_loss(logits, slow_target,
                                                                 self.critic.bins))).mean()
        metrics = self._metrics(dist, dream, entropy.detach(), advantage.detach(),
                                returns.detach(), values.detach(), offset, scale)
        metrics.update({"behavior/actor_loss": actor_loss.detach(),
                        "behavior/critic_loss": critic_loss.detach()})
        return BehaviorLosses(actor_loss, critic_loss, metrics, dream, returns[:, 0].detach(),
                              starts)

    def replay_value_loss(self, feat: torch.Tensor, reward: torch.Tensor,
                          is_last: torch.Tensor, is_terminal: torch.Tensor,
                          losses: BehaviorLosses) -> tuple[torch.Tensor, dict]:
        """The critic trained a second time, on the replayed sequence itself (chapter 7).

        feat (batch, T, F) are the posterior features *with* their gradient: as in the official
        agent, this loss also shapes the world model's representation. Each state's return
        leans on the λ-return of the dream that starts there; a state that started no dream
        (`imagine_starts` below batch · T) leans on the critic's own value instead. Weighted
        by 1 − last (no target beyond an episode's end), with the slow-critic regulariser.
        Returns the mean loss (to be scaled by `repval_scale`) and metrics.
        """
        c = self.config
        logits = self.critic.net(feat)
        if losses.starts is None:
            boot = losses.start_returns
        else:
            boot = self.critic.decode(logits.detach()).flatten()
            boot = boot.index_copy(0, losses.starts, losses.start_returns)
        returns = replay_returns(reward, boot.reshape(reward.shape), is_last, is_terminal,
                                 c.discount, c.lam)
        slow_target = self.slow_critic(feat[:, :-1]).detach()
        weight = 1.0 - is_last[:, :-1].to(reward.dtype)
        loss = (weight * (twohot_loss(logits[:, :-1], returns, self.critic.bins)
                          + c.slowreg_scale * twohot_loss(logits[:, :-1], slow_target,
                                                          self.critic.bins))).mean()
        return loss, {"behavior/replay_value_loss": loss.detach(),
                      "behavior/replay_return_mean": returns.mean()}

    def backward(self, actor_loss: torch.Tensor, other_loss: torch.Tensor) -> None:
        """Gradients of the actor loss for the actor alone, and of `other_loss` (the critic's
        and, in a whole update, the world model's losses) for the other networks.

        With REINFORCE the actor loss reaches no other network (it reads detached dreams), so
        one backward pass of the sum gives every network exactly its own gradient. Through the
        dynamics it would also reach the world model and the critic: two passes keep it out.
        """
        if self.config.actor_grad == "reinforce":
            (actor_loss + other_loss).backward()
        else:
            actor_loss.backward(inputs=list(self.actor.parameters()), retain_graph=True)
            other_loss.backward()

    def step(self) -> dict:
        """Clip and apply the gradients `backward` left: AGC, then one LaProp step each for
        the actor and the critic, then the slow critic follows. Returns the gradient norms."""
        metrics = {"behavior/actor_grad_norm": clip_by_agc(self.actor.parameters(),
                                                           self.config.agc),
                   "behavior/critic_grad_norm": clip_by_agc(self.critic.parameters(),
                                                            self.config.agc)}
        self.actor_optimizer.step()
        self.critic_optimizer.step()
        self.update_slow_critic()
        return metrics

    def update(self, world_model: WorldModel, posterior: State,
               is_terminal: torch.Tensor) -> dict:
        """One actor and one critic step from the posterior states of a replayed batch: loss,
        zero_grad, backward, clip, step. Returns the metrics as 0-d tensors."""
        losses = self.loss(world_model, posterior, is_terminal)
        self.zero_grad(set_to_none=True)
        self.backward(losses.actor, losses.critic)
        return {**losses.metrics, **self.step()}

    def _metrics(self, dist, dream: Dream, entropy: torch.Tensor, advantage: torch.Tensor,
                 returns: torch.Tensor, values: torch.Tensor, offset: torch.Tensor,
                 scale: torch.Tensor) -> dict:
        """What chapter 7 and the troubleshooting page read, as 0-d tensors (no host sync)."""
        c = self.config
        advantage_abs = advantage.abs().mean()
        return {
            "behavior/entropy_mean": entropy.mean(),
            "behavior/entropy_std": entropy.std(),
            "behavior/entropy_min": entropy.min(),
            "behavior/entropy_max": entropy.max(),
            "behavior/gaussian_entropy": dist.gaussian_entropy().detach().mean(),
            "behavior/action_entropy": dist.action_entropy(dream.samples).detach().mean(),
            "behavior/actor_std": dist.std.detach().mean(),
            "behavior/advantage_mean": advantage.mean(),
            "behavior/advantage_std": advantage.std(),
            "behavior/advantage_abs_mean": advantage_abs,
            # Ratio of the two terms of the actor loss. Its value depends on where entropy has
            # its zero (the units of the action), so also:
            "behavior/entropy_to_advantage":
                c.entropy_scale * entropy.abs().mean() / (advantage_abs + 1e-8),
            # the ratio of their pulls on log σ: the bonus pulls with η per dimension, the
            # advantage term with about |adv| (E|ε² − 1| ≈ 0.96 for a unit normal ε).
            "behavior/entropy_pull_to_advantage": c.entropy_scale / (advantage_abs + 1e-8),
            "behavior/return_mean": returns.mean(),
            "behavior/return_low": offset,
            "behavior/return_high": self.moments.high.clone(),
            "behavior/return_scale": scale,
            "behavior/return_scale_at_floor": (scale <= c.return_floor).float(),
            "behavior/value_mean": values.mean(),
            "behavior/imagined_reward_mean": dream.rewards.detach().mean(),
            "behavior/imagined_continue_mean": dream.continues.detach().mean(),
        }

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        """slow ← (1 − mix) · slow + mix · critic, after every critic step (mix 0.02)."""
        for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
            slow.lerp_(fast, self.config.slow_critic_mix)
