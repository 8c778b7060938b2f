"""The actor: a network from model state to an action distribution (chapter 6)."""

import torch
from torch import nn

from naturaldreamer.config import BehaviorConfig
from naturaldreamer.distributions import BoundedNormal, TanhNormal
from naturaldreamer.networks import init_linear, mlp


class Actor(nn.Module):
    """MLP → (raw mean, raw std) per action dimension → the configured distribution.

    The output layer starts at 1 % of the usual scale (official `outscale` 0.01), so the initial
    policy has mean ≈ 0 and the distribution's middle σ everywhere.
    """

    def __init__(self, feat_dim: int, action_dim: int, config: BehaviorConfig):
        super().__init__()
        self.config = config
        self.net = nn.Sequential(mlp(feat_dim, config.units, config.actor_layers),
                                 init_linear(nn.Linear(config.units, 2 * action_dim), 0.01))

    def forward(self, feat: torch.Tensor) -> BoundedNormal | TanhNormal:
        """feat (..., feat_dim) → a distribution over actions of shape (..., action_dim)."""
        raw_mean, raw_std = self.net(feat).chunk(2, -1)
        c = self.config
        if c.actor_dist == "tanh_normal":
            return TanhNormal(raw_mean, raw_std, c.log_std_min, c.log_std_max)
        return BoundedNormal(raw_mean, raw_std, c.min_std, c.max_std)
