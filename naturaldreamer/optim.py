"""The optimiser of the official DreamerV3: LaProp with adaptive gradient clipping (chapter 4).

LaProp (Ziyin et al., 2020) is Adam with the order of its two steps swapped: each gradient is
first divided by the running RMS of past gradients, and the momentum then averages these
normalised gradients. Before that, adaptive gradient clipping (AGC, Brock et al., 2021) shrinks
any parameter tensor's gradient whose norm exceeds 0.3 × the norm of the parameter itself.

Both are written with PyTorch's multi-tensor operations (`torch._foreach_*`): one call applies
the same formula to every parameter tensor of a network at once. The maths is per tensor, as
the docstrings say; only the Python loop over tensors is gone, which on a CPU saves thousands
of small operations per update (chapter 9, "Why an update is slow on a CPU").
"""

import torch


def clip_by_agc(parameters, clip: float = 0.3, floor: float = 1e-3) -> torch.Tensor:
    """Scale each tensor's gradient so that ‖g‖ ≤ clip · max(floor, ‖p‖); in place.

    Returns the global gradient norm before clipping, for logging.
    """
    params = [param for param in parameters if param.grad is not None]
    if not params:
        return torch.tensor(0.0)
    grads = [param.grad for param in params]
    grad_norms = torch._foreach_norm(grads)
    limits = torch._foreach_maximum(torch._foreach_norm([p.detach() for p in params]), floor)
    torch._foreach_mul_(limits, clip)
    # factor = min(1, limit / ‖g‖): 1 leaves a small gradient untouched.
    factors = torch._foreach_div(limits, torch._foreach_add(grad_norms, 1e-12))
    torch._foreach_clamp_max_(factors, 1.0)
    torch._foreach_mul_(grads, factors)
    return torch.linalg.vector_norm(torch.stack(grad_norms))


class LaProp(torch.optim.Optimizer):
    """LaProp with a linear learning-rate warm-up.

    Per parameter: v ← β2 v + (1 − β2) g²; n = g / (√(v / (1 − β2^k)) + eps);
    m ← β1 m + (1 − β1) n; p ← p − lr_k · m / (1 − β1^k), with lr_k = lr · min(1, k / warmup).
    Defaults are the official ones: lr 4e-5, β1 0.9, β2 0.999, eps 1e-20, warm-up 1000 updates.
    The step count k is a tensor (as in torch's own Adam), so a compiled step is not rebuilt
    for every new value of k.
    """

    def __init__(self, params, lr: float = 4e-5, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-20, warmup: int = 1000):
        super().__init__(params, dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, warmup=warmup))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [param for param in group["params"] if param.grad is not None]
            if not params:
                continue
            for param in params:
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=param.dtype, device=param.device)
                    state["rms"] = torch.zeros_like(param)
                    state["momentum"] = torch.zeros_like(param)
                elif not torch.is_tensor(state["step"]):  # a checkpoint with integer steps
                    state["step"] = torch.tensor(float(state["step"]), dtype=param.dtype,
                                                 device=param.device)
            grads = [param.grad for param in params]
            steps, rms, momentum = ([self.state[p][key] for p in params]
                                    for key in ("step", "rms", "momentum"))
            beta1, beta2 = group["beta1"], group["beta2"]
            torch._foreach_add_(steps, 1.0)
            torch._foreach_mul_(rms, beta2)
            torch._foreach_addcmul_(rms, grads, grads, value=1 - beta2)
            # √(v / (1 − β2^k)) + eps, then n = g / that
            debiased = torch._foreach_div(rms, _one_minus_power(beta2, steps))
            torch._foreach_sqrt_(debiased)
            torch._foreach_add_(debiased, group["eps"])
            torch._foreach_mul_(momentum, beta1)
            torch._foreach_add_(momentum, torch._foreach_div(grads, debiased), alpha=1 - beta1)
            # −lr · min(1, k / warmup) / (1 − β1^k), one number per tensor
            sizes = torch._foreach_div(_warmup(steps, group["warmup"]),
                                       _one_minus_power(beta1, steps))
            torch._foreach_mul_(sizes, -group["lr"])
            torch._foreach_add_(params, torch._foreach_mul(momentum, sizes))


def _one_minus_power(beta: float, steps: list[torch.Tensor]) -> list[torch.Tensor]:
    """[1 − β^k for each step count k]."""
    powers = torch._foreach_pow(beta, steps)
    torch._foreach_neg_(powers)
    torch._foreach_add_(powers, 1.0)
    return powers


def _warmup(steps: list[torch.Tensor], warmup: int) -> list[torch.Tensor]:
    """[min(1, k / warmup) for each step count k]; all ones without warm-up."""
    if not warmup:
        return [torch.ones_like(step) for step in steps]
    fractions = torch._foreach_div(steps, float(warmup))
    torch._foreach_clamp_max_(fractions, 1.0)
    return fractions
