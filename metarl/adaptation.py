"""The inner loop: functional policy-gradient steps φ ← φ − α ∇L_support(φ), for all tasks at once.

Parameters carry a leading task dimension. Because task i's loss depends only on slice i, the gradient of the
*sum* of per-task losses with respect to the stacked parameters is exactly the stack of per-task gradients:
one backward pass adapts every task. ``adapt_per_task_loop`` is the slow, obviously-correct reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from metarl.policies import Params, Policy, expand


@dataclass(frozen=True)
class PolicyBatch:
    """Rollouts flattened over (episode, time) for the learner: obs [n, B, d], actions [n, B(, a)],
    advantages and mask [n, B], with B = episodes × horizon."""

    obs: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor

    def task(self, i: int) -> "PolicyBatch":
        """Task i's slice, keeping a task dimension of 1 (for the per-task references)."""
        return self.tasks(slice(i, i + 1))

    def tasks(self, s: slice) -> "PolicyBatch":
        return PolicyBatch(self.obs[s], self.actions[s], self.advantages[s], self.mask[s])


def masked_task_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid samples of each task: [n, B] -> [n]."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def inner_loss(policy: Policy, params: Params, batch: PolicyBatch) -> torch.Tensor:
    """REINFORCE-with-baseline loss per task, −mean[log π(a|s) · A], shape [n]."""
    logp = policy.log_prob(policy.distribution(params, batch.obs), batch.actions)
    return -masked_task_mean(logp * batch.advantages, batch.mask)


def adapt(policy: Policy, params: Params, batch: PolicyBatch, lr: float, create_graph: bool) -> Params:
    """One inner step for every task. ``create_graph=True`` keeps the graph for second-order meta-gradients;
    otherwise the inner gradient is treated as a constant (first order)."""
    with torch.enable_grad():
        if not any(p.requires_grad for p in params.values()):
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
        loss = inner_loss(policy, params, batch).sum()
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=create_graph)
    if not create_graph:
        grads = [g.detach() for g in grads]
    return {k: p - lr * g for (k, p), g in zip(params.items(), grads)}


def adapt_steps(policy: Policy, theta: Params, supports: Sequence[PolicyBatch], lr: float,
                first_order: bool = False, differentiable: bool = True) -> Params:
    """φ_K from shared θ: step k uses support batch k (sampled with φ_k). Returns per-task parameters.

    ``differentiable=False`` (line search, sampling) builds no second-order graph at all.
    """
    phi = expand(theta, supports[0].obs.shape[0])
    for batch in supports:
        phi = adapt(policy, phi, batch, lr, create_graph=differentiable and not first_order)
    return phi


def adapt_per_task_loop(policy: Policy, theta: Params, supports: Sequence[PolicyBatch], lr: float,
                        first_order: bool = False, differentiable: bool = True) -> Params:
    """Reference: the same adaptation, one task at a time (what most MAML code does). Tests and `metarl perf`
    compare the batched path against it."""
    n = supports[0].obs.shape[0]
    per_task = []
    for i in range(n):
        phi = expand(theta, 1)
        for batch in supports:
            phi = adapt(policy, phi, batch.task(i), lr, create_graph=differentiable and not first_order)
        per_task.append(phi)
    return {k: torch.cat([p[k] for p in per_task], dim=0) for k in theta}
