"""The building blocks every network of the agent is made of (chapter 3).

An MLP block is Linear → RMSNorm → SiLU. Weights start from a truncated normal scaled by fan-in;
output layers get an `outscale` that multiplies that initialisation: 0 for the reward and critic
heads (they predict exactly 0 at the start), 0.01 for the actor, 1 elsewhere (as in the official
DreamerV3).
"""

import math
from collections.abc import Sequence

import torch
from torch import nn

from naturaldreamer.distributions import (symexp, symlog, symlog_bins, twohot_decode,
                                          twohot_loss, upcast)

# The standard deviation of a unit normal truncated to ±2σ is 0.8796; dividing by it (×1.1368)
# restores unit variance, as the official agent's `trunc_normal_in` does.
TRUNCATED_NORMAL_CORRECTION = 1.1368


def trunc_normal_fan_in_(weight: torch.Tensor, fan_in: int, outscale: float = 1.0) -> None:
    """Fill `weight` with a normal of variance 1/fan_in, truncated at ±2σ, times `outscale`."""
    std = TRUNCATED_NORMAL_CORRECTION * math.sqrt(1.0 / fan_in) * outscale
    if std == 0.0:
        nn.init.zeros_(weight)
    else:
        nn.init.trunc_normal_(weight, std=std, a=-2.0 * std, b=2.0 * std)


def init_linear(layer: nn.Linear, outscale: float = 1.0) -> nn.Linear:
    """Fan-in truncated-normal weights times `outscale`, zero bias; returns the layer."""
    trunc_normal_fan_in_(layer.weight, layer.in_features, outscale)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(in_dim: int, units: int, layers: int) -> nn.Sequential:
    """`layers` blocks of Linear(units) → RMSNorm(eps 1e-4) → SiLU."""
    blocks = []
    for index in range(layers):
        blocks += [init_linear(nn.Linear(in_dim if index == 0 else units, units)),
                   nn.RMSNorm(units, eps=1e-4), nn.SiLU()]
    return nn.Sequential(*blocks)


class Encoder(nn.Module):
    """Vector encoder: symlog the observation, then an MLP. (batch, time, obs) → (.., units)."""

    def __init__(self, obs_dim: int, units: int, layers: int):
        super().__init__()
        self.net = mlp(obs_dim, units, layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(symlog(obs))


class Decoder(nn.Module):
    """Vector decoder: predicts symlog(observation) from the model state (feature vector).

    `weights` (obs_dim,), if given, weigh each observation dimension's error in the loss."""

    def __init__(self, feat_dim: int, obs_dim: int, units: int, layers: int,
                 weights: Sequence[float] = ()):
        super().__init__()
        self.net = nn.Sequential(mlp(feat_dim, units, layers),
                                 init_linear(nn.Linear(units, obs_dim)))
        # Not in the state dict: the config that rebuilds the decoder carries the weights.
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32)
                             if len(weights) else None, persistent=False)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """Reconstruction in observation units: symexp of the prediction."""
        return symexp(upcast(self.net(feat)))

    def loss(self, feat: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Symlog squared error, summed over observation dims (with the weights, if any):
        (batch, time)."""
        error = (upcast(self.net(feat)) - symlog(obs)) ** 2
        return (error if self.weights is None else error * self.weights).sum(-1)


class TwoHotHead(nn.Module):
    """A scalar predictor with a 255-bin two-hot output (reward predictor and critic).

    Bins are the official ones: symexp of 255 points evenly spaced in [−20, 20], so the
    prediction is the mean in raw units. The last layer starts at zero: prediction 0.
    """

    def __init__(self, feat_dim: int, units: int, layers: int, num_bins: int = 255):
        super().__init__()
        self.net = nn.Sequential(mlp(feat_dim, units, layers),
                                 init_linear(nn.Linear(units, num_bins), outscale=0.0))
        self.register_buffer("bins", symexp(symlog_bins(num_bins)), persistent=False)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """The predicted mean, shape feat.shape[:-1]."""
        return self.decode(self.net(feat))

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """The mean of the distribution given by `logits` (..., bins): shape (...)."""
        return twohot_decode(logits, self.bins, symmetric=True)

    def loss(self, feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Two-hot cross-entropy against `target` (same shape as the prediction)."""
        return twohot_loss(self.net(feat), target, self.bins)


class ContinueHead(nn.Module):
    """Bernoulli predictor of 'the episode goes on after this state' (1 − terminal)."""

    def __init__(self, feat_dim: int, units: int, layers: int):
        super().__init__()
        self.net = nn.Sequential(mlp(feat_dim, units, layers),
                                 init_linear(nn.Linear(units, 1)))

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """Probability of continuing, shape feat.shape[:-1]."""
        return torch.sigmoid(upcast(self.net(feat)).squeeze(-1))

    def loss(self, feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy against the 0/1 target."""
        logits = upcast(self.net(feat)).squeeze(-1)
        return nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
