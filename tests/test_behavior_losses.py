"""The behaviour losses of a whole update: the replay value loss against hand-worked and numpy
values, the policy reading sg(dream), and gradients that reach exactly the intended networks."""

import numpy as np
import pytest
import torch

from naturaldreamer.agent import Agent
from naturaldreamer.behavior import replay_returns
from naturaldreamer.config import from_dict
from naturaldreamer.distributions import twohot_loss
from naturaldreamer.world_model import Batch

TINY = {"world_model": {"deter": 32, "hidden": 16, "units": 16, "blocks": 4, "classes": 4,
                        "stoch": 4},
        "behavior": {"units": 16, "horizon": 3},
        "replay": {"batch_size": 2, "batch_length": 6, "capacity": 400}}

# A hand-built replayed sequence: a goal (+10, terminal) on arriving in step 2, a new episode
# from step 3, and a time-out (last, not terminal) at step 5.
REWARD = [0.0, 1.0, 10.0, 0.0, 2.0, 3.0]
IS_TERMINAL = [0, 0, 1, 0, 0, 0]
IS_LAST = [0, 0, 1, 0, 0, 1]
BOOT = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def numpy_replay_returns(reward, boot, is_last, is_terminal, discount, lam):
    """The official recursion written as a plain loop over one sequence."""
    T = len(reward)
    returns = np.zeros(T)
    returns[T - 1] = boot[T - 1]
    for t in range(T - 2, -1, -1):
        live = discount * (1 - is_terminal[t + 1])
        cont = lam * (1 - is_last[t + 1])
        returns[t] = reward[t + 1] + live * ((1 - cont) * boot[t + 1] + cont * returns[t + 1])
    return returns[:-1]


def test_replay_returns_hand_worked_goal_new_episode_and_time_out():
    got = replay_returns(*(torch.tensor([x], dtype=torch.float64)
                           for x in (REWARD, BOOT, IS_LAST, IS_TERMINAL)), 0.9, 0.5)
    # By hand, γ = 0.9, λ = 0.5, backwards from R_5 = boot_5 = 6:
    # R_4 = 3 + 0.9·(1·6)                      (step 5 is a time-out: bootstrap only) = 8.4
    # R_3 = 2 + 0.9·(0.5·5 + 0.5·8.4)                                              = 8.03
    # R_2 = 0 + 0.9·(0.5·4 + 0.5·8.03)      (read from the next episode; weight 0) = 5.4135
    # R_1 = 10 + 0·(…)                      (the goal is terminal: exactly its reward) = 10
    # R_0 = 1 + 0.9·(0.5·2 + 0.5·10)                                               = 6.4
    np.testing.assert_allclose(got.numpy()[0], [6.4, 10.0, 5.4135, 8.03, 8.4], rtol=1e-12)


def test_replay_returns_match_numpy_on_random_sequences():
    rng = np.random.default_rng(0)
    reward, boot = rng.normal(size=(5, 9)), rng.normal(size=(5, 9))
    is_last = rng.random((5, 9)) < 0.2
    is_terminal = is_last & (rng.random((5, 9)) < 0.5)
    got = replay_returns(*(torch.tensor(x) for x in (reward, boot, is_last, is_terminal)),
                         0.997, 0.95).numpy()
    for row in range(5):
        np.testing.assert_allclose(got[row], numpy_replay_returns(
            reward[row], boot[row], is_last[row], is_terminal[row], 0.997, 0.95), rtol=1e-12)


def tiny_agent(**behavior) -> Agent:
    """A tiny agent in float64 whose critic and reward predictor do not start at exactly zero
    (their output layers do, which would block every gradient through them)."""
    config = from_dict({**TINY, "behavior": {**TINY["behavior"], **behavior}})
    torch.manual_seed(0)
    agent = Agent(3, 2, config).double()
    with torch.no_grad():
        for head in (agent.behavior.critic, agent.world_model.reward_predictor):
            head.net[-1].weight.normal_(0.0, 0.5)
    return agent


def tiny_batch(seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    flags = {name: torch.tensor([value, value]).bool()
             for name, value in (("is_terminal", IS_TERMINAL), ("is_last", IS_LAST))}
    return Batch(obs=torch.tensor(rng.normal(size=(2, 6, 3))),
                 action=torch.tensor(rng.uniform(-1, 1, (2, 6, 2))),
                 reward=torch.tensor([REWARD, REWARD], dtype=torch.float64),
                 is_first=torch.tensor([[1, 0, 0, 1, 0, 0]] * 2).bool(), **flags)


@pytest.mark.parametrize("imagine_starts", [0, 5])
def test_replay_value_loss_bootstraps_from_dreams_else_the_critic(imagine_starts):
    agent = tiny_agent(imagine_starts=imagine_starts)
    behavior, batch = agent.behavior, tiny_batch()
    _, _, posterior = agent.world_model.loss(batch)
    losses = behavior.loss(agent.world_model, posterior.detach(), batch.is_terminal)
    feat = posterior.feat()
    loss, _ = behavior.replay_value_loss(feat, batch.reward, batch.is_last, batch.is_terminal,
                                         losses)

    # Independently: boot_t is the dream's start return where a dream starts, else the critic.
    critic_values = behavior.critic(feat).detach().numpy().reshape(-1)
    boot = critic_values.copy()
    starts = (np.arange(12) if losses.starts is None else losses.starts.numpy())
    boot[starts] = losses.start_returns.numpy()
    if imagine_starts:
        assert len(starts) == 5 and not np.allclose(boot, critic_values)
    boot = boot.reshape(2, 6)
    c = behavior.config
    expected = 0.0
    for row in range(2):
        returns = numpy_replay_returns(REWARD, boot[row], IS_LAST, IS_TERMINAL, c.discount,
                                       c.lam)
        logits = behavior.critic.net(feat[row, :-1])
        slow = behavior.slow_critic(feat[row, :-1]).detach()
        terms = (twohot_loss(logits, torch.tensor(returns), behavior.critic.bins)
                 + c.slowreg_scale * twohot_loss(logits, slow, behavior.critic.bins))
        expected += float((torch.tensor(1.0 - np.array(IS_LAST[:-1])) * terms).sum().detach())
    np.testing.assert_allclose(float(loss.detach()), expected / (2 * 5), rtol=1e-10)


def test_replay_value_loss_reaches_the_world_model_and_the_critic():
    with_repval, without = tiny_agent(), tiny_agent(repval_scale=0.0)
    for agent in (with_repval, without):
        torch.manual_seed(1)
        actor_loss, other_loss, _ = agent.losses(tiny_batch())
        agent.zero_grad()
        agent.behavior.backward(actor_loss, other_loss)
    for module in ("world_model.encoder", "world_model.rssm", "behavior.critic"):
        a = with_repval.get_submodule(module).parameters()
        b = without.get_submodule(module).parameters()
        assert any(not torch.allclose(x.grad, y.grad) for x, y in zip(a, b)), module
    for x, y in zip(with_repval.behavior.actor.parameters(),
                    without.behavior.actor.parameters()):
        torch.testing.assert_close(x.grad, y.grad)  # the actor's gradient does not change


@pytest.mark.parametrize("actor_grad", ["reinforce", "dynamics"])
def test_each_network_gets_exactly_its_own_losses_gradient(actor_grad):
    agent = tiny_agent(actor_grad=actor_grad)
    torch.manual_seed(2)
    actor_loss, other_loss, _ = agent.losses(tiny_batch())
    actor_params = list(agent.behavior.actor.parameters())
    others = [p for name, p in agent.named_parameters() if not name.startswith("behavior.actor")
              and p.requires_grad]
    expected_actor = torch.autograd.grad(actor_loss, actor_params, retain_graph=True)
    expected_others = torch.autograd.grad(other_loss, others, retain_graph=True,
                                          allow_unused=True)
    agent.zero_grad()
    agent.behavior.backward(actor_loss, other_loss)
    for param, grad in zip(actor_params, expected_actor):
        torch.testing.assert_close(param.grad, grad)
    for param, grad in zip(others, expected_others):
        torch.testing.assert_close(param.grad, torch.zeros_like(param) if grad is None else grad)


def test_entropy_bonus_through_the_dynamics_gives_no_gradient_to_earlier_actions():
    """With backprop through the dynamics the actor's distribution reads sg(dream): the entropy
    term alone (actor loss at η minus the loss at η = 0, same dream) sends no gradient into the
    dream's states, so none to the earlier actions that made them. Read off the undetached
    dream instead, it would."""
    batch = tiny_batch()
    grads = {}
    for scale in (0.0, 1.0):
        agent = tiny_agent(actor_grad="dynamics", entropy_scale=scale)
        _, _, posterior = agent.world_model.loss(batch)
        torch.manual_seed(3)
        losses = agent.behavior.loss(agent.world_model, posterior.detach(), batch.is_terminal)
        grads[scale] = torch.autograd.grad(losses.actor, losses.dream.feat,
                                           retain_graph=True)[0]
        dream = losses.dream
    assert grads[0.0].abs().max() > 0  # the objective itself does flow through the dream
    torch.testing.assert_close(grads[1.0], grads[0.0], rtol=0, atol=1e-12)
    # The mistake the fix removes: the same entropy on the undetached features.
    wrong = agent.behavior.actor(dream.feat[:, :-1]).gaussian_entropy().mean()
    leak = torch.autograd.grad(wrong, dream.feat)[0]
    assert leak.abs().max() > 1e-6
