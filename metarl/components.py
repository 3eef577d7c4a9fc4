"""The parts a run is made of, built one way from a config: family → policy → learner → rollout pool.

`metarl train`, `metarl eval` and `metarl perf iteration` all build through here, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from metarl import seeding
from metarl.config import Config
from metarl.families import TaskFamily, make_family
from metarl.learner import Learner, resolve_device
from metarl.policies import Params, Policy, make_policy
from metarl.rollout import RolloutPool, init_ray


@dataclass
class Components:
    config: Config  # with the family version actually used (the family's default when the config left it null)
    family: TaskFamily
    policy: Policy
    learner: Learner
    pool: RolloutPool

    def close(self) -> None:
        if self.pool.num_workers:
            self.pool.close()


def build(config: Config, theta: Params | None = None) -> Components:
    """θ is ``theta`` (a checkpoint's) or freshly initialised from the config's seed. Ray is started (or joined,
    ``ray.address``) before the pool, so a wrong address fails here, before a caller writes anything."""
    family = make_family(config.family.name, config.family.version, **config.family.kwargs)
    config = replace(config, family=replace(config.family, version=family.version))
    policy = make_policy(family.observation_space, family.action_space, **config.policy.spec())
    if theta is None:
        theta = policy.init_params(torch.Generator().manual_seed(seeding.derive_seed(config.seed, seeding.LEARNER)))
    learner = Learner(policy, theta, config.algo, resolve_device(config.learner.device), config.learner.task_chunk)
    if config.sampler.num_workers > 0:
        init_ray(config.ray.address, config.ray.num_cpus)
    pool = RolloutPool(config.family.spec(), config.policy.spec(), config.sampler.num_workers)
    return Components(config, family, policy, learner, pool)
