"""The compiled training step computes what the eager one does, and never crashes training."""

import copy
import warnings

import numpy as np
import pytest
import torch

from naturaldreamer.agent import Agent
from naturaldreamer.compiled import CompiledLosses, compile_agent
from naturaldreamer.config import from_dict
from naturaldreamer.world_model import Batch

SMALL = {"world_model": {"deter": 32, "hidden": 16, "units": 16, "blocks": 4, "classes": 4,
                         "stoch": 4},
         "behavior": {"units": 16, "horizon": 3, "imagine_starts": 6},
         "replay": {"batch_size": 2, "batch_length": 5, "capacity": 400}}


def small_batch() -> Batch:
    rng = np.random.default_rng(0)
    is_last = np.zeros((2, 5), bool)
    is_last[0, 2] = True
    is_first = np.roll(is_last, 1, axis=1)
    is_first[:, 0] = True
    return Batch(obs=torch.tensor(rng.normal(size=(2, 5, 3)), dtype=torch.float32),
                 action=torch.tensor(rng.uniform(-1, 1, (2, 5, 2)), dtype=torch.float32),
                 reward=torch.tensor(rng.normal(size=(2, 5)), dtype=torch.float32),
                 is_first=torch.tensor(is_first), is_terminal=torch.tensor(is_last),
                 is_last=torch.tensor(is_last))


def losses_and_gradients(agent: Agent, batch: Batch):
    torch.manual_seed(5)
    actor_loss, other_loss, metrics = agent.losses(batch)
    agent.zero_grad(set_to_none=True)
    agent.behavior.backward(actor_loss, other_loss)
    grads = {name: p.grad.clone() for name, p in agent.named_parameters() if p.grad is not None}
    return {"actor": actor_loss.detach(), "other": other_loss.detach(), **metrics}, grads


def test_compiled_losses_and_gradients_match_eager():
    torch.manual_seed(0)
    eager = Agent(3, 2, from_dict(SMALL))
    with torch.no_grad():  # heads that start at exactly zero would hide gradient differences
        for head in (eager.behavior.critic, eager.world_model.reward_predictor):
            head.net[-1].weight.normal_(0.0, 0.02)
    compiled = copy.deepcopy(eager)
    compile_agent(compiled)
    batch = small_batch()
    # Compiled kernels draw their own random numbers unless told to use eager's.
    with torch._inductor.config.patch(fallback_random=True):
        expected, expected_grads = losses_and_gradients(eager, batch)
        got, got_grads = losses_and_gradients(compiled, batch)
    assert not compiled.losses.failed, "the small config must compile"
    for key, value in expected.items():
        if key in ("actor", "other") or key.endswith("loss"):
            torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-7, msg=key)
        else:  # diagnostics such as a mean advantage near 0 need an absolute tolerance
            torch.testing.assert_close(got[key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert got_grads.keys() == expected_grads.keys() and len(got_grads) > 40
    for name, grad in expected_grads.items():
        torch.testing.assert_close(got_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # The Moments EMAs (mutated inside the compiled function) moved the same way.
    torch.testing.assert_close(compiled.behavior.moments.high, eager.behavior.moments.high)


def test_a_compile_failure_warns_once_and_trains_eagerly():
    torch.manual_seed(0)
    agent = Agent(3, 2, from_dict(SMALL))
    expected, _ = losses_and_gradients(copy.deepcopy(agent), small_batch())
    wrapper = CompiledLosses(agent.losses, cuda=False)

    def broken(batch):
        raise RuntimeError("no C++ compiler found")

    wrapper.compiled = broken
    agent.losses = wrapper
    with pytest.warns(UserWarning, match="no C\\+\\+ compiler.*goes on eagerly"):
        got, _ = losses_and_gradients(agent, small_batch())
    assert wrapper.failed
    torch.testing.assert_close(got["actor"], expected["actor"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second update does not warn again
        agent.train_step({key: getattr(small_batch(), key).numpy() for key in
                          ("obs", "action", "reward", "is_first", "is_terminal", "is_last")})
