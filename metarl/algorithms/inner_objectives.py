"""Inner objectives: per-task losses [n] whose gradient is the inner policy-gradient step's direction.

All three have the same first derivative at the sampling policy (the REINFORCE-with-baseline gradient), so they
adapt identically; they differ in their second derivative, i.e. in what the meta-gradient of an adaptation through
them contains:
- ``reinforce`` (MAML): −E[log π · A]; its Hessian is E[∇²log π · A], which drops the term of the support sampling
  distribution (∇log π ∇log πᵀ · A).
- ``lvc`` (ProMP's low-variance curvature): −E[π / ⊥π · A] per time step; Hessian E[∇²π / π · A], which adds
  that term for each step's own action only (the low-variance part).
- ``dice`` (Foerster et al. 2018, with the baseline form of Farquhar et al. 2019): −E[(𝔅(c_t) − 𝔅(c_{t−1})) · A_t]
  with c_t the episode's cumulative log-probability up to t; its Hessian also holds the cross terms between an
  action and the earlier actions of its episode, i.e. the full score-function dependence plain MAML drops.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from metarl.batch import PolicyBatch, masked_task_mean
from metarl.policies import Params, Policy

InnerObjective = Callable[[Policy, Params, PolicyBatch], torch.Tensor]


def magic_box(x: torch.Tensor) -> torch.Tensor:
    """DiCE's 𝔅(x) = exp(x − ⊥x): 1 in the forward pass, ∇𝔅(x) = 𝔅(x) ∇x."""
    return torch.exp(x - x.detach())


def _log_prob(policy: Policy, params: Params, batch: PolicyBatch) -> torch.Tensor:
    return policy.log_prob(policy.distribution(params, batch.obs), batch.actions)


def reinforce(policy: Policy, params: Params, batch: PolicyBatch) -> torch.Tensor:
    """REINFORCE with baseline, −mean[log π(a|s) · A] per task."""
    return -masked_task_mean(_log_prob(policy, params, batch) * batch.advantages, batch.mask)


def lvc(policy: Policy, params: Params, batch: PolicyBatch) -> torch.Tensor:
    """ProMP's low-variance curvature objective, −mean[π(a|s) / ⊥π(a|s) · A] per task."""
    return -masked_task_mean(magic_box(_log_prob(policy, params, batch)) * batch.advantages, batch.mask)


def dice(policy: Policy, params: Params, batch: PolicyBatch) -> torch.Tensor:
    """DiCE with a baseline: −mean[(𝔅(c_t) − 𝔅(c_t − log π_t)) · A_t], c_t = Σ_{t' ≤ t} log π_t' in the episode."""
    logp = _log_prob(policy, params, batch) * batch.mask
    n, B = logp.shape
    cum = logp.reshape(n, batch.episodes, B // batch.episodes).cumsum(-1).reshape(n, B)
    return -masked_task_mean((magic_box(cum) - magic_box(cum - logp)) * batch.advantages, batch.mask)
