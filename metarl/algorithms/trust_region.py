"""The trust-region outer step (TRPO, Schulman et al. 2015) through the adaptation: conjugate gradient on exact
Hessian-vector products of the mean KL, max-KL scaling, and a backtracking line search that accepts only a step
that lowers the loss and keeps the KL within max-KL.

The objective is either a differentiable θ -> (loss, KL, distribution) such as ``MetaObjective`` (gradient and KL
products by autograd) or a ``MetaCurvature`` built at θ (all of them by hand: MAML-TRPO's fast path).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from metarl.algorithms.curvature import MetaCurvature
from metarl.policies import Params, flat, unflat


@dataclass(frozen=True)
class TRPOSettings:
    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 1e-5
    ls_max_steps: int = 15
    ls_backtrack_ratio: float = 0.8


def conjugate_gradient(Avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int,
                       residual_tol: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve A x = b for symmetric positive-definite A given only products A·v. Returns (x, A·x); A·x = b − r
    comes from the residual for free, which saves TRPO one product to scale its step."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    if rr < residual_tol:  # b = 0: the solution is 0 (and alpha below would be 0/0)
        return x, b - r
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
    return x, b - r


def kl_hvp(kl: torch.Tensor, dist: Any, params: list[torch.Tensor], damping: float
           ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Exact Hessian-vector products of the mean KL at θ_old, through the adaptation, in Gauss-Newton form.

    With z(θ) the query-action distribution parameters of φ(θ) (Gaussian mean and log-std, or logits),
    ∇²KL = Jᵀ (∂²KL/∂z²) J + Σ (∂KL/∂z) ∇²z, and ∂KL/∂z = 0 at old = new, so H v = Jᵀ M J v exactly. J v comes
    from the double-vjp trick on the graph the loss already built, M is a cheap product in output space, and Jᵀ
    is one more backward pass: far cheaper than differentiating ∇KL through the second-order adaptation again.
    """
    outs = list(dist) if isinstance(dist, tuple) else [dist]
    kl_out_grad = torch.autograd.grad(kl, outs, create_graph=True)
    dummies = [torch.zeros_like(o, requires_grad=True) for o in outs]
    jt_dummy = flat(torch.autograd.grad(outs, params, grad_outputs=dummies, create_graph=True))

    def hvp(v: torch.Tensor) -> torch.Tensor:
        jv = torch.autograd.grad(jt_dummy @ v, dummies, retain_graph=True)
        mjv = torch.autograd.grad(kl_out_grad, outs, grad_outputs=jv, retain_graph=True)
        return flat(torch.autograd.grad(outs, params, grad_outputs=mjv, retain_graph=True)) + damping * v

    return hvp


def kl_hvp_reference(kl: torch.Tensor, params: list[torch.Tensor], damping: float
                     ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Reference: differentiate ∇KL (built with create_graph) once more. Exact anywhere, several times slower."""
    kl_grad = flat(torch.autograd.grad(kl, params, create_graph=True))

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return flat(torch.autograd.grad(kl_grad @ v, params, retain_graph=True)) + damping * v

    return hvp


def trpo_step(objective: Callable[..., tuple[torch.Tensor, torch.Tensor, Any]] | MetaCurvature, theta: Params,
              settings: TRPOSettings) -> tuple[Params, dict[str, float]]:
    """One trust-region step from ``theta``. Returns (new θ, stats); θ is returned unchanged
    (``stats["skipped"] = 1``) when the gradient or step is not finite, or when no line-search step is accepted
    (``stats["accepted"] = 0``).

    ``objective`` is either a differentiable θ -> (loss, KL, distribution) such as MetaObjective (gradient and KL
    Hessian-vector products by autograd) or a MetaCurvature built at ``theta`` (all of them by hand, the learner's
    fast path)."""
    theta = {k: v.detach().requires_grad_() for k, v in theta.items()}
    params = list(theta.values())
    unchanged = {k: v.detach() for k, v in theta.items()}
    if isinstance(objective, MetaCurvature):
        curvature = objective
        loss, grad, evaluate = curvature.loss(), curvature.gradient(), curvature.evaluate

        def make_hvp() -> Callable[[torch.Tensor], torch.Tensor]:
            return lambda v: curvature.kl_hvp(v) + settings.cg_damping * v
    else:
        loss, kl, dist = objective(theta)
        grad = flat(torch.autograd.grad(loss, params, retain_graph=True))

        def evaluate(th: Params) -> tuple[torch.Tensor, torch.Tensor]:
            return objective(th, differentiable=False)[:2]

        def make_hvp() -> Callable[[torch.Tensor], torch.Tensor]:
            return kl_hvp(kl, dist, params, settings.cg_damping)
    stats = {"loss_before": loss.item(), "loss_after": loss.item(), "kl": 0.0, "line_search_steps": 0,
             "grad_norm": grad.norm().item(), "accepted": 0, "skipped": 0}
    if not torch.isfinite(grad).all() or not math.isfinite(stats["loss_before"]):
        stats["skipped"] = 1
        return unchanged, stats
    if stats["grad_norm"] == 0.0:  # already stationary: nothing to do, and nothing went wrong
        return unchanged, stats

    step_dir, fisher_step_dir = conjugate_gradient(make_hvp(), -grad, settings.cg_iters)
    shs = 0.5 * (step_dir @ fisher_step_dir)
    full_step = step_dir * torch.sqrt(settings.max_kl / shs)
    if not torch.isfinite(full_step).all():
        stats["skipped"] = 1
        return unchanged, stats

    old = flat(params).detach()
    for j in range(settings.ls_max_steps):
        candidate = unflat(old + settings.ls_backtrack_ratio ** j * full_step, theta)
        new_loss, new_kl = (x.item() for x in evaluate(candidate))
        if math.isfinite(new_loss) and new_loss < stats["loss_before"] and new_kl <= settings.max_kl:
            stats.update(loss_after=new_loss, kl=new_kl, line_search_steps=j + 1, accepted=1)
            return {k: v.detach().clone() for k, v in candidate.items()}, stats
    stats["line_search_steps"] = settings.ls_max_steps
    return unchanged, stats
