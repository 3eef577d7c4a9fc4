"""The inner loop: functional policy-gradient steps φ ← φ − α ⊙ ∇L_support(φ), for all tasks at once.

Parameters carry a leading task dimension. Because task i's loss depends only on slice i, the gradient of the
*sum* of per-task losses with respect to the stacked parameters is exactly the stack of per-task gradients:
one backward pass adapts every task. ``adapt_per_task_loop`` is the slow, obviously-correct reference.

What an algorithm varies here is an ``InnerLoop``: the inner objective, the step size of each step (fixed, or
learned per parameter as in Meta-SGD), which parameters adapt (all, or ANIL's head), and first or second order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from metarl.algorithms.inner_objectives import InnerObjective, reinforce
from metarl.batch import PolicyBatch, masked_task_mean
from metarl.policies import Params, Policy, expand

__all__ = ["PolicyBatch", "masked_task_mean", "InnerLoop", "adapt", "adapt_path", "adapt_steps",
           "adapt_per_task_loop", "policy_params", "LR_PREFIX"]

LR_PREFIX = "inner_lr."
"""Learned step sizes live among the meta-parameters as ``inner_lr.<step>.<parameter>`` (shaped like it)."""


def policy_params(meta: Params) -> Params:
    """The policy's own parameters of a meta-parameter dict (without learned step sizes)."""
    return {k: v for k, v in meta.items() if not k.startswith(LR_PREFIX)}


@dataclass(frozen=True)
class InnerLoop:
    """How every task adapts. Step k uses ``lrs[k]`` (the last one for steps beyond the list)."""

    lrs: tuple[float, ...] = (0.1,)
    objective: InnerObjective = reinforce
    keys: tuple[str, ...] | None = None  # the parameters that adapt; None = all
    first_order: bool = False
    learned_lrs: bool = False  # Meta-SGD: per-parameter step sizes among the meta-parameters, lrs their init

    def adapted(self, params: Params) -> list[str]:
        return [k for k in params if self.keys is None or k in self.keys]

    def step_sizes(self, meta: Params, k: int) -> dict[str, float | torch.Tensor]:
        k = min(k, len(self.lrs) - 1)
        keys = self.adapted(policy_params(meta))
        if self.learned_lrs:
            return {key: meta[f"{LR_PREFIX}{k}.{key}"] for key in keys}
        return {key: self.lrs[k] for key in keys}

    def init_learned_lrs(self, theta: Params) -> Params:
        """Meta-SGD's step sizes at the start of training: lrs[k] everywhere."""
        return {f"{LR_PREFIX}{k}.{key}": torch.full_like(theta[key], lr)
                for k, lr in enumerate(self.lrs) for key in self.adapted(policy_params(theta))}


def adapt(policy: Policy, params: Params, batch: PolicyBatch, lrs: dict[str, float | torch.Tensor],
          create_graph: bool, objective: InnerObjective = reinforce) -> Params:
    """One inner step for every task on the parameters named in ``lrs``. ``create_graph=True`` keeps the graph
    for second-order meta-gradients; otherwise the inner gradient is treated as a constant (first order)."""
    keys = list(lrs)
    with torch.enable_grad():
        if not any(params[k].requires_grad for k in keys):
            params = {k: v.detach().requires_grad_() if k in lrs else v for k, v in params.items()}
        loss = objective(policy, params, batch).sum()
        grads = torch.autograd.grad(loss, [params[k] for k in keys], create_graph=create_graph)
    if not create_graph:
        grads = [g.detach() for g in grads]
    new = dict(params)
    for k, g in zip(keys, grads):
        new[k] = params[k] - lrs[k] * g
    return new


def adapt_path(policy: Policy, meta: Params, supports: Sequence[PolicyBatch], inner: InnerLoop,
               differentiable: bool = True, num_tasks: int | None = None) -> list[Params]:
    """[φ_0 = θ, φ_1, …, φ_K] for every task: step k adapts on support batch k (sampled with φ_k).

    ``differentiable=False`` (line search, sampling) builds no second-order graph at all. ``num_tasks`` is needed
    only without support batches (K = 0: training without adaptation)."""
    phi = expand(policy_params(meta), supports[0].obs.shape[0] if supports else num_tasks)
    path = [phi]
    for k, batch in enumerate(supports):
        phi = adapt(policy, phi, batch, inner.step_sizes(meta, k),
                    create_graph=differentiable and not inner.first_order, objective=inner.objective)
        path.append(phi)
    return path


def adapt_steps(policy: Policy, meta: Params, supports: Sequence[PolicyBatch], inner: InnerLoop,
                differentiable: bool = True) -> Params:
    """φ_K for every task (per-task parameters with a leading task dimension)."""
    return adapt_path(policy, meta, supports, inner, differentiable)[-1]


def adapt_per_task_loop(policy: Policy, meta: Params, supports: Sequence[PolicyBatch], inner: InnerLoop,
                        differentiable: bool = True) -> Params:
    """Reference: the same adaptation, one task at a time (what most MAML code does). Tests and `metarl perf`
    compare the batched path against it."""
    per_task = [adapt_steps(policy, meta, [b.task(i) for b in supports], inner, differentiable)
                for i in range(supports[0].obs.shape[0])]
    return {k: torch.cat([p[k] for p in per_task], dim=0) for k in per_task[0]}
