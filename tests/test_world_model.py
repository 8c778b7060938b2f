"""RSSM pieces and the world-model losses."""

import numpy as np
import pytest
import torch

from naturaldreamer.config import ConfigError, WorldModelConfig
from naturaldreamer.networks import Decoder
from naturaldreamer.rssm import RSSM, sample_onehot, unimix_logits
from naturaldreamer.world_model import Batch, WorldModel, categorical_kl, kl_losses


def test_unimix_probabilities():
    logits = torch.tensor([[50.0, 0.0, -50.0, 0.0]])
    probs = torch.exp(unimix_logits(logits, 0.01))
    softmax = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum()
    np.testing.assert_allclose(probs.numpy(), 0.99 * softmax + 0.01 / 4, rtol=1e-5)
    assert float(probs.min()) >= 0.01 / 4 * 0.999
    torch.testing.assert_close(probs.sum(-1), torch.ones(1))


def test_straight_through_sample_is_onehot_with_probability_gradient():
    torch.manual_seed(0)
    logits = torch.randn(10000, 4, requires_grad=True)
    sample = sample_onehot(torch.log_softmax(logits, -1))
    torch.testing.assert_close(sample.detach().sum(-1), torch.ones(10000))
    torch.testing.assert_close(sample.detach(), sample.detach().round())
    weights = torch.randn(4)
    (sample * weights).sum().backward()
    probs = torch.softmax(logits.detach(), -1)
    expected = probs * (weights - (probs * weights).sum(-1, keepdim=True))  # softmax Jacobian
    torch.testing.assert_close(logits.grad, expected)
    # the sampling frequencies follow the probabilities
    frequency = sample.detach().mean(0)
    torch.testing.assert_close(frequency, probs.mean(0), atol=0.02, rtol=0)


def test_categorical_kl_against_numpy():
    p, q = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    pn = np.exp(p.numpy()) / np.exp(p.numpy()).sum(-1, keepdims=True)
    qn = np.exp(q.numpy()) / np.exp(q.numpy()).sum(-1, keepdims=True)
    expected = (pn * np.log(pn / qn)).sum((-1, -2))
    np.testing.assert_allclose(categorical_kl(p, q).numpy(), expected, rtol=1e-5)


def test_free_nats_zero_gradient_below_threshold():
    post = torch.randn(2, 32, 4, requires_grad=True)
    prior = (post.detach() + 0.01 * torch.randn(2, 32, 4)).requires_grad_(True)
    dyn, rep = kl_losses(post, prior, free_nats=1.0)
    assert float(categorical_kl(post, prior).detach().max()) < 1.0
    torch.testing.assert_close(dyn, torch.ones(2))
    (dyn + rep).sum().backward()
    assert post.grad.abs().max() == 0 and prior.grad.abs().max() == 0


def test_kl_balance_routes_gradients():
    post = torch.randn(1, 32, 4, requires_grad=True)
    prior = torch.randn(1, 32, 4, requires_grad=True)
    dyn, rep = kl_losses(post, prior, free_nats=1.0)
    assert float(dyn) > 1.0
    dyn.sum().backward(retain_graph=True)
    assert post.grad is None or post.grad.abs().max() == 0  # dyn trains only the prior
    assert prior.grad.abs().max() > 0
    prior.grad = None
    rep.sum().backward()
    assert prior.grad is None or prior.grad.abs().max() == 0  # rep trains only the posterior
    assert post.grad.abs().max() > 0


def test_observe_resets_state_at_episode_start():
    torch.manual_seed(0)
    rssm = RSSM(embed_dim=8, action_dim=2, deter=64, stoch=4, classes=4, hidden=16, blocks=4)
    embed, actions = torch.randn(1, 6, 8), torch.randn(1, 6, 2)
    is_first = torch.zeros(1, 6, dtype=torch.bool)
    is_first[0, 3] = True
    posterior, _ = rssm.observe(embed, actions, is_first)
    fresh, _ = rssm.observe(embed[:, 3:], actions[:, 3:], torch.ones(1, 3, dtype=torch.bool))
    # The deterministic state after a reset depends on nothing from before it.
    torch.testing.assert_close(posterior.deter[:, 3], fresh.deter[:, 0])
    torch.testing.assert_close(posterior.deter[:, 3], rssm.recurrent_model(
        torch.zeros(1, 64), torch.zeros(1, 16), torch.zeros(1, 2)))
    no_reset, _ = rssm.observe(embed, actions, torch.zeros(1, 6, dtype=torch.bool))
    assert not torch.allclose(no_reset.deter[:, 3], fresh.deter[:, 0])


def test_observe_uses_previous_action():
    rssm = RSSM(embed_dim=8, action_dim=2, deter=64, stoch=4, classes=4, hidden=16, blocks=4)
    embed, actions = torch.randn(1, 3, 8), torch.randn(1, 3, 2)
    is_first = torch.zeros(1, 3, dtype=torch.bool)
    base, _ = rssm.observe(embed, actions, is_first)
    changed = actions.clone()
    changed[0, 2] += 5.0  # the action after the last observation cannot affect any state
    torch.manual_seed(0)
    a, _ = rssm.observe(embed, actions, is_first)
    torch.manual_seed(0)
    b, _ = rssm.observe(embed, changed, is_first)
    torch.testing.assert_close(a.deter, b.deter)
    changed[0, 0] += 5.0  # the first action changes the second state
    torch.manual_seed(0)
    c, _ = rssm.observe(embed, changed, is_first)
    assert not torch.allclose(a.deter[:, 1], c.deter[:, 1])


def test_reward_and_critic_heads_start_at_zero_and_world_model_learns():
    torch.manual_seed(0)
    config = WorldModelConfig(deter=64, hidden=32, units=32, lr=3e-3, warmup=1)
    model = WorldModel(obs_dim=3, action_dim=1, config=config)
    obs = torch.randn(4, 16, 3)  # one fixed batch: the model should fit it
    feat = torch.randn(4, 16, model.rssm.feat_dim)
    assert model.reward_predictor(feat).abs().max() == 0
    reward = obs[..., 0] * 3  # reward determined by the observation it arrives with
    batch = Batch(obs, torch.zeros(4, 16, 1), reward, torch.zeros(4, 16, dtype=torch.bool),
                  torch.zeros(4, 16, dtype=torch.bool))
    first, _ = model.update(batch)
    for _ in range(150):
        last, _ = model.update(batch)
    assert last["world/reward"] < 0.5 * first["world/reward"]
    assert last["world/rec"] < 0.5 * first["world/rec"]


def test_obs_weights_weigh_each_dimension_of_the_decoder_loss():
    torch.manual_seed(0)
    weights = [1.0, 0.0, 10.0]
    config = WorldModelConfig(deter=64, hidden=32, units=32, obs_weights=weights)
    model = WorldModel(obs_dim=3, action_dim=1, config=config)
    feat = torch.randn(2, 5, model.rssm.feat_dim)
    obs = 4 * torch.randn(2, 5, 3)
    predicted = model.decoder.net(feat).detach().numpy()
    squared = (predicted - np.sign(obs.numpy()) * np.log1p(np.abs(obs.numpy()))) ** 2
    loss = model.decoder.loss(feat, obs)
    np.testing.assert_allclose(loss.detach().numpy(), squared @ np.array(weights), rtol=1e-5)
    plain = Decoder(model.rssm.feat_dim, 3, 32, config.decoder_layers)
    plain.load_state_dict(model.decoder.state_dict())
    np.testing.assert_allclose(plain.loss(feat, obs).detach().numpy(), squared.sum(-1),
                               rtol=1e-5)
    # The weights come from the config, not the state dict: old agent files still load.
    assert not any("weights" in key for key in model.state_dict())
    with pytest.raises(ConfigError, match="world_model.obs_weights has 3 entries.*4 dim"):
        WorldModel(obs_dim=4, action_dim=1, config=config)
