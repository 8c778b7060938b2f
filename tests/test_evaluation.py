"""Win-rate intervals, evaluation records and recorded games."""

import math

import numpy as np
import pytest

from naturaldreamer.agent import Agent, Policy
from naturaldreamer.config import from_dict
from naturaldreamer.evaluation import hockey_record, record_game, save_gif, wilson_interval
from naturaldreamer.train import JUDGED_GAME, evaluate

TINY = {"env": {"name": "hockey"},
        "world_model": {"deter": 32, "hidden": 16, "units": 16, "blocks": 4, "stoch": 4},
        "behavior": {"units": 16}}


def test_wilson_interval_textbook_values():
    low, high = wilson_interval(5, 10)
    assert abs(low - 0.2366) < 1e-4 and abs(high - 0.7634) < 1e-4
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and abs(high - 0.2775) < 1e-4
    # and it agrees with the normal approximation for large samples
    low, high = wilson_interval(5000, 10000)
    assert abs(high - 0.5 - 1.96 * math.sqrt(0.25 / 10000)) < 1e-4


def test_hockey_record_counts_every_game():
    agent = Agent(18, 4, from_dict(TINY))
    record = hockey_record(agent, "weak", games=6, seed=3)
    assert record.games == 6 and 0 < record.mean_length <= 251
    again = hockey_record(agent, "weak", games=6, seed=3)
    assert (record.wins, record.draws, record.losses) == (again.wins, again.draws, again.losses)
    assert "95 % CI" in str(record)
    with pytest.raises(ValueError, match="not on hockey"):
        hockey_record(Agent(3, 1, from_dict({**TINY, "env": {"name": "Pendulum-v1"}})),
                      "weak", games=1)


def test_record_game_frames_and_gif(tmp_path):
    policy = Policy(Agent(18, 4, from_dict(TINY)))
    frames, winner = record_game(policy, "strong", seed=1, every=10)
    assert winner in (-1, 0, 1) and frames[0].shape == (480, 600, 3)
    assert frames[0].dtype == np.uint8 and len(frames) >= 2
    save_gif(frames, tmp_path / "game.gif")
    assert (tmp_path / "game.gif").read_bytes()[:6] in (b"GIF87a", b"GIF89a")


def test_an_agent_trained_with_the_clock_is_judged_with_it():
    """19 observations in, from evaluation's plain games too; the shaping stays out."""
    config = from_dict({**TINY, "env": {"name": "hockey",
                                        "options": {"clock": True, "potential": 0.1}}})
    agent = Agent(19, 4, config)
    assert hockey_record(agent, "weak", games=2, seed=3).games == 2
    judged = evaluate(agent, config.env, 4, False, seed=3, opponent="weak", **JUDGED_GAME)
    shaped = evaluate(agent, config.env, 4, False, seed=3, opponent="weak", mode="normal")
    assert [r["return"] for r in judged] == [10.0 * r["winner"] for r in judged]
    assert [r["return"] for r in shaped] != [10.0 * r["winner"] for r in shaped]
    frames, _ = record_game(Policy(agent), "weak", seed=1, every=50)
    assert len(frames) >= 2
    with pytest.raises(ValueError, match="trained with the clock"):
        Policy(agent).act(np.zeros(18))
