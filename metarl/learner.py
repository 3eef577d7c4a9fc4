"""The learner: owns the meta-parameters θ (and learned step sizes, and the outer optimiser) on its device, turns
rollouts into batches, adapts every task at once, and takes the algorithm's outer step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from metarl.adaptation import LR_PREFIX, InnerLoop, adapt_per_task_loop, adapt_steps
from metarl.algorithms.curvature import MetaCurvature
from metarl.algorithms.outer_objectives import MetaObjective, OuterLoss
from metarl.algorithms.outer_steps import adam_epochs, reptile_step
from metarl.algorithms.registry import ALGORITHMS
from metarl.algorithms.trust_region import TRPOSettings, trpo_step
from metarl.batch import PolicyBatch
from metarl.config import AlgoConfig, ConfigError, resolve_algo
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
    """Holds the meta-parameters; every computation is batched over the tasks of a meta-batch.

    ``theta`` holds the policy's parameters and, for Meta-SGD, the learned step sizes (``inner_lr.<k>.<name>``),
    so that every outer step, checkpoint and resume treats them alike."""

    def __init__(self, policy: Policy, theta: Params, algo: AlgoConfig, device: torch.device,
                 task_chunk: int | None = None):
        keep_freed_memory()  # the CPU update reuses MB-sized tensors thousands of times; see memory.py
        algo = resolve_algo(algo)
        self.policy, self.algo, self.device, self.task_chunk = policy, algo, device, task_chunk
        self.algorithm = spec = ALGORITHMS[algo.name]
        self.inner = InnerLoop(lrs=algo.inner_lrs, objective=spec.inner_objective,
                               keys=policy.head_keys() if spec.adapts == "head" else None,
                               first_order=bool(algo.first_order), learned_lrs=spec.learned_lrs)
        self.outer = OuterLoss(clip=algo.clip if spec.clipped else None,
                               kl_coef=algo.kl_coef if spec.pre_update_kl else 0.0, emaml=spec.emaml)
        theta = {k: v.detach().to(device) for k, v in theta.items()}
        if spec.learned_lrs and not any(k.startswith(LR_PREFIX) for k in theta):
            theta |= self.inner.init_learned_lrs(theta)
        self.theta: Params = theta
        self.trpo = TRPOSettings(algo.max_kl, algo.cg_iters, algo.cg_damping, algo.ls_max_steps,
                                 algo.ls_backtrack_ratio)
        self.optimizer: torch.optim.Optimizer | None = None
        if spec.outer_step == "adam":  # θ's tensors become the optimiser's parameters, updated in place
            self.theta = {k: v.clone().requires_grad_() for k, v in theta.items()}
            self.optimizer = torch.optim.Adam(list(self.theta.values()), lr=algo.outer_lr)
        self.skipped_updates = 0

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint holds of the learner: θ (with learned step sizes) and the outer optimiser's state."""
        return {"theta": {k: v.detach().cpu().clone() for k, v in self.theta.items()},
                "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
                "skipped_updates": self.skipped_updates}

    def load_optimizer_state(self, state: dict | None) -> None:
        if self.optimizer is not None and state is not None:
            self.optimizer.load_state_dict(state)

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
                           advantages=adv.reshape(n, E * T), mask=mask.reshape(n, E * T), episodes=E,
                           task_return=(rewards * mask).sum(-1).mean(-1))

    def adapt(self, supports: Sequence[PolicyBatch], inner_lr: Sequence[float] | None = None) -> Params:
        """φ_K for every task from the support batches so far (used to sample the next batch); ``inner_lr`` replaces
        the configured step sizes (meta-test protocols), which a learner with learned step sizes refuses."""
        inner = self.inner
        if inner_lr is not None:
            if inner.learned_lrs:
                raise ConfigError(f"{self.algo.name} learns its inner step sizes; an inner_lr for evaluation is not "
                                  "allowed (leave eval.inner_lr / --inner-lr out)")
            inner = replace(inner, lrs=tuple(inner_lr))
        phi = adapt_steps(self.policy, self.theta, supports, inner, differentiable=False)
        return {k: v.detach() for k, v in phi.items()}

    def step_sizes(self, steps: int, inner_lr: Sequence[float] | None = None) -> list[float]:
        """The step size of each of ``steps`` inner steps (learned ones: their mean per step)."""
        if self.inner.learned_lrs and inner_lr is None:
            means = [torch.cat([v.detach().reshape(-1) for k, v in self.theta.items()
                                if k.startswith(f"{LR_PREFIX}{j}.")]).mean().item() for j in range(len(self.inner.lrs))]
            return [means[min(k, len(means) - 1)] for k in range(steps)]
        lrs = tuple(inner_lr) if inner_lr is not None else self.inner.lrs
        return [float(lrs[min(k, len(lrs) - 1)]) for k in range(steps)]

    def expanded_theta(self, n: int) -> Params:
        """The policy's parameters broadcast to ``n`` tasks (what the rollout workers sample with)."""
        return {k: v.detach().contiguous() for k, v in expand(self.policy_theta(), n).items()}

    def policy_theta(self) -> Params:
        return {k: v for k, v in self.theta.items() if not k.startswith(LR_PREFIX)}

    def inner_lr_stats(self) -> tuple[float, float]:
        """Mean and standard deviation of the inner step sizes (learned ones for Meta-SGD)."""
        lrs = torch.cat([v.detach().reshape(-1) for k, v in self.theta.items() if k.startswith(LR_PREFIX)]) \
            if self.inner.learned_lrs else torch.tensor(self.inner.lrs, dtype=torch.float64)
        return lrs.mean().item(), lrs.std(unbiased=False).item()

    def meta_update(self, supports: Sequence[PolicyBatch], query: PolicyBatch, batched: bool = True) -> dict:
        """One outer step of the configured algorithm. Non-finite advantages, gradients or steps leave θ unchanged
        and count as skipped. ``batched=False`` is the per-task reference of the same update."""
        if not all(torch.isfinite(b.advantages).all() for b in (*supports, query)):
            self.skipped_updates += 1
            return {"skipped": 1, "accepted": 0}
        step = self.algorithm.outer_step
        if step == "reptile":
            stats = self._reptile(supports, batched)
        elif step == "adam":
            stats = adam_epochs(self._objective(supports, query, batched), self.theta, self.optimizer,
                                self.algo.outer_epochs)
        else:
            self.theta, stats = trpo_step(self._objective(supports, query, batched), self.theta, self.trpo)
        self.skipped_updates += stats["skipped"]
        return stats

    def _objective(self, supports: Sequence[PolicyBatch], query: PolicyBatch, batched: bool
                   ) -> MetaObjective | MetaCurvature:
        """MAML-TRPO's hand-derived fast path where the algorithm allows it, else autograd over the task batch
        (or per task, the reference)."""
        if batched and self.algorithm.hand_derived:
            chunk = self.task_chunk
            if chunk is None:
                chunk = auto_task_chunk(self.device, query.obs.shape[1], max(self.policy.hidden_sizes, default=1))
            return MetaCurvature(self.policy, self.theta, list(supports), query, self.inner.lrs,
                                 self.inner.first_order, chunk, fvp_subsample=self.algo.fvp_subsample)
        return MetaObjective(self.policy, supports, query, self.inner, self.outer, batched=batched)

    def _reptile(self, supports: Sequence[PolicyBatch], batched: bool) -> dict:
        adapt_fn = adapt_steps if batched else adapt_per_task_loop
        phi = adapt_fn(self.policy, self.theta, supports, self.inner, differentiable=False)
        if not all(torch.isfinite(v).all() for v in phi.values()):
            return {"skipped": 1, "accepted": 0}
        new = reptile_step(self.theta, {k: v.detach() for k, v in phi.items()}, self.algo.outer_lr)
        delta = torch.cat([(new[k] - self.theta[k]).reshape(-1) for k in new])
        self.theta = new
        return {"skipped": 0, "accepted": 1, "grad_norm": delta.norm().item()}
