"""The learner: owns θ on its device, turns rollouts into batches, adapts per task, takes the outer step."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from metarl.adaptation import PolicyBatch, adapt_steps
from metarl.algorithms.curvature import MetaCurvature
from metarl.algorithms.maml_trpo import MetaObjective, TRPOSettings, trpo_step
from metarl.config import AlgoConfig, ConfigError
from metarl.memory import keep_freed_memory
from metarl.policies import Params, Policy, expand
from metarl.returns import advantages
from metarl.rollout import Rollouts


def resolve_device(name: str) -> torch.device:
    """``auto`` = the first CUDA device when one is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config key 'learner.device' is {name!r} but CUDA is not available here; use auto or cpu")
    return torch.device(name)


# On a CPU the outer update is bound by memory bandwidth, not by per-operation overhead: activations of a whole
# meta-batch ([tasks, episodes × T, hidden] float32, 10-20 MB) stream through RAM on every elementwise op of every
# Hessian-vector product. Blocks of tasks whose activations fit in L2 cache are faster: 72-73 ms against 77-78 ms
# per product of the 2D-navigation update (docs/performance.md); a GPU takes the whole meta-batch at once.
CPU_BLOCK_BYTES = 2 * 1024 * 1024


def auto_task_chunk(device: torch.device, samples_per_task: int, widest_layer: int) -> int:
    """Tasks per block for the outer objective: 0 (all at once) on CUDA, else as many as fit CPU_BLOCK_BYTES."""
    if device.type == "cuda":
        return 0
    return max(1, CPU_BLOCK_BYTES // (4 * samples_per_task * widest_layer))


class Learner:
    """Holds the meta-parameters θ; every computation is batched over the tasks of a meta-batch."""

    def __init__(self, policy: Policy, theta: Params, algo: AlgoConfig, device: torch.device,
                 task_chunk: int | None = None):
        keep_freed_memory()  # the CPU update reuses MB-sized tensors thousands of times; see memory.py
        self.policy = policy
        self.algo = algo
        self.device = device
        self.task_chunk = task_chunk
        self.theta: Params = {k: v.detach().to(device) for k, v in theta.items()}
        self.trpo = TRPOSettings(algo.max_kl, algo.cg_iters, algo.cg_damping, algo.ls_max_steps,
                                 algo.ls_backtrack_ratio)
        self.skipped_updates = 0

    def batch(self, rollouts: Rollouts) -> PolicyBatch:
        """Move rollouts to the device and compute their baseline-corrected advantages (no gradient needed)."""
        n, E, T = rollouts.rewards.shape

        def put(a: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(a)
            return t.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda" else t

        obs, rewards, mask = put(rollouts.obs), put(rollouts.rewards), put(rollouts.mask)
        adv = advantages(obs, rewards, mask, self.algo.gamma, self.algo.gae_lambda, self.algo.normalize_advantages)
        actions = put(rollouts.actions)
        return PolicyBatch(obs=obs.reshape(n, E * T, -1), actions=actions.reshape(n, E * T, *actions.shape[3:]),
                           advantages=adv.reshape(n, E * T), mask=mask.reshape(n, E * T))

    def adapt(self, supports: Sequence[PolicyBatch]) -> Params:
        """φ_K for every task from the support batches so far (used to sample the next batch)."""
        phi = adapt_steps(self.policy, self.theta, supports, self.algo.inner_lr, self.algo.first_order,
                          differentiable=False)
        return {k: v.detach() for k, v in phi.items()}

    def expanded_theta(self, n: int) -> Params:
        return {k: v.contiguous() for k, v in expand(self.theta, n).items()}

    def meta_update(self, supports: Sequence[PolicyBatch], query: PolicyBatch, batched: bool = True) -> dict:
        """One outer TRPO step. Non-finite advantages, gradients or steps leave θ unchanged and count as skipped.

        The batched path takes its gradient and KL curvature from the hand-derived MetaCurvature; ``batched=False``
        is the per-task autograd reference."""
        if not all(torch.isfinite(b.advantages).all() for b in (*supports, query)):
            self.skipped_updates += 1
            return {"skipped": 1, "accepted": 0}
        chunk = self.task_chunk
        if chunk is None:
            chunk = auto_task_chunk(self.device, query.obs.shape[1], max(self.policy.hidden_sizes, default=1))
        if batched:
            objective = MetaCurvature(self.policy, self.theta, list(supports), query, self.algo.inner_lr,
                                      self.algo.first_order, chunk)
        else:
            objective = MetaObjective(self.policy, supports, query, self.algo.inner_lr, self.algo.first_order,
                                      batched=False)
        theta, stats = trpo_step(objective, self.theta, self.trpo)
        self.theta = theta
        self.skipped_updates += stats["skipped"]
        return stats
