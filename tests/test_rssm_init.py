"""The block GRU starts with the official weight spread: fan-in = a block kernel's full input."""

import math

import pytest
import torch

from naturaldreamer.rssm import BlockLinear, RecurrentModel


def truncated_normal_std(cut: float = 2.0) -> float:
    """Standard deviation of a unit normal truncated to ±cut, from its density (independent of
    the 0.8796 constant the package uses)."""
    density = math.exp(-0.5 * cut * cut) / math.sqrt(2 * math.pi)
    mass = math.erf(cut / math.sqrt(2))
    return math.sqrt(1 - 2 * cut * density / mass)


def official_std(fan_in: int) -> float:
    """The official `trunc_normal` initialiser: a ±2 truncated unit normal × 1.1368 /
    sqrt(fan_in)."""
    return truncated_normal_std() * 1.1368 / math.sqrt(fan_in)


def test_truncated_normal_std_matches_the_known_constant():
    assert truncated_normal_std() == pytest.approx(0.8796, abs=1e-4)


def test_block_gru_weights_have_the_official_spread():
    torch.manual_seed(0)
    deter, hidden, blocks = 256, 64, 8
    model = RecurrentModel(deter, stoch_flat=128, action_dim=4, hidden=hidden, blocks=blocks)
    # The official tiled kernel (blocks, 3·hidden + deter/blocks, deter/blocks): fan-in counts
    # every input of the flat vector it reads.
    hidden_fan_in = blocks * (3 * hidden + deter // blocks)
    assert hidden_fan_in == 1792
    hidden_weights = torch.cat([model.hidden_from_input.weight.flatten(),
                                model.hidden_from_deter.weight.flatten()])
    # The gate kernel (blocks, deter/blocks, 3·deter/blocks) reads the whole deter vector.
    gate_weights = model.gates.weight.flatten()
    for weights, fan_in in ((hidden_weights, 1792), (gate_weights, 256)):
        expected = official_std(fan_in)
        assert weights.std().item() == pytest.approx(expected, rel=0.03)
        assert weights.abs().max().item() <= 2 * 1.1368 / math.sqrt(fan_in) + 1e-7
    # The per-block fan-ins (224 and 32) would give spreads 2.8 times larger.
    assert gate_weights.std().item() < 0.5 * official_std(32)
    assert hidden_weights.std().item() < 0.5 * official_std(224)


def test_block_linear_default_fan_in_is_the_full_input_width():
    torch.manual_seed(1)
    layer = BlockLinear(in_per_block=16, out_per_block=64, blocks=8)
    assert layer.weight.std().item() == pytest.approx(official_std(8 * 16), rel=0.03)
    explicit = BlockLinear(16, 64, 8, fan_in=1000)
    assert explicit.weight.std().item() == pytest.approx(official_std(1000), rel=0.03)
