"""The world model and its one update (chapter 4).

On a batch of real sequences the model learns to
- reconstruct each observation from its state (decoder, symlog squared error),
- predict the reward received on arriving in that state (two-hot),
- predict whether the episode continues after it (Bernoulli),
- make its prior match its posterior (the KL terms, balanced and with free nats).
"""

from dataclasses import dataclass

import torch
from torch import nn

from naturaldreamer.config import ConfigError, WorldModelConfig
from naturaldreamer.networks import ContinueHead, Decoder, Encoder, TwoHotHead
from naturaldreamer.optim import LaProp, clip_by_agc
from naturaldreamer.rssm import RSSM, State


@dataclass
class Batch:
    """Sequences sampled from replay, all (batch, time, ...). At index t: the observation,
    the action taken after seeing it, the reward received on arriving in it, whether it starts
    an episode, whether it is terminal (the game ended there; a time-out is not), and whether
    it is the last of its episode (terminal or time-out; only the replay value loss reads it)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    is_first: torch.Tensor
    is_terminal: torch.Tensor
    is_last: torch.Tensor | None = None


def categorical_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) of categoricals given as log-probabilities (..., stoch, classes), summed over
    the stoch variables: shape (...)."""
    p = torch.softmax(p_logits, -1)
    kl = (p * (torch.log_softmax(p_logits, -1) - torch.log_softmax(q_logits, -1))).sum(-1)
    return kl.sum(-1)


def kl_losses(post_logits: torch.Tensor, prior_logits: torch.Tensor,
              free_nats: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The dynamics and representation losses, each clipped below at free_nats.

    From the paper's world model learning section.

    dyn = max(free, KL(sg(post) ‖ prior)) trains the prior towards the posterior;
    rep = max(free, KL(post ‖ sg(prior))) trains the posterior towards the prior.
    Below `free_nats` the max is constant, so its gradient is exactly zero.
    """
    dyn = categorical_kl(post_logits.detach(), prior_logits)
    rep = categorical_kl(post_logits, prior_logits.detach())
    return torch.clamp(dyn, min=free_nats), torch.clamp(rep, min=free_nats)


class WorldModel(nn.Module):
    """Encoder, RSSM, decoder, reward predictor and continue predictor, with their optimiser."""

    def __init__(self, obs_dim: int, action_dim: int, config: WorldModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = Encoder(obs_dim, c.units, c.encoder_layers)
        self.rssm = RSSM(c.units, action_dim, c.deter, c.stoch, c.classes, c.hidden, c.blocks,
                         c.prior_layers, c.posterior_layers, c.unimix)
        feat = self.rssm.feat_dim
        if c.obs_weights and len(c.obs_weights) != obs_dim:
            raise ConfigError(f"world_model.obs_weights has {len(c.obs_weights)} entries but "
                              f"the observation has {obs_dim} dimensions: give one per "
                              f"dimension, or none")
        self.decoder = Decoder(feat, obs_dim, c.units, c.decoder_layers, c.obs_weights)
        self.reward_predictor = TwoHotHead(feat, c.units, c.reward_layers)
        self.continue_predictor = ContinueHead(feat, c.units, c.continue_layers)
        self.optimizer = LaProp(self.parameters(), c.lr, eps=c.eps, warmup=c.warmup)

    def loss(self, batch: Batch) -> tuple[torch.Tensor, dict, State]:
        """Total loss, per-term metrics, and the posterior states (batch, time, ...)."""
        c = self.config
        embed = self.encoder(batch.obs)
        posterior, prior = self.rssm.observe(embed, batch.action, batch.is_first)
        feat = posterior.feat()
        rec = self.decoder.loss(feat, batch.obs)
        rew = self.reward_predictor.loss(feat, batch.reward)
        # Target 1 − terminal. The official agent multiplies it by γ (`contdisc`); the book
        # keeps γ explicit in the λ-returns and the dream weights instead (same product).
        con = self.continue_predictor.loss(feat, 1.0 - batch.is_terminal.float())
        dyn, rep = kl_losses(posterior.logits, prior.logits, c.free_nats)
        total = (c.rec_scale * rec + c.reward_scale * rew + c.continue_scale * con
                 + c.dyn_scale * dyn + c.rep_scale * rep).mean()
        metrics = {"world/loss": total, "world/rec": rec.mean(), "world/reward": rew.mean(),
                   "world/continue": con.mean(), "world/kl_dyn": dyn.mean(),
                   "world/kl_rep": rep.mean(),
                   "world/post_entropy": _categorical_entropy(posterior.logits).mean(),
                   "world/prior_entropy": _categorical_entropy(prior.logits).mean()}
        return total, metrics, posterior

    def step(self) -> dict:
        """Clip the gradients `backward` left (AGC) and take one LaProp step."""
        grad_norm = clip_by_agc(self.parameters(), self.config.agc)
        self.optimizer.step()
        return {"world/grad_norm": grad_norm}

    def update(self, batch: Batch) -> tuple[dict, State]:
        """One gradient step of the world model alone: loss, zero_grad, backward, clip, step.
        Returns metrics (0-d tensors) and the detached posterior states."""
        loss, metrics, posterior = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        metrics.update(self.step())
        return {k: v.detach() for k, v in metrics.items()}, posterior.detach()


def _categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of the latent categoricals, summed over stoch variables."""
    return -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum((-1, -2))
