"""The parts a run is made of, built one way from a config: family → policy → learner → rollout pool.

`metarl train`, `metarl eval` and `metarl perf iteration` all build through here, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from metarl import seeding
from metarl.checkpoint import CheckpointError
from metarl.config import Config
from metarl.families import TaskFamily, make_family
from metarl.learner import Learner, resolve_device
from metarl.learner_actor import RemoteLearner
from metarl.policies import Params, Policy, make_policy
from metarl.rollout import RolloutPool, init_ray


@dataclass
class Components:
    config: Config  # with the family version actually used (the family's default when the config left it null)
    family: TaskFamily
    policy: Policy
    learner: Learner | RemoteLearner
    pool: RolloutPool

    def close(self) -> None:
        if self.pool.num_workers:
            self.pool.close()
        if isinstance(self.learner, RemoteLearner):
            self.learner.close()


def build(config: Config, theta: Params | None = None, theta_source: Path | None = None,
          family: TaskFamily | None = None) -> Components:
    """θ is ``theta`` (a checkpoint's, read from ``theta_source``) or freshly initialised from the config's seed.
    ``family``: the config's family already made by the caller (making Meta-World's takes tens of seconds).
    Ray is started (or joined, ``ray.address``) before the pool, so a wrong address fails here, before a caller
    writes anything."""
    if family is None:
        family = make_family(config.family.name, config.family.version, **config.family.kwargs)
    config = replace(config, family=replace(config.family, version=family.version))
    policy = make_policy(family.observation_space, family.action_space, **config.policy.spec())
    fresh = policy.init_params(torch.Generator().manual_seed(seeding.derive_seed(config.seed, seeding.LEARNER)))
    if theta is None:
        theta = fresh
    else:
        _check_theta(theta, fresh, theta_source)
    on_actor = config.learner.placement == "actor"
    # On the driver a device it lacks (cuda without a GPU) fails before Ray starts; an actor resolves it where it runs.
    device = None if on_actor else resolve_device(config.learner.device)
    if config.sampler.num_workers > 0 or on_actor:
        init_ray(config.ray.address, config.ray.num_cpus)
    if device is None:
        learner = RemoteLearner(policy, theta, config.algo, config.learner.device, config.learner.task_chunk,
                                config.learner.num_gpus)
    else:
        learner = Learner(policy, theta, config.algo, device, config.learner.task_chunk)
    pool = RolloutPool(config.family.spec(), config.policy.spec(), config.sampler.num_workers,
                       cpus_per_worker=config.sampler.cpus_per_worker)
    return Components(config, family, policy, learner, pool)


def _check_theta(theta: Params, fresh: Params, source: Path | None) -> None:
    """A checkpoint's θ must fit the policy the config builds (a changed policy.* or family is refused by name)."""
    where = f"checkpoint {source}" if source is not None else "the given parameters"
    for name, value in fresh.items():
        got = theta.get(name)
        if not isinstance(got, torch.Tensor) or got.shape != value.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else "nothing"
            raise CheckpointError(f"{where} does not fit this config's policy: parameter {name!r} has {shape}, the "
                                  f"policy needs {tuple(value.shape)} (were policy.* or family.* changed?)")
