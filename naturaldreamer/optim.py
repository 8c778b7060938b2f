"""The optimiser of the official DreamerV3: LaProp with adaptive gradient clipping (chapter 4).

LaProp (Ziyin et al., 2020) is Adam with the order of its two steps swapped: each gradient is
first divided by the running RMS of past gradients, and the momentum then averages these
normalised gradients. Before that, adaptive gradient clipping (AGC, Brock et al., 2021) shrinks
any parameter tensor's gradient whose norm exceeds 0.3 × the norm of the parameter itself.
"""

import torch


def clip_by_agc(parameters, clip: float = 0.3, floor: float = 1e-3) -> torch.Tensor:
    """Scale each tensor's gradient so that ‖g‖ ≤ clip · max(floor, ‖p‖); in place.

    Returns the global gradient norm before clipping, for logging.
    """
    norms = []
    for param in parameters:
        if param.grad is None:
            continue
        grad_norm = param.grad.norm()
        norms.append(grad_norm)
        limit = clip * torch.clamp(param.detach().norm(), min=floor)
        param.grad.mul_(torch.clamp(limit / (grad_norm + 1e-12), max=1.0))
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.tensor(0.0)


class LaProp(torch.optim.Optimizer):
    """LaProp with a linear learning-rate warm-up.

    Per parameter: v ← β2 v + (1 − β2) g²; n = g / (√(v / (1 − β2^k)) + eps);
    m ← β1 m + (1 − β1) n; p ← p − lr_k · m / (1 − β1^k), with lr_k = lr · min(1, k / warmup).
    Defaults are the official ones: lr 4e-5, β1 0.9, β2 0.999, eps 1e-20, warm-up 1000 updates.
    """

    def __init__(self, params, lr: float = 4e-5, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-20, warmup: int = 1000):
        super().__init__(params, dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, warmup=warmup))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = 0
                    state["rms"] = torch.zeros_like(param)
                    state["momentum"] = torch.zeros_like(param)
                state["step"] += 1
                k = state["step"]
                state["rms"].mul_(group["beta2"]).addcmul_(param.grad, param.grad,
                                                           value=1 - group["beta2"])
                rms = (state["rms"] / (1 - group["beta2"] ** k)).sqrt_().add_(group["eps"])
                state["momentum"].mul_(group["beta1"]).add_(param.grad / rms,
                                                            alpha=1 - group["beta1"])
                warm = min(1.0, k / group["warmup"]) if group["warmup"] else 1.0
                lr = group["lr"] * warm
                param.add_(state["momentum"], alpha=-lr / (1 - group["beta1"] ** k))
