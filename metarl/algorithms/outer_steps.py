"""Outer steps other than the trust region (trust_region.py): several Adam epochs on one batch, and Reptile's
interpolation toward the adapted parameters."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch

from metarl.policies import Params, flat


def adam_epochs(objective: Callable[..., tuple[torch.Tensor, torch.Tensor, Any]], theta: Params,
                optimizer: torch.optim.Optimizer, epochs: int) -> dict[str, float]:
    """``epochs`` Adam steps on the same rollouts, each re-evaluating the objective (and so the adaptation) at the
    current θ. θ's tensors are the optimiser's parameters and change in place. A non-finite loss or gradient at any
    epoch restores θ and the optimiser's state as they were and counts the update as skipped."""
    params = list(theta.values())
    saved_theta = [p.detach().clone() for p in params]
    saved_state = copy.deepcopy(optimizer.state_dict())
    stats: dict[str, float] = {"skipped": 0, "accepted": 0}
    for epoch in range(epochs):
        loss, _, _ = objective(theta)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
        grad = flat(grads)
        if epoch == 0:
            stats |= {"loss_before": loss.item(), "grad_norm": grad.norm().item()}
        if not math.isfinite(loss.item()) or not torch.isfinite(grad).all():
            with torch.no_grad():
                for p, s in zip(params, saved_theta):
                    p.copy_(s)
            optimizer.load_state_dict(saved_state)
            return {"skipped": 1, "accepted": 0}
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    loss_after, kl = objective({k: v.detach() for k, v in theta.items()}, differentiable=False)[:2]
    stats |= {"loss_after": loss_after.item(), "kl": kl.item(), "accepted": 1}
    return stats


def reptile_step(theta: Params, phi: Params, step_size: float) -> Params:
    """Reptile (Nichol et al. 2018): θ ← θ + ε · mean_i(φ_i − θ) over the tasks, for every parameter that adapted."""
    return {k: v + step_size * (phi[k].mean(0) - v) if k in phi else v for k, v in theta.items()}
