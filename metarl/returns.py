"""Returns, GAE and the linear feature baseline: pure functions over [tasks, episodes, time] tensors.

Every function is batched over tasks and episodes; discounting is one matmul with a [T, T] matrix of
discount powers instead of a Python loop over time.
"""

from __future__ import annotations

import torch


def _discount_matrix(horizon: int, factor: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """D[s, t] = factor^(s - t) for s >= t, else 0, so (x @ D)[t] = sum_{s>=t} factor^(s-t) x[s]."""
    idx = torch.arange(horizon, device=device)
    power = (idx.unsqueeze(1) - idx.unsqueeze(0)).to(dtype)
    return torch.where(power >= 0, torch.as_tensor(factor, dtype=dtype, device=device) ** power.clamp(min=0),
                       torch.zeros((), dtype=dtype, device=device))


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Reward-to-go sum_{s>=t} gamma^(s-t) r_s over valid steps; [..., T] -> [..., T]."""
    D = _discount_matrix(rewards.shape[-1], gamma, rewards.dtype, rewards.device)
    return ((rewards * mask) @ D) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimation (Schulman et al. 2016); the value after the last valid step is 0."""
    next_values = torch.cat([values[..., 1:] * mask[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
    deltas = (rewards + gamma * next_values - values) * mask
    D = _discount_matrix(rewards.shape[-1], gamma * lam, rewards.dtype, rewards.device)
    return (deltas @ D) * mask


def baseline_features(obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Duan et al. (2016) features [o, o^2, t, t^2, t^3, 1] with o clipped to ±10 and t = step / 100."""
    obs = obs.clamp(-10, 10)
    T = obs.shape[-2]
    t = (torch.arange(T, dtype=obs.dtype, device=obs.device) / 100.0).expand(*obs.shape[:-1]).unsqueeze(-1)
    feats = torch.cat([obs, obs.pow(2), t, t.pow(2), t.pow(3), torch.ones_like(t)], dim=-1)
    return feats * mask.unsqueeze(-1)


def fit_linear_baseline(features: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                        reg_coeff: float = 1e-5, attempts: int = 5) -> torch.Tensor:
    """Per-task ridge regression of returns on features; [n, E, T, F], [n, E, T] -> coefficients [n, F].

    Solved in float64; the ridge term grows ×10 while a task's system is ill-conditioned (as in rllab).
    """
    n, F = features.shape[0], features.shape[-1]
    X = (features * mask.unsqueeze(-1)).reshape(n, -1, F).double()
    y = (returns * mask).reshape(n, -1, 1).double()
    XtX = X.transpose(1, 2) @ X
    Xty = X.transpose(1, 2) @ y
    eye = torch.eye(F, dtype=X.dtype, device=X.device)
    coeffs = torch.zeros(n, F, 1, dtype=X.dtype, device=X.device)
    for i in range(attempts):
        sol, info = torch.linalg.solve_ex(XtX + (reg_coeff * 10 ** i) * eye, Xty)
        if info.eq(0).all() and torch.isfinite(sol).all():
            coeffs = sol
            break
    return coeffs.squeeze(-1).to(features.dtype)


def linear_baseline_values(obs: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fit the baseline on this batch per task and return its value predictions [n, E, T]."""
    feats = baseline_features(obs, mask)
    coeffs = fit_linear_baseline(feats, returns, mask)
    return torch.einsum("netf,nf->net", feats, coeffs) * mask


def normalize(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Standardise per task over its valid (episode, step) entries."""
    dims = tuple(range(1, x.dim()))
    count = mask.sum(dim=dims, keepdim=True).clamp(min=1)
    mean = (x * mask).sum(dim=dims, keepdim=True) / count
    var = ((x - mean).pow(2) * mask).sum(dim=dims, keepdim=True) / count
    return (x - mean) / (var.sqrt() + eps) * mask


def advantages(obs: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float,
               normalize_advantages: bool = True) -> torch.Tensor:
    """Baseline-corrected GAE advantages for one batch of rollouts, [n, E, T]."""
    values = linear_baseline_values(obs, discounted_returns(rewards, mask, gamma), mask)
    adv = gae(rewards, values, mask, gamma, lam)
    return normalize(adv, mask) if normalize_advantages else adv
