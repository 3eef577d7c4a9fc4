"""Rollouts: the sampled data, the worker that samples it (no Ray inside) and the Ray pool of workers.

Workers only sample. Each call gets a list of tasks, per-task policy parameters (leading task dimension) and a
seed per task; it runs all episodes of all its tasks as one vector with one task-batched policy forward per
time step and returns numpy arrays shaped [tasks, episodes, T, ...]. Everything random in a task's episodes
(action noise, reset seeds) comes from that task's own seed, so results do not depend on how tasks are spread
over workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from metarl.config import ConfigError
from metarl.families import BatchedEnv, TaskFamily, make_family
from metarl.memory import keep_freed_memory
from metarl.policies import Policy, from_numpy, make_policy


class SamplingError(Exception):
    """Sampling failed for good: an env raised (family, task and the worker's traceback say where), or a worker
    kept dying. Not retried: the trainer saves the last completed iteration and the run stops."""

    def __init__(self, summary: str, worker_traceback: str = ""):
        super().__init__(summary, worker_traceback)
        self.summary, self.worker_traceback = summary, worker_traceback

    def __str__(self) -> str:
        return f"{self.summary}\n{self.worker_traceback}".rstrip()


class EnvFailure(Exception):
    """An env of a vector raised (the cause); ``task`` is the task it was running."""

    def __init__(self, task: dict | None):
        super().__init__(task)
        self.task = task


def _short_traceback(exc: BaseException, lines: int = 16) -> str:
    """The last frames of ``exc``'s traceback (where the env raised), indented."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip().splitlines()
    kept = text[-lines:] if len(text) > lines else text
    return "\n".join("    " + line for line in kept) + "\n"


@dataclass
class Rollouts:
    """A batch of episodes: obs [n, E, T, d], actions [n, E, T(, a)], rewards and mask [n, E, T]."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    mask: np.ndarray
    success: np.ndarray | None = None  # [n, E], 1.0 where the episode ever reported success

    @property
    def num_tasks(self) -> int:
        return self.obs.shape[0]

    @property
    def env_steps(self) -> int:
        return int(self.mask.sum())

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, [n, E]."""
        return (self.rewards * self.mask).sum(-1)

    @staticmethod
    def concat(parts: Sequence[Rollouts]) -> Rollouts:
        """Join batches along the task axis (the pool's gather step)."""
        out = {}
        for f in fields(Rollouts):
            values = [getattr(p, f.name) for p in parts]
            out[f.name] = None if any(v is None for v in values) else np.concatenate(values, axis=0)
        return Rollouts(**out)


class GymBatchedEnv:
    """The BatchedEnv protocol over plain gymnasium envs of a family (for MuJoCo and user envs).

    Envs are created once, re-tasked in place with ``set_task`` and reused by calls of any size up to the largest
    seen (``reset`` with n seeds runs the first n). An env that terminates is not stepped again in that episode.
    The step loop is the sampler's hot path: bound methods, a list of live envs and arrays reused across steps
    (the returned arrays are valid until the next call).
    """

    def __init__(self, family: TaskFamily, num_envs: int):
        self._family = family
        self.envs: list = []
        self.num_envs = 0
        self._live: list[int] = []
        self._tasks: list[dict] = []
        self.reserve(num_envs)

    def reserve(self, n: int) -> None:
        """Make sure at least ``n`` envs exist."""
        if n <= len(self.envs):
            return
        self.envs += [self._family.make_env() for _ in range(n - len(self.envs))]
        self._steps = [env.step for env in self.envs]
        self._obs = np.zeros((n, *self._family.observation_space.shape), dtype=np.float32)
        self._rewards = np.zeros(n)
        self._done = np.zeros(n, dtype=bool)
        self._success = np.zeros(n, dtype=bool)

    def set_tasks(self, tasks: Sequence[dict]) -> None:
        self._tasks = list(tasks)
        for env, task in zip(self.envs, tasks):
            try:
                env.get_wrapper_attr("set_task")(task)
            except Exception as exc:
                raise EnvFailure(task) from exc

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        n = self.num_envs = len(seeds)
        self.reserve(n)
        self._done[:n] = False
        self._live = list(range(n))
        i = 0
        try:
            for i, seed in enumerate(seeds):
                self._obs[i] = self.envs[i].reset(seed=int(seed))[0]
        except Exception as exc:
            raise EnvFailure(self._tasks[i] if i < len(self._tasks) else None) from exc
        return self._obs[:n]

    def step(self, actions: np.ndarray):
        n = self.num_envs
        obs, rewards, done, success = self._obs[:n], self._rewards[:n], self._done[:n], self._success[:n]
        rewards[:] = 0.0
        success[:] = False
        finished = False
        i = 0
        try:
            for i in self._live:
                o, r, terminated, truncated, info = self._steps[i](actions[i])
                obs[i] = o
                rewards[i] = r
                if "success" in info:
                    success[i] = info["success"]
                if terminated or truncated:
                    done[i] = finished = True
        except Exception as exc:  # zero cost until an env raises; then say which task it was
            raise EnvFailure(self._tasks[i] if i < len(self._tasks) else None) from exc
        if finished:
            self._live = [i for i in self._live if not done[i]]
        return obs, rewards, done, {"success": success}


class RolloutWorker:
    """Samples episodes for (task, parameters) pairs. Plain Python; the pool wraps it in a Ray actor."""

    def __init__(self, family_spec: dict[str, Any], policy_spec: dict[str, Any], max_envs: int | None = None):
        torch.set_num_threads(1)
        keep_freed_memory()
        self.family = make_family(family_spec["name"], family_spec.get("version"), **family_spec.get("kwargs", {}))
        self.policy: Policy = make_policy(self.family.observation_space, self.family.action_space, **policy_spec)
        # Natively batched envs are cheap, so run everything at once; plain gymnasium envs (user families without
        # make_batched_env) are stepped one by one anyway, so 128 at a time keep startup and memory small and
        # amortise the policy forward.
        native = getattr(self.family, "make_batched_env", None) is not None
        # A family may cap it with a ``max_envs`` attribute (Meta-World: its envs are ~20 MB each; the batched
        # MuJoCo locomotion envs: 256).
        default = getattr(self.family, "max_envs", None) or (4096 if native else 128)
        self.max_envs = max_envs if max_envs is not None else default
        self._envs: dict[int, BatchedEnv] = {}
        self._spec = family_spec
        self._clip = None
        if not self.policy.discrete:
            space = self.family.action_space
            self._clip = (space.low.astype(np.float32), space.high.astype(np.float32))

    def _env(self, n: int) -> BatchedEnv:
        make_batched = getattr(self.family, "make_batched_env", None)
        if make_batched is not None:  # cheap to build: one per size
            if n not in self._envs:
                self._envs[n] = make_batched(n)
            return self._envs[n]
        if not self._envs:  # plain envs are expensive to build: one set, grown to the largest chunk
            self._envs[0] = GymBatchedEnv(self.family, n)
        self._envs[0].reserve(n)
        return self._envs[0]

    def sample(self, tasks: Sequence[dict], params: dict[str, np.ndarray], episodes: int,
               seeds: Sequence[int]) -> Rollouts:
        """Run ``episodes`` episodes of each task with its own parameters ``params[k][i]``. An env that raises
        ends the call with a ``SamplingError`` naming the family, the task and the env's traceback."""
        per_chunk = max(1, self.max_envs // episodes)
        parts = []
        for lo in range(0, len(tasks), per_chunk):
            hi = min(lo + per_chunk, len(tasks))
            chunk_params = {k: v[lo:hi] for k, v in params.items()}
            try:
                parts.append(self._sample_chunk(tasks[lo:hi], chunk_params, episodes, seeds[lo:hi]))
            except Exception as exc:
                raise self._failure(exc, tasks[lo:hi]) from None
        return parts[0] if len(parts) == 1 else Rollouts.concat(parts)

    def _failure(self, exc: Exception, tasks: Sequence[dict]) -> SamplingError:
        cause = exc.__cause__ if isinstance(exc, EnvFailure) and exc.__cause__ is not None else exc
        if isinstance(exc, EnvFailure) and exc.task is not None:
            where = f"on task {json.dumps(exc.task, default=str)}"
        else:  # a natively batched env: all of its tasks were stepping together
            where = f"on one of the tasks {json.dumps(list(tasks)[:4], default=str)[:300]}"
        family = f"{self.family.name!r} (version {getattr(self.family, 'version', None)})"
        message = (str(cause).strip().splitlines() or [""])[0][:300]
        what = "the env of family" if isinstance(exc, EnvFailure) else "sampling family"
        return SamplingError(f"{what} {family} raised {type(cause).__name__}: {message} {where}",
                             _short_traceback(cause))

    def raw_step_rate(self, steps: int = 5000, seed: int = 0) -> float:
        """Steps/s of one plain env of the family with random actions and no policy: the simulator's own speed,
        measured in this worker's process so that `metarl perf sampler` compares like with like."""
        env = self.family.make_env(self.family.sample_tasks(np.random.default_rng(seed), 1)[0])
        env.action_space.seed(seed)
        actions = [env.action_space.sample() for _ in range(steps)]
        env.reset(seed=seed)
        t0 = time.perf_counter()
        for a in actions:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        return steps / (time.perf_counter() - t0)

    def physics_step_rate(self, steps: int = 5000, seed: int = 0) -> float | None:
        """Steps/s of bare ``mj_step`` on the family's own model in this worker (None for non-MuJoCo families):
        the physical limit `metarl perf sampler` compares the sampler with."""
        from metarl.physics import physics_step_rate

        return physics_step_rate(self.family.make_env(), steps, seed, self.family.horizon)

    def sample_slice(self, tasks: Sequence[dict], params: dict[str, np.ndarray], lo: int, hi: int, episodes: int,
                     seeds: Sequence[int]) -> Rollouts:
        """``sample`` for tasks lo..hi of a parameter batch shared by all workers (read from the object store)."""
        return self.sample(tasks, {k: v[lo:hi] for k, v in params.items()}, episodes, seeds)

    @torch.inference_mode()
    def _sample_chunk(self, tasks: Sequence[dict], params: dict[str, np.ndarray], episodes: int,
                      seeds: Sequence[int]) -> Rollouts:
        n, E, T = len(tasks), episodes, self.family.horizon
        policy = self.policy
        rngs = [np.random.default_rng(int(s)) for s in seeds]
        reset_seeds = np.concatenate([rng.integers(2**31 - 1, size=E) for rng in rngs])
        # Noise for the whole horizon, drawn per task from that task's generator: [T, n, E, ...].
        draw = (lambda rng: rng.gumbel(size=(T, E, *policy.noise_shape()))) if policy.discrete else \
            (lambda rng: rng.standard_normal((T, E, *policy.noise_shape())))
        noise = torch.from_numpy(np.stack([draw(rng) for rng in rngs], axis=1).astype(np.float32))
        theta = from_numpy(params)

        env = self._env(n * E)
        env.set_tasks([task for task in tasks for _ in range(E)])
        obs = env.reset(reset_seeds)
        obs_buf = np.zeros((T, n * E, *obs.shape[1:]), dtype=np.float32)
        act_buf = np.zeros((T, n * E) if policy.discrete else (T, n * E, policy.out_dim),
                           dtype=np.int64 if policy.discrete else np.float32)
        rew_buf = np.zeros((T, n * E), dtype=np.float32)
        mask_buf = np.zeros((T, n * E), dtype=np.float32)
        success = np.zeros(n * E, dtype=bool)
        alive = np.ones(n * E, dtype=bool)
        for t in range(T):
            obs_buf[t] = obs
            dist = policy.distribution(theta, torch.from_numpy(obs_buf[t]).view(n, E, -1))
            actions = policy.act(dist, noise[t]).reshape(n * E, *act_buf.shape[2:]).numpy()
            act_buf[t] = actions
            if self._clip is not None:
                actions = np.clip(actions, *self._clip)
            obs, rewards, terminated, info = env.step(actions)
            mask_buf[t] = alive
            rew_buf[t] = rewards * alive
            if "success" in info:
                success |= info["success"] & alive
            alive &= ~np.asarray(terminated, dtype=bool)
            if not alive.any():
                break

        def shaped(buf: np.ndarray) -> np.ndarray:
            return np.ascontiguousarray(np.moveaxis(buf, 0, 1).reshape(n, E, T, *buf.shape[2:]))

        return Rollouts(obs=shaped(obs_buf), actions=shaped(act_buf), rewards=shaped(rew_buf),
                        mask=shaped(mask_buf), success=success.reshape(n, E).astype(np.float32))


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal [lo, hi) slices of range(n)."""
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


class RolloutPool:
    """Ray actors that sample in parallel; ``num_workers=0`` samples in this process (debugging, tests).

    Parameters are put in the object store once per call and each actor reads its slice of tasks. Results are
    gathered with ``ray.wait`` as they finish; an actor that dies is restarted and its share resubmitted.
    """

    def __init__(self, family_spec: dict[str, Any], policy_spec: dict[str, Any], num_workers: int,
                 max_restarts: int = 3, cpus_per_worker: float = 1.0):
        self.num_workers = num_workers
        self.worker_restarts = 0
        self._spec = (family_spec, policy_spec)
        self._max_restarts = max_restarts
        if num_workers == 0:
            self._local = RolloutWorker(family_spec, policy_spec)
            self._actors: list = []
        else:
            import ray

            self._remote_cls = ray.remote(num_cpus=cpus_per_worker)(RolloutWorker)
            self._actors = [self._new_actor() for _ in range(num_workers)]

    def _new_actor(self):
        return self._remote_cls.remote(*self._spec)

    def sample(self, tasks: Sequence[dict], params: dict[str, np.ndarray], episodes: int,
               seeds: Sequence[int]) -> Rollouts:
        if not self._actors:
            return self._local.sample(tasks, params, episodes, seeds)
        import ray

        params_ref = ray.put(params)
        slices = _split(len(tasks), len(self._actors))
        pending = {}
        for w, (lo, hi) in enumerate(slices):
            pending[self._submit(w, tasks, params_ref, episodes, seeds, lo, hi)] = (w, lo, hi)
        results: dict[int, Rollouts] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            w, lo, hi = pending.pop(ready[0])
            try:
                results[lo] = ray.get(ready[0])
            except ray.exceptions.RayActorError as exc:
                reason = (str(exc).strip().splitlines() or ["no reason given"])[0][:200]
                if self.worker_restarts >= self._max_restarts * len(self._actors):
                    raise SamplingError(f"rollout worker {w} died ({reason}) after {self.worker_restarts} restarts "
                                        "in this run; giving up") from None
                self.worker_restarts += 1
                self._actors[w] = self._new_actor()
                print(f"metarl: rollout worker {w} died ({reason}); replaced it, re-sampling its tasks {lo}..{hi - 1} "
                      f"with the same seeds (worker restarts: {self.worker_restarts})", file=sys.stderr, flush=True)
                pending[self._submit(w, tasks, params_ref, episodes, seeds, lo, hi)] = (w, lo, hi)
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, SamplingError):
                    raise SamplingError(f"rollout worker {w}: {cause.summary}", cause.worker_traceback) from None
                raise SamplingError(f"rollout worker {w} failed: {type(cause).__name__}",
                                    str(exc)) from None
        return Rollouts.concat([results[lo] for lo in sorted(results)])

    def raw_step_rates(self, steps: int = 5000, seed: int = 0) -> list[float]:
        """Each worker's raw single-env step rate, measured at the same time in every worker."""
        if not self._actors:
            return [self._local.raw_step_rate(steps, seed)]
        import ray

        return ray.get([actor.raw_step_rate.remote(steps, seed) for actor in self._actors])

    def physics_step_rates(self, steps: int = 5000, seed: int = 0) -> list[float | None]:
        """Each worker's bare-physics step rate (``RolloutWorker.physics_step_rate``), measured at the same time."""
        if not self._actors:
            return [self._local.physics_step_rate(steps, seed)]
        import ray

        return ray.get([actor.physics_step_rate.remote(steps, seed) for actor in self._actors])

    def _submit(self, w, tasks, params_ref, episodes, seeds, lo, hi):
        return self._actors[w].sample_slice.remote(tasks[lo:hi], params_ref, lo, hi, episodes, list(seeds[lo:hi]))

    def close(self) -> None:
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors = []


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a plain ``host:port`` nobody listens on (Ray itself retries for minutes before giving up)."""
    host, sep, port = address.rpartition(":")
    if not sep or "://" in address or not port.isdigit():
        return  # "auto", "ray://..." and friends: leave them to Ray
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(f"ray.address / --address / RAY_ADDRESS {address!r}: no Ray cluster answers there ({exc}); "
                          "start one with `ray start --head` or omit it to use an embedded local Ray") from None


@contextlib.contextmanager
def _stderr_into(file) -> Iterator[None]:
    """Send file descriptor 2 (Python's and C++'s stderr) into ``file`` for the duration of the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _join_error(address: str, exc: Exception, ray_log: str) -> str:
    where = f"ray.address / --address / RAY_ADDRESS {address!r}"
    if "InvalidAuthToken" in ray_log or "Unauthenticated" in ray_log:
        mode = os.environ.get("RAY_AUTH_MODE")
        return (f"{where}: the cluster refused this driver (InvalidAuthToken): it uses token authentication "
                f"(Ray's default for `ray start`); set RAY_AUTH_MODE=token (now {mode or 'unset'}) and put the "
                "cluster's token in ~/.ray/auth_token (the head writes its own there)")
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{where}: cannot join a Ray cluster there ({first_line}); omit it to start an embedded local Ray"


def init_ray(address: str | None, num_cpus: int | None) -> None:
    """Join ``address`` (or RAY_ADDRESS) if given, else start an embedded local Ray with no public dashboard."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _check_reachable(address)
        with tempfile.TemporaryFile("w+") as log:
            try:
                with _stderr_into(log):  # Ray's C++ client logs every failed attempt; keep them off the console
                    ray.init(address=address, log_to_driver=False)
            except Exception as exc:  # Ray raises ConnectionError, TimeoutError or RuntimeError here
                log.seek(0)
                raise ConfigError(_join_error(address, exc, log.read())) from None
            log.seek(0)
            sys.stderr.write(log.read())  # Ray's "Connected to Ray cluster" lines
    else:
        # Ray starts workers niced (15) by default; here the rollout actors are the main work of the machine.
        # address="local": always a new embedded instance, even if `ray start` left a cluster on this machine.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
