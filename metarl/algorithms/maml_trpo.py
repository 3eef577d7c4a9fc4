"""MAML-TRPO (Finn et al. 2017): the outer objective and the trust-region outer step.

The objective maps shared parameters θ to the mean over tasks of the clipped-free surrogate
−E[π_φ(θ)(a|s) / π_old(a|s) · A] on the query rollouts, with φ(θ) recomputed differentiably from the stored
support rollouts. The outer step is TRPO: conjugate gradient on exact Hessian-vector products of the mean KL
through the adaptation, max-KL scaling, and a backtracking line search that accepts only a step that lowers
the surrogate and keeps the KL within max-KL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from metarl.adaptation import PolicyBatch, adapt_per_task_loop, adapt_steps, masked_task_mean
from metarl.policies import Params, Policy


@dataclass(frozen=True)
class TRPOSettings:
    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 1e-5
    ls_max_steps: int = 15
    ls_backtrack_ratio: float = 0.8


def _detach(dist: Any) -> Any:
    return tuple(d.detach() for d in dist) if isinstance(dist, tuple) else dist.detach()


@dataclass
class MetaObjective:
    """θ -> (surrogate loss, mean KL to the pre-update query policy), batched over tasks or, for reference,
    looped per task."""

    policy: Policy
    supports: Sequence[PolicyBatch]
    query: PolicyBatch
    inner_lr: float
    first_order: bool = False
    batched: bool = True
    old_dist: Any = None  # query-action distribution at θ_old; set by the first evaluation
    old_logp: torch.Tensor | None = None

    def __call__(self, theta: Params, differentiable: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        adapt_fn = adapt_steps if self.batched else adapt_per_task_loop
        phi = adapt_fn(self.policy, theta, self.supports, self.inner_lr, self.first_order, differentiable)
        dist = self.policy.distribution(phi, self.query.obs)
        logp = self.policy.log_prob(dist, self.query.actions)
        if self.old_dist is None:
            self.old_dist, self.old_logp = _detach(dist), logp.detach()
        ratio = torch.exp(logp - self.old_logp)
        loss = -masked_task_mean(ratio * self.query.advantages, self.query.mask).mean()
        kl = masked_task_mean(self.policy.kl(self.old_dist, dist), self.query.mask).mean()
        return loss, kl


def flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflat(vector: torch.Tensor, like: Params) -> Params:
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vector[i:i + v.numel()].view_as(v)
        i += v.numel()
    return out


def conjugate_gradient(Avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int,
                       residual_tol: float = 1e-10) -> torch.Tensor:
    """Solve A x = b for symmetric positive-definite A given only products A·v."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iters):
        Ap = Avp(p)
        alpha = rr / (p @ Ap)
        x += alpha * p
        r -= alpha * Ap
        rr_new = r @ r
        if rr_new < residual_tol:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def trpo_step(objective: Callable[..., tuple[torch.Tensor, torch.Tensor]], theta: Params,
              settings: TRPOSettings) -> tuple[Params, dict[str, float]]:
    """One trust-region step on ``objective`` from ``theta``. Returns (new θ, stats); θ is returned unchanged
    (``stats["skipped"] = 1``) when the gradient or step is not finite or no line-search step is accepted
    (``stats["accepted"] = 0``)."""
    theta = {k: v.detach().requires_grad_() for k, v in theta.items()}
    params = list(theta.values())
    loss, kl = objective(theta)
    grad = flat(torch.autograd.grad(loss, params, retain_graph=True))
    stats = {"loss_before": loss.item(), "loss_after": loss.item(), "kl": 0.0, "line_search_steps": 0,
             "grad_norm": grad.norm().item(), "accepted": 0, "skipped": 0}
    if not torch.isfinite(grad).all() or not math.isfinite(stats["loss_before"]):
        stats["skipped"] = 1
        return {k: v.detach() for k, v in theta.items()}, stats

    kl_grad = flat(torch.autograd.grad(kl, params, create_graph=True))

    def fisher_vector_product(v: torch.Tensor) -> torch.Tensor:
        hv = flat(torch.autograd.grad(kl_grad @ v, params, retain_graph=True))
        return hv + settings.cg_damping * v

    step_dir = conjugate_gradient(fisher_vector_product, -grad, settings.cg_iters)
    shs = 0.5 * (step_dir @ fisher_vector_product(step_dir))
    full_step = step_dir * torch.sqrt(settings.max_kl / shs)
    old = flat(params).detach()
    if not torch.isfinite(full_step).all():
        stats["skipped"] = 1
        return {k: v.detach() for k, v in theta.items()}, stats

    for j in range(settings.ls_max_steps):
        candidate = unflat(old + settings.ls_backtrack_ratio ** j * full_step, theta)
        new_loss, new_kl = objective(candidate, differentiable=False)
        new_loss, new_kl = new_loss.item(), new_kl.item()
        if math.isfinite(new_loss) and new_loss < stats["loss_before"] and new_kl <= settings.max_kl:
            stats.update(loss_after=new_loss, kl=new_kl, line_search_steps=j + 1, accepted=1)
            return {k: v.detach().clone() for k, v in candidate.items()}, stats
    stats["line_search_steps"] = settings.ls_max_steps
    return {k: v.detach() for k, v in theta.items()}, stats
