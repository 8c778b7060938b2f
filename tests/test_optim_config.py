"""LaProp and AGC against hand computations; config validation."""

from pathlib import Path

import numpy as np
import pytest
import torch

from naturaldreamer.config import Config, ConfigError, from_dict, load_config
from naturaldreamer.optim import LaProp, clip_by_agc


def test_laprop_matches_numpy_reference():
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=5)
    grads = [rng.normal(size=5) for _ in range(4)]
    param = torch.nn.Parameter(torch.tensor(p0))
    optimizer = LaProp([param], lr=0.1, warmup=2, eps=1e-20)
    p, v, m = p0.copy(), np.zeros(5), np.zeros(5)
    for k, g in enumerate(grads, start=1):
        param.grad = torch.tensor(g)
        optimizer.step()
        v = 0.999 * v + 0.001 * g ** 2
        n = g / (np.sqrt(v / (1 - 0.999 ** k)) + 1e-20)
        m = 0.9 * m + 0.1 * n
        p = p - 0.1 * min(1.0, k / 2) * m / (1 - 0.9 ** k)
        np.testing.assert_allclose(param.detach().numpy(), p, rtol=1e-12)


def test_agc_clips_relative_to_parameter_norm():
    big = torch.nn.Parameter(torch.full((4,), 1.0))  # ‖p‖ = 2 → limit 0.6
    big.grad = torch.full((4,), 3.0)  # ‖g‖ = 6
    small = torch.nn.Parameter(torch.full((4,), 1.0))
    small.grad = torch.full((4,), 0.1)  # ‖g‖ = 0.2 < 0.6: untouched
    zero = torch.nn.Parameter(torch.zeros(4))  # ‖p‖ = 0 → floor 1e-3 → limit 3e-4
    zero.grad = torch.ones(4)
    norm = clip_by_agc([big, small, zero], clip=0.3)
    assert abs(float(norm) - np.sqrt(36 + 0.04 + 4)) < 1e-5
    assert abs(float(big.grad.norm()) - 0.6) < 1e-6
    torch.testing.assert_close(small.grad, torch.full((4,), 0.1))
    assert abs(float(zero.grad.norm()) - 3e-4) < 1e-9


def per_tensor_agc(params, clip, floor=1e-3):
    """The clipping one tensor at a time, as a plain loop (the reference for the foreach one)."""
    norms = []
    for param in params:
        grad_norm = param.grad.norm()
        norms.append(grad_norm)
        limit = clip * torch.clamp(param.detach().norm(), min=floor)
        param.grad.mul_(torch.clamp(limit / (grad_norm + 1e-12), max=1.0))
    return torch.linalg.vector_norm(torch.stack(norms))


def per_tensor_laprop_step(params, states, lr, beta1, beta2, eps, warmup):
    """One LaProp step one tensor at a time, with integer step counts (the reference)."""
    for param, state in zip(params, states):
        state["step"] += 1
        k = state["step"]
        state["rms"].mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
        rms = (state["rms"] / (1 - beta2 ** k)).sqrt_().add_(eps)
        state["momentum"].mul_(beta1).add_(param.grad / rms, alpha=1 - beta1)
        with torch.no_grad():
            param.add_(state["momentum"], alpha=-lr * min(1.0, k / warmup) / (1 - beta1 ** k))


def test_multi_tensor_agc_and_laprop_match_the_per_tensor_loops():
    generator = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (5,), (3, 4, 2), (1,)]
    ours = [torch.nn.Parameter(torch.randn(s, generator=generator, dtype=torch.float64))
            for s in shapes]
    with torch.no_grad():
        ours[-1].zero_()  # ‖p‖ = 0: the floor decides the limit
    reference = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    optimizer = LaProp(ours, lr=0.01, warmup=3)
    states = [{"step": 0, "rms": torch.zeros_like(p), "momentum": torch.zeros_like(p)}
              for p in reference]
    for _ in range(6):
        for a, b in zip(ours, reference):
            # Large random gradients, so that AGC clips some tensors and not others.
            g = torch.randn(a.shape, generator=generator, dtype=torch.float64) * 3.0
            a.grad, b.grad = g.clone(), g.clone()
        norm = clip_by_agc(ours, 0.3)
        expected = per_tensor_agc(reference, 0.3)
        torch.testing.assert_close(norm, expected, rtol=1e-12, atol=0)
        for a, b in zip(ours, reference):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=0)
        optimizer.step()
        per_tensor_laprop_step(reference, states, 0.01, 0.9, 0.999, 1e-20, 3)
        for a, b in zip(ours, reference):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15)
    clipped = [float(torch.linalg.vector_norm(g)) for g in (p.grad for p in ours)]
    assert any(c < 3.0 for c in clipped)  # the test did exercise clipping


def test_laprop_resumes_from_integer_step_counts():
    param = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    optimizer = LaProp([param], lr=0.1, warmup=0)
    optimizer.state[param] = {"step": 4, "rms": torch.full((3,), 0.5, dtype=torch.float64),
                              "momentum": torch.full((3,), 0.1, dtype=torch.float64)}
    reference = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    state = {"step": 4, "rms": torch.full((3,), 0.5, dtype=torch.float64),
             "momentum": torch.full((3,), 0.1, dtype=torch.float64)}
    param.grad = reference.grad = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    optimizer.step()
    per_tensor_laprop_step([reference], [state], 0.1, 0.9, 0.999, 1e-20, 1)
    torch.testing.assert_close(param, reference, rtol=1e-12, atol=0)
    assert float(optimizer.state[param]["step"]) == 5


def test_defaults_are_the_official_values():
    config = Config()
    assert config.behavior.entropy_scale == 3e-4
    assert config.behavior.horizon == 15 and config.behavior.lam == 0.95
    assert abs(config.behavior.discount - (1 - 1 / 333)) < 1e-5
    assert (config.behavior.min_std, config.behavior.max_std) == (0.1, 1.0)
    assert config.world_model.free_nats == 1.0 and config.world_model.unimix == 0.01
    assert (config.world_model.dyn_scale, config.world_model.rep_scale) == (1.0, 0.1)
    assert config.replay.batch_size == 16 and config.replay.batch_length == 64
    assert config.world_model.lr == 4e-5 and config.world_model.agc == 0.3
    assert config.updates_per_step == 1.0  # train ratio 1024 / (16 · 64)


@pytest.mark.parametrize("data,message", [
    ({"behavior": {"entropy_scal": 1e-3}}, "behavior.entropy_scal.*did you mean.*entropy_scale"),
    ({"trian": {}}, "unknown config key 'trian'"),
    ({"behavior": {"lam": 1.5}}, r"behavior.lam must be in \[0.0, 1.0\]"),
    ({"behavior": {"horizon": "15"}}, "behavior.horizon: expected int"),
    ({"behavior": {"actor_dist": "gaussian"}}, "behavior.actor_dist: 'gaussian' is not one of"),
    ({"world_model": {"deter": 100, "blocks": 8}}, "world_model.deter .* divisible"),
    ({"replay": {"batch_size": 0}}, "replay.batch_size must be > 0"),
    ({"env": {"opponents": {"medium": 1}}}, "env.opponents.medium"),
    ({"env": {"modes": {"penalty": 1}}}, "env.modes.penalty"),
    ({"world_model": {"obs_weights": 10}}, "world_model.obs_weights: expected a list"),
    ({"world_model": {"obs_weights": [1, -2]}}, r"world_model.obs_weights\[1\] must be"),
    ({"world_model": {"obs_weights": [1, "x"]}}, r"world_model.obs_weights\[1\] must be"),
])
def test_config_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(data)


def test_load_config_reads_yaml_and_applies_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("behavior:\n  entropy_scale: 0.001\ntrain:\n  steps: 5\n")
    config = load_config(path, {"train.steps": 7})
    assert config.behavior.entropy_scale == 1e-3 and config.train.steps == 7
    assert config.behavior.horizon == 15  # untouched keys keep their defaults
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("behavior: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("name", ["pendulum", "hockey"])
def test_shipped_configs_load(name):
    load_config(Path(__file__).parent.parent / "configs" / f"{name}.yaml")


def test_modes_split_parallel_envs_in_proportion():
    from naturaldreamer.train import assign_modes

    modes = assign_modes({"normal": 2, "train_shooting": 1, "train_defense": 1}, 16)
    assert [modes.count(m) for m in ("normal", "train_shooting", "train_defense")] == [8, 4, 4]
    assert len(assign_modes({"normal": 1, "train_shooting": 1}, 5)) == 5
    assert assign_modes({}, 4) == []
