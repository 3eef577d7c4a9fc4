"""Outer objectives: θ -> the loss an outer step minimises, through the adaptation φ(θ) recomputed
differentiably from the stored support rollouts.

The parts an algorithm picks from:
- the query loss per sample: ``surrogate`` (−ratio · A, TRPO and VPG) or ``clipped_surrogate`` (PPO's
  −min(ratio · A, clip(ratio) · A)); ratio = π_φ(θ)(a|s) / π_φ(θ_old)(a|s), the policy that sampled the query;
- ``pre_update_kl``: ProMP's penalty on KL(π_θ_old ‖ π_θ) on the first support batch's states;
- ``emaml_credit``: E-MAML's term −R̂_i · E[log π_φk(θ)(a|s) − log π_φk(θ_old)(a|s)] over the support batches, which
  credits the pre-update sampling distributions with the post-update return R̂_i (the task's query return
  standardised over the meta-batch, so a return that is the same for every task, i.e. that does not depend on the
  support sampling, credits nothing).

``MetaObjective`` evaluates them batched over all tasks, in blocks of tasks, or one task at a time (the
reference); only the adaptation differs between the three, the loss arithmetic is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from metarl.adaptation import InnerLoop, adapt_path, policy_params
from metarl.batch import PolicyBatch, masked_task_mean
from metarl.policies import Params, Policy, expand


def surrogate(ratio: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Importance-weighted policy-gradient loss per sample."""
    return -ratio * advantages


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's clipped loss per sample: no gradient once the ratio has left [1 − clip, 1 + clip] in the direction
    the advantage favours."""
    return -torch.min(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)


@dataclass(frozen=True)
class OuterLoss:
    """Which outer loss: ``clip`` None = the plain surrogate; ``kl_coef`` > 0 adds ProMP's pre-update KL
    penalty; ``emaml`` adds E-MAML's credit term."""

    clip: float | None = None
    kl_coef: float = 0.0
    emaml: bool = False


def _detach(dist: Any) -> Any:
    return tuple(d.detach() for d in dist) if isinstance(dist, tuple) else dist.detach()


def _cat(parts: list[Any]) -> Any:
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(p) for p in zip(*parts))
    return torch.cat(parts)


def standardised(x: torch.Tensor) -> torch.Tensor:
    """(x − mean) / std over tasks; zero where every task has the same value."""
    centred = x - x.mean()
    std = centred.pow(2).mean().sqrt()
    return centred / std if std > 1e-12 else torch.zeros_like(x)


@dataclass
class MetaObjective:
    """θ (meta-parameters) -> (loss, mean KL to the pre-update query policy, query-action distribution of φ(θ)).

    ``batched`` evaluates all tasks at once (``task_chunk`` > 0: that many at a time, cache-sized tensors on a
    CPU); ``batched=False`` adapts one task at a time, the reference every batched update is tested against. The
    first evaluation (at θ_old) fixes the old distributions the ratio and the KL terms compare against."""

    policy: Policy
    supports: Sequence[PolicyBatch]
    query: PolicyBatch
    inner: InnerLoop
    outer: OuterLoss = OuterLoss()
    batched: bool = True
    task_chunk: int = 0
    old: dict[str, Any] | None = None

    def __call__(self, theta: Params, differentiable: bool = True) -> tuple[torch.Tensor, torch.Tensor, Any]:
        n = self.query.obs.shape[0]
        size = (self.task_chunk if 0 < self.task_chunk < n else n) if self.batched else 1
        blocks = [self._block(theta, slice(lo, min(lo + size, n)), differentiable) for lo in range(0, n, size)]
        terms = {key: _cat([b[key] for b in blocks]) for key in blocks[0]}
        if self.old is None:
            self.old = {key: _detach(value) for key, value in terms.items()}
        dist, old = terms["query"], self.old
        ratio = torch.exp(self.policy.log_prob(dist, self.query.actions) - self.policy.log_prob(old["query"],
                                                                                                self.query.actions))
        per_sample = (surrogate(ratio, self.query.advantages) if self.outer.clip is None
                      else clipped_surrogate(ratio, self.query.advantages, self.outer.clip))
        loss = masked_task_mean(per_sample, self.query.mask).mean()
        if self.outer.kl_coef > 0:
            first = self.supports[0]
            loss = loss + self.outer.kl_coef * masked_task_mean(self.policy.kl(old["pre"], terms["pre"]),
                                                                first.mask).mean()
        if self.outer.emaml:
            credit = standardised(self.query.task_return)
            for k, batch in enumerate(self.supports):
                logp = self.policy.log_prob(terms[f"support{k}"], batch.actions)
                old_logp = self.policy.log_prob(old[f"support{k}"], batch.actions)
                loss = loss - (credit * masked_task_mean(logp - old_logp, batch.mask)).mean()
        kl = masked_task_mean(self.policy.kl(old["query"], dist), self.query.mask).mean()
        return loss, kl, dist

    def _block(self, theta: Params, s: slice, differentiable: bool) -> dict[str, Any]:
        """The distributions the loss needs for the tasks in ``s``: of φ_K on the query, and as asked, of θ on the
        first support batch (pre-update KL) and of φ_k on support batch k (E-MAML)."""
        supports = [b.tasks(s) for b in self.supports]
        path = adapt_path(self.policy, theta, supports, self.inner, differentiable, num_tasks=s.stop - s.start)
        out = {"query": self.policy.distribution(path[-1], self.query.tasks(s).obs)}
        if self.outer.kl_coef > 0:
            n = supports[0].obs.shape[0]
            out["pre"] = self.policy.distribution(expand(policy_params(theta), n), supports[0].obs)
        if self.outer.emaml:
            for k, batch in enumerate(supports):
                out[f"support{k}"] = self.policy.distribution(path[k], batch.obs)
        return out
