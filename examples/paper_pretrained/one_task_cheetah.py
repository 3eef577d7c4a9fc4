"""The MAML paper's pretrained HalfCheetah baselines as the authors' released code trained them: on one task.

Their pretrained runs (``maml_examples/cluster_trpo_cheetah.py``, TRPO without reset arguments) step
``HalfCheetahEnvRand`` / ``HalfCheetahEnvRandDirec``, whose ``reset`` draws a goal only while none is set
(``elif self._goal_vel is None``); ``MujocoEnv.__init__`` resets once at construction, so every later episode of the
run reuses that first draw. Under their seed 1 (``np.random.seed(1)`` before the env is built) the first draws give
velocity 0.834 for the velocity run and, after the reset noise, 1.066, i.e. direction +1, for the direction run.

These families train on that one task and meta-test on the family's usual test distribution (``sample_test_tasks``),
so ``metarl bench --baselines pretrained`` with ``family.name`` set to one of them trains the paper's pretrained
baselines as the authors' code did: TRPO (MAML-TRPO's outer step with no inner step) on 100 episodes of the one
task per iteration, one linear baseline and one advantage standardisation over all of them, max-KL 0.01; the
velocity run evaluated at iteration 475 with step sizes 0.02 then 0.01, the direction run after 1000 iterations with
0.2 then 0.1 (docs/results.md)::

    PYTHONPATH=examples/paper_pretrained metarl bench --config configs/paper/maml_halfcheetah_vel.yaml \
        --baselines pretrained --seeds 1 --iterations 475 --set family.name=one_task_cheetah:OneVelocityCheetah \
        --set train.meta_batch_size=1 --set sampler.episodes_per_task=100 --set algo.max_kl=0.01 \
        --set 'eval.inner_lr=[0.02,0.01]' --set train.eval_every=125
    PYTHONPATH=examples/paper_pretrained metarl bench --config configs/paper/maml_halfcheetah_dir.yaml \
        --baselines pretrained --seeds 1 --iterations 1000 --set family.name=one_task_cheetah:OneDirectionCheetah \
        --set train.meta_batch_size=1 --set sampler.episodes_per_task=100 --set algo.max_kl=0.01 \
        --set 'eval.inner_lr=[0.2,0.1]' --set train.eval_every=250
"""

from __future__ import annotations

import numpy as np
from metarl.envs.locomotion import HalfCheetahDirFamily, HalfCheetahVelFamily

VELOCITY = 0.834044009405148  # np.random.seed(1); np.random.uniform(0.0, 2.0)
DIRECTION = 1.0  # the direction run's second draw, 1.066 >= 1.0


class OneVelocityCheetah(HalfCheetahVelFamily):
    """halfcheetah-vel that trains at one velocity."""

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        return [{"velocity": VELOCITY}] * n

    def sample_test_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        return HalfCheetahVelFamily.sample_tasks(self, rng, n)


class OneDirectionCheetah(HalfCheetahDirFamily):
    """halfcheetah-dir that trains in one direction."""

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        return [{"direction": DIRECTION}] * n

    def sample_test_tasks(self, rng: np.random.Generator, n: int) -> list[dict]:
        return HalfCheetahDirFamily.sample_tasks(self, rng, n)
