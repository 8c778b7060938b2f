"""Squashing functions, two-hot encoding, and the two continuous actor distributions.

Chapter 2 introduces symlog, symexp and two-hot; chapter 6 the actor distributions and their
entropies. Everything here is plain tensor math with no learned parameters.
"""

import math

import torch
import torch.nn.functional as F

LOG_2PI_E = math.log(2.0 * math.pi * math.e)


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) · ln(1 + |x|): compresses large magnitudes, keeps small ones.

    From the paper's section on symlog predictions. Its autograd slope at exactly 0 is 0
    (torch.sign has no gradient there); the package never differentiates through it.
    """
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: torch.Tensor) -> torch.Tensor:
    """sign(x) · (exp(|x|) − 1): the inverse of `symlog` (the paper's symlog predictions)."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def upcast(x: torch.Tensor) -> torch.Tensor:
    """bfloat16 → float32, wider types unchanged. With `train.precision: bfloat16` the networks'
    matrix products run in bfloat16; every distribution's maths stays in float32 or wider."""
    return x.float() if x.dtype == torch.bfloat16 else x


def symlog_bins(n: int = 255, low: float = -20.0, high: float = 20.0) -> torch.Tensor:
    """`n` bin positions spaced evenly in symlog space, from `low` to `high`: shape (n,).

    Apply `symexp` to get the official DreamerV3 bins in raw units, which span ±(e^20 − 1).
    When low = −high the bins are made exactly symmetric around 0 (bins = −bins reversed).
    """
    bins = torch.linspace(low, high, n)
    if low == -high:
        bins = (bins - bins.flip(0)) / 2
    return bins


def twohot_encode(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Two-hot target for each value of `x`: shape x.shape + (len(bins),).

    The mass is split between the two bins that enclose x, in proportion to closeness, so that
    the expected bin position equals x exactly. Values outside the bins go to the end bin.
    `x` and `bins` must be in the same space (raw units for the official agent).
    """
    x = x.to(bins.dtype).clamp(bins[0], bins[-1])
    upper = torch.searchsorted(bins, x.contiguous(), right=True).clamp(1, len(bins) - 1)
    lower = upper - 1
    width = bins[upper] - bins[lower]
    weight_upper = ((x - bins[lower]) / width).clamp(0.0, 1.0)
    target = torch.zeros(*x.shape, len(bins), dtype=x.dtype, device=x.device)
    target.scatter_(-1, lower.unsqueeze(-1), (1.0 - weight_upper).unsqueeze(-1))
    target.scatter_add_(-1, upper.unsqueeze(-1), weight_upper.unsqueeze(-1))
    return target


def twohot_decode(logits: torch.Tensor, bins: torch.Tensor,
                  symmetric: bool | None = None) -> torch.Tensor:
    """Expected bin position under softmax(logits): shape logits.shape[:-1].

    For symmetric bins the sum pairs each positive bin with its mirror image first,
    Σ_i (p_i⁺ − p_i⁻) · b_i, so that uniform probabilities give exactly 0 even though the outer
    bins are of order 1e8 (the official agent sums in the same spirit). `symmetric=None` checks
    the bins; a caller that knows (the two-hot heads) says so, which keeps the check, a
    data-dependent branch, out of a compiled training step.
    """
    probs = torch.softmax(upcast(logits), dim=-1)
    half = len(bins) // 2
    if symmetric is None:
        symmetric = bool(torch.equal(bins[-half:], -bins[:half].flip(0)))
    if not symmetric:
        return probs @ bins
    return (probs[..., -half:] - probs[..., :half].flip(-1)) @ bins[-half:]


def twohot_loss(logits: torch.Tensor, target: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between softmax(logits) and the two-hot encoding of `target`.

    Shapes: logits (..., n_bins), target (...) → loss (...).
    """
    return -(twohot_encode(target, bins) * F.log_softmax(upcast(logits), dim=-1)).sum(-1)


def gaussian_entropy(std: torch.Tensor) -> torch.Tensor:
    """Differential entropy of a diagonal Gaussian, summed over the last axis: ½ ln(2πe σ²) each.

    It is negative whenever σ < 1/√(2πe) ≈ 0.242: differential entropy has no lower bound.
    """
    return (0.5 * LOG_2PI_E + torch.log(std)).sum(-1)


def _normal_log_density(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((x - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2.0 * math.pi)


def _reparameterized(sample: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The same value as `sample`, rewritten as mean + std · ε with ε held fixed, so that a
    function of it passes its gradient to mean and std along the sampling path."""
    noise = ((sample - mean) / std).detach()
    return mean + std * noise


def log_one_minus_tanh_squared(u: torch.Tensor) -> torch.Tensor:
    """ln(1 − tanh(u)²) = 2 (ln 2 − u − softplus(−2u)), stable for large |u|."""
    return 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))


class TanhNormal:
    """The readers' actor: u ~ Normal(mean, σ), action a = tanh(u), with bounded log σ.

    log σ = log_std_min + (log_std_max − log_std_min) · sigmoid(raw), so σ ∈ [e^min, e^max].
    Shapes: mean and raw_std (..., action_dim).
    """

    def __init__(self, mean: torch.Tensor, raw_std: torch.Tensor,
                 log_std_min: float = -2.0, log_std_max: float = 2.0):
        self.mean = upcast(mean)
        self.log_std = log_std_min + (log_std_max - log_std_min) * torch.sigmoid(upcast(raw_std))
        self.std = torch.exp(self.log_std)

    def sample(self, reparameterize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (u, a): the pre-squash Gaussian sample and the action tanh(u) in (−1, 1)."""
        noise = torch.randn_like(self.mean)
        u = self.mean + self.std * noise
        if not reparameterize:
            u = u.detach()
        return u, torch.tanh(u)

    def mode_action(self) -> torch.Tensor:
        """tanh(mean): the deterministic action used for evaluation."""
        return torch.tanh(self.mean)

    def log_prob(self, u: torch.Tensor) -> torch.Tensor:
        """ln p(a) of the squashed action a = tanh(u), change of variables:

        ln p(a) = ln N(u; mean, σ) − Σ ln(1 − tanh(u)²). Shape (...,).
        """
        gaussian = _normal_log_density(u, self.mean, self.std).sum(-1)
        return gaussian - log_one_minus_tanh_squared(u).sum(-1)

    def gaussian_entropy(self) -> torch.Tensor:
        """Entropy of the pre-squash Gaussian. Not the entropy of the action: see chapter 6."""
        return gaussian_entropy(self.std)

    def action_entropy(self, u: torch.Tensor) -> torch.Tensor:
        """One-sample Monte-Carlo estimate of the entropy of the action a = tanh(u), given u:

        H[a] = H[u] + E[Σ ln(1 − tanh(u)²)]. Average over many u for a precise value. A single
        u gives an unbiased estimate, and its gradient (taken along the sampling path, even
        when u itself was detached) is an unbiased estimate of the gradient of H[a].
        """
        u = _reparameterized(u, self.mean, self.std)
        return self.gaussian_entropy() + log_one_minus_tanh_squared(u).sum(-1)


class BoundedNormal:
    """The official DreamerV3 actor: an unsquashed Normal with bounded mean and σ.

    mean = tanh(raw_mean), σ = (max_std − min_std) · sigmoid(raw_std + 2) + min_std, with
    min_std 0.1 and max_std 1.0 by default; σ ≈ 0.89 when raw_std = 0. The environment receives
    the sample clipped to [−1, 1]. Shapes: raw_mean and raw_std (..., action_dim).
    """

    def __init__(self, raw_mean: torch.Tensor, raw_std: torch.Tensor,
                 min_std: float = 0.1, max_std: float = 1.0):
        self.mean = torch.tanh(upcast(raw_mean))
        self.std = (max_std - min_std) * torch.sigmoid(upcast(raw_std) + 2.0) + min_std

    def sample(self, reparameterize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (x, a): the Gaussian sample and the action a = clip(x, −1, 1) sent to the env.

        For the world model, a equals x / max(1, |x|) per dimension; with `reparameterize`
        the gradient flows through x as in the official agent (the clip factor is held fixed).
        """
        x = self.mean + self.std * torch.randn_like(self.mean)
        if not reparameterize:
            x = x.detach()
        return x, x / torch.clamp(x.abs(), min=1.0).detach()

    def mode_action(self) -> torch.Tensor:
        """The mean, already inside (−1, 1)."""
        return self.mean

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Gaussian log-density of the unclipped sample x, summed over action dims."""
        return _normal_log_density(x, self.mean, self.std).sum(-1)

    def gaussian_entropy(self) -> torch.Tensor:
        """Analytic entropy of the Normal: what the official actor loss uses."""
        return gaussian_entropy(self.std)

    def action_entropy(self, x: torch.Tensor) -> torch.Tensor:
        """One-sample Monte-Carlo estimate of the entropy of the clipped action a = clip(x).

        a has a density inside (−1, 1) and point masses at ±1 (the Gaussian tails). Its entropy
        is taken with respect to length inside the interval plus counting at the two ends:
        −ln p(x) for an interior sample, −ln P(x ≷ ±1) for a clipped one.
        """
        z_low = (-1.0 - self.mean) / self.std
        z_high = (1.0 - self.mean) / self.std
        log_mass_low = torch.special.log_ndtr(z_low)
        log_mass_high = torch.special.log_ndtr(-z_high)
        x = _reparameterized(x, self.mean, self.std)
        inside = _normal_log_density(x, self.mean, self.std)
        log_q = torch.where(x <= -1.0, log_mass_low, torch.where(x >= 1.0, log_mass_high, inside))
        return -log_q.sum(-1)
