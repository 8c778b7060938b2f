"""Distributions and squashing functions: symlog, symexp (more arrives with chapter 2)."""

import torch


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) · ln(1 + |x|): compresses large magnitudes, keeps small ones (paper eq. 1)."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: torch.Tensor) -> torch.Tensor:
    """sign(x) · (exp(|x|) − 1): the inverse of `symlog` (paper eq. 2)."""
    return torch.sign(x) * torch.expm1(torch.abs(x))
