"""examples/paper_pretrained: the MAML authors' pretrained cheetahs train on one task (the first draw under their
seed) and meta-test on the family's usual test distribution, through the plug-in API (``module:Class``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from metarl.families import make_family

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "paper_pretrained"


@pytest.fixture
def one_task(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import one_task_cheetah

    yield one_task_cheetah
    sys.modules.pop("one_task_cheetah", None)


@pytest.mark.parametrize("cls, parent, key", [("OneVelocityCheetah", "halfcheetah-vel", "velocity"),
                                              ("OneDirectionCheetah", "halfcheetah-dir", "direction")])
def test_trains_on_one_task_and_meta_tests_on_the_family_distribution(one_task, cls, parent, key):
    family = make_family(f"one_task_cheetah:{cls}")
    assert family.version == "finn2017"
    assert len({task[key] for task in family.sample_tasks(np.random.default_rng(0), 50)}) == 1
    test = family.sample_test_tasks(np.random.default_rng(1), 40)
    assert test == make_family(parent).sample_tasks(np.random.default_rng(1), 40)
    assert len({task[key] for task in test}) > 1


def test_the_tasks_are_the_first_draws_under_the_authors_seed(one_task):
    legacy = np.random.RandomState(1)  # their np.random.seed(1), before the env is built
    assert legacy.uniform(0.0, 2.0) == one_task.VELOCITY  # HalfCheetahEnvRand: the reset in MujocoEnv.__init__
    legacy.normal(size=9)  # HalfCheetahEnvRandDirec: that reset's qpos noise,
    legacy.normal(size=9)  # its qvel noise, then the draw of its own __init__'s reset
    assert (1.0 if legacy.uniform(0.0, 2.0) >= 1.0 else -1.0) == one_task.DIRECTION
