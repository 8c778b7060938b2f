"""The recurrent state-space model (RSSM): the world model's memory and imagination (chapter 3).

The model state has two parts:
- `deter` h_t, a deterministic vector carried by a GRU (the recurrent model);
- `stoch` z_t, `stoch` categorical variables with `classes` classes each, one-hot, flattened.

The recurrent model computes h_t = f(h_{t−1}, z_{t−1}, a_{t−1}). The prior net guesses z_t from
h_t alone (what imagination uses); the posterior net also sees the encoded observation (what
training on real data uses). Both mix 1 % uniform probability into their categoricals (unimix).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from naturaldreamer.distributions import upcast
from naturaldreamer.networks import init_linear, mlp, trunc_normal_fan_in_


@dataclass
class State:
    """A batch of model states. deter: (batch, deter); stoch: (batch, stoch · classes);
    logits: (batch, stoch, classes), the unimixed log-probabilities z was drawn from."""

    deter: torch.Tensor
    stoch: torch.Tensor
    logits: torch.Tensor

    def feat(self) -> torch.Tensor:
        """The feature vector every head reads: concat(deter, stoch)."""
        return torch.cat([self.deter, self.stoch], -1)

    def detach(self) -> "State":
        """The same state cut from the graph that computed it."""
        return State(self.deter.detach(), self.stoch.detach(), self.logits.detach())


def stack_states(states: list[State], dim: int = 1) -> State:
    """Stack a list of per-step states along a new time axis (default: (batch, time, ...))."""
    return State(*(torch.stack([getattr(s, k) for s in states], dim)
                   for k in ("deter", "stoch", "logits")))


def unimix_logits(logits: torch.Tensor, unimix: float) -> torch.Tensor:
    """Log of (1 − unimix) · softmax(logits) + unimix / classes, over the last axis.

    No class can fall below unimix / classes in probability, which keeps KL terms finite.
    """
    if unimix == 0.0:
        return torch.log_softmax(logits, -1)
    probs = torch.softmax(logits, -1)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return torch.log(probs)


def sample_onehot(logits: torch.Tensor) -> torch.Tensor:
    """One-hot sample with straight-through gradients: forward value is the one-hot sample (up
    to float rounding), gradient is that of the probabilities. (..., classes) → (..., classes).

    `logits` are normalised log-probabilities (as `unimix_logits` returns), so the
    probabilities are simply their exponential."""
    probs = torch.exp(logits)
    # Gumbel-max trick: argmax(logits + Gumbel noise) is a sample from softmax(logits).
    gumbel = -torch.log(-torch.log(torch.rand_like(logits).clamp_(1e-20, 1.0)))
    onehot = F.one_hot((logits + gumbel).argmax(-1), logits.shape[-1]).to(probs.dtype)
    return onehot + probs - probs.detach()


def mode_onehot(logits: torch.Tensor) -> torch.Tensor:
    """The most likely class of each categorical as a one-hot vector: (..., classes)."""
    return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)


class BlockLinear(nn.Module):
    """A linear map that is block-diagonal: `blocks` independent Linear(in/blocks, out/blocks)
    on consecutive slices. (..., blocks, in/blocks) → (..., blocks, out/blocks).

    The initialisation's fan-in is the full input width, blocks · in/blocks, not the slice one
    output sees: the official initialiser reads a (blocks, in/blocks, out/blocks) kernel's
    fan-in as its last-but-one size times all leading sizes. `fan_in` overrides it."""

    def __init__(self, in_per_block: int, out_per_block: int, blocks: int,
                 fan_in: int | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(blocks, in_per_block, out_per_block))
        self.bias = nn.Parameter(torch.zeros(blocks, out_per_block))
        trunc_normal_fan_in_(self.weight, fan_in or blocks * in_per_block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("...bi,bio->...bo", x, self.weight) + self.bias


class RecurrentModel(nn.Module):
    """h_t = f(h_{t−1}, z_{t−1}, a_{t−1}): the official block-diagonal GRU.

    deter, stoch and action each pass through Linear(hidden) → norm → SiLU; the three results
    x are concatenated. h is split into `blocks` groups. Each group's hidden layer sees all of
    x and only its own slice of h_{t−1}: a dense layer from x (shared by all groups) plus a
    block-linear layer from h, then RMSNorm over the whole vector and SiLU. A block-linear gate
    layer gives each group its reset, candidate and update gates; the update gate's bias of −1
    favours keeping h. (The official code tiles x to every group and applies one block-linear
    layer to [x, h-slice]; splitting that layer's weight into the x part and the h part
    computes the same function without copying x `blocks` times.) The weights start as the
    official ones: both parts with the tiled kernel's fan-in, blocks · (3 · hidden + deter /
    blocks), and the gate layer with fan-in deter (`BlockLinear`).
    """

    def __init__(self, deter: int, stoch_flat: int, action_dim: int, hidden: int, blocks: int):
        super().__init__()
        if deter % blocks:
            raise ValueError(f"deter ({deter}) must be divisible by blocks ({blocks})")
        self.blocks = blocks
        self.in_deter = mlp(deter, hidden, 1)
        self.in_stoch = mlp(stoch_flat, hidden, 1)
        self.in_action = mlp(action_dim, hidden, 1)
        per_block = deter // blocks
        # The official kernel of the tiled form maps blocks · (3 · hidden + per_block) inputs
        # (1792 for deter 256, hidden 64) and its initialiser counts all of them as fan-in.
        fan_in = blocks * (3 * hidden + per_block)
        self.hidden_from_input = nn.Linear(3 * hidden, deter)
        trunc_normal_fan_in_(self.hidden_from_input.weight, fan_in)
        nn.init.zeros_(self.hidden_from_input.bias)
        self.hidden_from_deter = BlockLinear(per_block, per_block, blocks, fan_in)
        self.hidden_norm = nn.RMSNorm(deter, eps=1e-4)  # over all groups, as official
        self.gates = BlockLinear(per_block, 3 * per_block, blocks)

    def forward(self, deter: torch.Tensor, stoch: torch.Tensor,
                action: torch.Tensor) -> torch.Tensor:
        batch = deter.shape[:-1]
        # Actions beyond ±1 (unclipped Gaussian samples) are scaled back inside the unit box.
        action = action / torch.clamp(action.abs(), min=1.0).detach()
        x = torch.cat([self.in_deter(deter), self.in_stoch(stoch), self.in_action(action)], -1)
        grouped_deter = deter.reshape(*batch, self.blocks, -1)
        hidden = (self.hidden_from_input(x).reshape(*batch, self.blocks, -1)
                  + self.hidden_from_deter(grouped_deter))
        hidden = F.silu(self.hidden_norm(hidden.flatten(-2))).reshape(*batch, self.blocks, -1)
        reset, candidate, update = self.gates(hidden).chunk(3, -1)
        reset = torch.sigmoid(reset)
        candidate = torch.tanh(reset * candidate)
        update = torch.sigmoid(update - 1.0)
        new = update * candidate + (1.0 - update) * grouped_deter
        return new.reshape(*batch, -1)


class RSSM(nn.Module):
    """Recurrent model + prior net + posterior net, with `observe` and `imagine` loops."""

    def __init__(self, embed_dim: int, action_dim: int, deter: int = 512, stoch: int = 32,
                 classes: int = 4, hidden: int = 64, blocks: int = 8, prior_layers: int = 2,
                 posterior_layers: int = 1, unimix: float = 0.01):
        super().__init__()
        self.deter_dim, self.stoch_dim, self.classes = deter, stoch, classes
        self.action_dim, self.unimix = action_dim, unimix
        self.recurrent_model = RecurrentModel(deter, stoch * classes, action_dim, hidden, blocks)
        self.prior_net = self._logits_net(deter, hidden, prior_layers)
        self.posterior_net = self._logits_net(deter + embed_dim, hidden, posterior_layers)

    def _logits_net(self, in_dim: int, hidden: int, layers: int) -> nn.Sequential:
        """The shared shape of prior and posterior nets: MLP → Linear(stoch · classes)."""
        return nn.Sequential(mlp(in_dim, hidden, layers),
                             init_linear(nn.Linear(hidden, self.stoch_dim * self.classes)))

    @property
    def feat_dim(self) -> int:
        return self.deter_dim + self.stoch_dim * self.classes

    def initial_state(self, batch: int) -> State:
        """All zeros: the state before the first observation of an episode."""
        device = self.prior_net[-1].weight.device
        deter = torch.zeros(batch, self.deter_dim, device=device)
        stoch = torch.zeros(batch, self.stoch_dim * self.classes, device=device)
        logits = torch.zeros(batch, self.stoch_dim, self.classes, device=device)
        return State(deter, stoch, logits)

    def _logits(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raw = upcast(net(x)).reshape(*x.shape[:-1], self.stoch_dim, self.classes)
        return unimix_logits(raw, self.unimix)

    def _latent(self, net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self._logits(net, x)
        return sample_onehot(logits).flatten(-2), logits

    def img_step(self, prev: State, action: torch.Tensor) -> State:
        """One step of imagination: recurrent model, then a prior sample. action: (batch, A)."""
        deter = self.recurrent_model(prev.deter, prev.stoch, action)
        stoch, logits = self._latent(self.prior_net, deter)
        return State(deter, stoch, logits)

    def obs_step(self, prev: State, prev_action: torch.Tensor, embed: torch.Tensor,
                 is_first: torch.Tensor) -> tuple[State, State]:
        """One step on real data; returns (posterior, prior) for this step.

        Where `is_first` (batch,) is true the previous state and action are zeroed first (the
        initial state is all zeros): the model must not carry memory into a new episode.
        """
        keep = (~is_first).to(embed.dtype).unsqueeze(-1)
        deter = self.recurrent_model(keep * prev.deter, keep * prev.stoch, keep * prev_action)
        stoch, logits = self._latent(self.posterior_net, torch.cat([deter, embed], -1))
        prior_logits = self._logits(self.prior_net, deter)
        # The prior's own sample is not needed on real data: only its logits enter the KL.
        return State(deter, stoch, logits), State(deter, torch.zeros_like(stoch), prior_logits)

    def observe(self, embed: torch.Tensor, actions: torch.Tensor, is_first: torch.Tensor,
                start: State | None = None) -> tuple[State, State]:
        """Run the posterior over a sequence; returns (posteriors, priors) as (batch, time, ...).

        embed (batch, time, E); actions (batch, time, A) where actions[:, t] was taken *after*
        observation t; is_first (batch, time) bool. The step into observation t therefore uses
        actions[:, t − 1]; the sequence starts from `start` (zeros if None) with no action.
        The official agent stores each step's latent in replay and starts a window that begins
        mid-episode from it (`replay_context`); this book starts every window from zeros and
        lets the first observations fill the state in (our observations are nearly complete).
        """
        batch, time = embed.shape[:2]
        state = start if start is not None else self.initial_state(batch)
        prev_action = torch.zeros(batch, self.action_dim, device=embed.device)
        posteriors, priors = [], []
        for t in range(time):
            state, prior = self.obs_step(state, prev_action, embed[:, t], is_first[:, t])
            posteriors.append(state)
            priors.append(prior)
            prev_action = actions[:, t]
        return stack_states(posteriors), stack_states(priors)

    def imagine(self, start: State, policy, horizon: int) -> tuple[State, list]:
        """Roll the prior forward `horizon` steps from `start` (batch, ...) with `policy`.

        `policy(state) -> (sample, action)` is called on each of the horizon + 1 states; the
        action moves the model, the raw sample is kept for the actor's log-probability.
        Returns the states (batch, horizon + 1, ...) and the list of horizon + 1 policy outputs.
        """
        states, outputs = [start], []
        for _ in range(horizon):
            output = policy(states[-1])
            outputs.append(output)
            states.append(self.img_step(states[-1], output[1]))
        outputs.append(policy(states[-1]))
        return stack_states(states), outputs
