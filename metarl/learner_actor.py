"""``learner.placement: actor``: the Learner runs in a Ray actor — on a GPU node of a cluster whose head (where the
driver runs) has none — behind a proxy with the Learner's interface, so the trainer and the meta-test do not know
where it lives. Rollout batches stay in the actor (the proxy hands out handles); θ and φ come back as CPU tensors,
which the driver ships to the rollout workers through the object store as before."""

from __future__ import annotations

import itertools
from typing import Any

import torch

from metarl.batch import PolicyBatch
from metarl.config import AlgoConfig
from metarl.learner import Learner, resolve_device
from metarl.policies import Params, Policy

_METHODS = frozenset(name for name in dir(Learner) if not name.startswith("_") and callable(getattr(Learner, name)))


class BatchHandle:
    """A PolicyBatch that lives in the learner actor; dropping the handle frees it there (with the next call)."""

    def __init__(self, key: int, released: list[int]):
        self.key, self._released = key, released

    def __del__(self) -> None:
        self._released.append(self.key)


class _Ref:
    """What a handle becomes on its way to the actor."""

    def __init__(self, key: int):
        self.key = key


class LearnerActor:
    """Holds the real Learner; runs the proxy's calls; keeps batches on its device and returns CPU tensors."""

    def __init__(self, policy: Policy, theta: Params, algo: AlgoConfig, device: str, task_chunk: int | None):
        self.learner = Learner(policy, theta, algo, resolve_device(device), task_chunk)
        self.batches: dict[int, PolicyBatch] = {}
        self.keys = itertools.count()

    def call(self, name: str, args: tuple, kwargs: dict, released: list[int]) -> Any:
        for key in released:
            self.batches.pop(key, None)
        result = getattr(self.learner, name)(*self._resolve(args), **self._resolve(kwargs))
        return self._export(result)

    def get(self, name: str) -> Any:
        return self._export(getattr(self.learner, name))

    def set(self, name: str, value: Any) -> None:
        setattr(self.learner, name, value)

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, _Ref):
            return self.batches[value.key]
        if isinstance(value, (list, tuple)):
            return type(value)(self._resolve(v) for v in value)
        if isinstance(value, dict):
            return {k: self._resolve(v) for k, v in value.items()}
        return value

    def _export(self, value: Any) -> Any:
        if isinstance(value, PolicyBatch):
            key = next(self.keys)
            self.batches[key] = value
            return _Ref(key)
        if isinstance(value, torch.Tensor):
            return value.detach().cpu()
        if isinstance(value, (list, tuple)):
            return type(value)(self._export(v) for v in value)
        if isinstance(value, dict):
            return {k: self._export(v) for k, v in value.items()}
        return value


class RemoteLearner:
    """The Learner's interface, forwarded to a ``LearnerActor``: methods are calls, other attributes are read and
    written in the actor. Needs a running Ray (``init_ray``)."""

    def __init__(self, policy: Policy, theta: Params, algo: AlgoConfig, device: str, task_chunk: int | None,
                 num_gpus: float | None):
        import ray

        if num_gpus is None:
            num_gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        actor = ray.remote(num_cpus=0, num_gpus=num_gpus)(LearnerActor)
        self.__dict__.update(policy=policy, num_gpus=num_gpus, _released=[],
                             _actor=actor.remote(policy, theta, algo, device, task_chunk))

    def _imported(self, value: Any) -> Any:
        if isinstance(value, _Ref):
            return BatchHandle(value.key, self._released)
        if isinstance(value, (list, tuple)):
            return type(value)(self._imported(v) for v in value)
        if isinstance(value, dict):
            return {k: self._imported(v) for k, v in value.items()}
        return value

    def _exported(self, value: Any) -> Any:
        if isinstance(value, BatchHandle):
            return _Ref(value.key)
        if isinstance(value, (list, tuple)):
            return type(value)(self._exported(v) for v in value)
        if isinstance(value, dict):
            return {k: self._exported(v) for k, v in value.items()}
        return value

    def __getattr__(self, name: str) -> Any:  # only for what this proxy does not hold itself
        import ray

        if name.startswith("_"):
            raise AttributeError(name)
        if name in _METHODS:
            def method(*args: Any, **kwargs: Any) -> Any:
                released, self._released[:] = list(self._released), []
                ref = self._actor.call.remote(name, self._exported(args), self._exported(kwargs), released)
                return self._imported(ray.get(ref))
            return method
        return self._imported(ray.get(self._actor.get.remote(name)))

    def __setattr__(self, name: str, value: Any) -> None:
        import ray

        ray.get(self._actor.set.remote(name, value))

    def close(self) -> None:
        import ray

        ray.kill(self._actor)
