"""algorithms/trust_region.py and Learner.meta_update: conjugate gradient, the exact Fisher-vector product,
the trust-region step's guarantees, and skipping of non-finite updates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_adaptation import make_problem

import metarl.algorithms.trust_region as trust_region
from metarl.adaptation import InnerLoop, adapt_steps, masked_task_mean
from metarl.algorithms.outer_objectives import MetaObjective
from metarl.algorithms.trust_region import TRPOSettings, conjugate_gradient, trpo_step
from metarl.config import AlgoConfig
from metarl.learner import Learner
from metarl.rollout import Rollouts


def _flat(d):
    return torch.cat([v.reshape(-1) for v in d.values()])


def _unflat(v, like):
    out, i = {}, 0
    for k, t in like.items():
        out[k] = v[i:i + t.numel()].view_as(t)
        i += t.numel()
    return out


def test_conjugate_gradient_solves_spd_system():
    gen = torch.Generator().manual_seed(0)
    M = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    A = M @ M.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, generator=gen, dtype=torch.float64)
    x, Ax = conjugate_gradient(lambda v: A @ v, b, iters=20)
    assert torch.allclose(x, torch.linalg.solve(A, b), atol=1e-6)
    assert torch.allclose(Ax, A @ x, atol=1e-8)  # the product TRPO uses to scale its step, without another HVP
    # exact in at most dim iterations for a well-conditioned system
    x6, _ = conjugate_gradient(lambda v: A @ v, b, iters=6)
    assert torch.allclose(A @ x6, b, atol=1e-5)


def _independent_loss_and_kl(policy, theta_old, theta, supports, query, lr):
    """Surrogate and mean KL(old || new) recomputed from scratch (no MetaObjective state)."""
    with torch.enable_grad():
        phi_old = adapt_steps(policy, theta_old, supports, InnerLoop((lr,)), differentiable=False)
        phi_new = adapt_steps(policy, theta, supports, InnerLoop((lr,)), differentiable=False)
    d_old = tuple(x.detach() for x in policy.distribution(phi_old, query.obs))
    d_new = tuple(x.detach() for x in policy.distribution(phi_new, query.obs))
    ratio = torch.exp(policy.log_prob(d_new, query.actions) - policy.log_prob(d_old, query.actions))
    loss = -masked_task_mean(ratio * query.advantages, query.mask).mean()
    kl = masked_task_mean(policy.kl(d_old, d_new), query.mask).mean()
    return loss.item(), kl.item()


@pytest.mark.parametrize("seed,max_kl", [(0, 0.01), (1, 0.001), (2, 0.05)])
def test_trpo_step_accepted_step_lowers_loss_within_trust_region(seed, max_kl):
    policy, theta, supports, query = make_problem(n=4, B=20, K=1, hidden=(8,), seed=seed)
    theta = {k: v.float() for k, v in theta.items()}
    supports = [dataclasses.replace(b, obs=b.obs.float(), actions=b.actions.float(),
                                    advantages=b.advantages.float(), mask=b.mask.float()) for b in supports]
    query = dataclasses.replace(query, obs=query.obs.float(), actions=query.actions.float(),
                                advantages=query.advantages.float(), mask=query.mask.float())
    obj = MetaObjective(policy, supports, query, InnerLoop((0.1,)))
    new, stats = trpo_step(obj, theta, TRPOSettings(max_kl=max_kl))
    assert stats["accepted"] == 1 and stats["skipped"] == 0
    assert 1 <= stats["line_search_steps"] <= 15
    assert set(new) == set(theta) and all(new[k].shape == theta[k].shape for k in theta)
    assert not all(torch.equal(new[k], theta[k]) for k in theta)
    loss_before, kl_before = _independent_loss_and_kl(policy, theta, theta, supports, query, 0.1)
    loss_after, kl_after = _independent_loss_and_kl(policy, theta, new, supports, query, 0.1)
    assert abs(kl_before) < 1e-7
    assert kl_after <= max_kl * (1 + 1e-4)
    assert loss_after < loss_before
    assert stats["loss_after"] < stats["loss_before"]
    assert stats["loss_before"] == pytest.approx(loss_before, abs=1e-6)
    assert stats["kl"] == pytest.approx(kl_after, rel=1e-3, abs=1e-8)
    assert np.isfinite(stats["grad_norm"]) and stats["grad_norm"] > 0


def test_trpo_step_skips_non_finite_gradient():
    theta = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5])}
    w0 = theta["w"].clone()

    def objective(th, differentiable=True):
        # finite loss (0) whose gradient is NaN: d/dx sqrt(|x|) at 0
        loss = torch.sqrt((th["w"] - w0).abs()).sum() + th["b"].sum() * 0
        return loss, (th["w"] - w0).pow(2).sum(), th["w"] - w0

    new, stats = trpo_step(objective, theta, TRPOSettings())
    assert stats["skipped"] == 1 and stats["accepted"] == 0
    assert all(torch.equal(new[k], theta[k]) for k in theta)

    def nan_loss(th, differentiable=True):
        return (th["w"].sum() + th["b"].sum()) * float("nan"), th["w"].pow(2).sum(), th["w"]

    new, stats = trpo_step(nan_loss, theta, TRPOSettings())
    assert stats["skipped"] == 1
    assert all(torch.equal(new[k], theta[k]) for k in theta)


def test_trpo_step_rejects_when_no_line_search_step_improves():
    """A loss with gradient g at θ that rises along every line-search step (a kink larger than g): θ stays,
    nothing is accepted, every line-search step is tried, and it is not counted as a skipped update."""
    theta = {"w": torch.tensor([0.3, -0.2], dtype=torch.float64)}
    w0 = theta["w"].clone()
    g = torch.tensor([1.0, -0.5], dtype=torch.float64)

    def objective(th, differentiable=True):
        d = th["w"] - w0
        # (loss, KL, distribution parameters): the KL is 0.5‖d‖² in the "distribution" d
        return g @ d + 5.0 * torch.sqrt(d @ d + 1e-16), 0.5 * (d @ d), d

    new, stats = trpo_step(objective, theta, TRPOSettings(max_kl=0.01, ls_max_steps=4))
    assert stats["accepted"] == 0 and stats["skipped"] == 0
    assert stats["line_search_steps"] == 4
    assert torch.equal(new["w"], theta["w"])


def test_fisher_vector_product_used_by_trpo_is_exact(monkeypatch):
    """Capture the Fisher-vector product trpo_step hands to conjugate_gradient and compare it with central
    finite differences of the KL gradient (float64, tiny problem, second order through the adaptation)."""
    policy, theta, supports, query = make_problem(n=3, B=10, K=1, hidden=(3,), seed=4)
    settings = TRPOSettings(cg_damping=1e-5)
    captured = {}
    original = trust_region.conjugate_gradient

    def spy(Avp, b, iters, *args, **kwargs):
        captured.setdefault("Avp", Avp)
        return original(Avp, b, iters, *args, **kwargs)

    monkeypatch.setattr(trust_region, "conjugate_gradient", spy)
    obj = MetaObjective(policy, supports, query, InnerLoop((0.5,)))
    trpo_step(obj, theta, settings)
    assert "Avp" in captured, "trpo_step must solve with its Fisher-vector product through conjugate_gradient"

    gen = torch.Generator().manual_seed(7)
    flat0 = _flat(theta)
    eps = 1e-5

    def kl_grad(flat):
        th = {k: v.clone().requires_grad_() for k, v in _unflat(flat, theta).items()}
        return _flat(dict(zip(th, torch.autograd.grad(obj(th)[1], list(th.values())))))

    th = {k: v.clone().requires_grad_() for k, v in theta.items()}  # the slow "differentiate ∇KL again" reference
    ref_hvp = trust_region.kl_hvp_reference(obj(th)[1], list(th.values()), settings.cg_damping)
    for _ in range(3):
        v = torch.randn(flat0.shape, generator=gen, dtype=torch.float64)
        hvp = captured["Avp"](v.clone()).detach() - settings.cg_damping * v
        fd = (kl_grad(flat0 + eps * v) - kl_grad(flat0 - eps * v)) / (2 * eps)
        rel = (hvp - fd).norm() / fd.norm()
        assert rel < 1e-5, f"relative error {rel:.2e}"
        assert fd.norm() > 1e-6
        assert torch.allclose(ref_hvp(v.clone()).detach() - settings.cg_damping * v, hvp, rtol=1e-8, atol=1e-12)


# ----------------------------------------------------------------------------------------------- Learner


def _learner_and_rollouts(nav_rollouts, **algo):
    policy = nav_rollouts["policy"]
    learner = Learner(policy, nav_rollouts["theta"], AlgoConfig(**algo), torch.device("cpu"))
    return learner, nav_rollouts["rollouts"]


def test_learner_meta_update_changes_theta(nav_rollouts):
    learner, r = _learner_and_rollouts(nav_rollouts)
    support = learner.batch(r)
    n, E, T = r.rewards.shape
    assert support.obs.shape == (n, E * T, 2) and support.actions.shape == (n, E * T, 2)
    assert support.advantages.shape == (n, E * T) and torch.isfinite(support.advantages).all()
    before = {k: v.clone() for k, v in learner.theta.items()}
    phi = learner.adapt([support])
    assert all(phi[k].shape == (n, *before[k].shape) for k in before)
    stats = learner.meta_update([support], support)
    assert stats["skipped"] == 0 and learner.skipped_updates == 0
    assert stats["accepted"] == 1
    assert not all(torch.equal(before[k], learner.theta[k]) for k in before)


def test_learner_meta_update_skips_nan_advantages(nav_rollouts):
    learner, r = _learner_and_rollouts(nav_rollouts)
    rewards = r.rewards.copy()
    rewards[1, 2, 5] = np.nan
    bad = Rollouts(obs=r.obs, actions=r.actions, rewards=rewards, mask=r.mask, success=r.success)
    good_batch, bad_batch = learner.batch(r), learner.batch(bad)
    assert not torch.isfinite(bad_batch.advantages).all()
    before = {k: v.clone() for k, v in learner.theta.items()}
    for supports, query in (([good_batch], bad_batch), ([bad_batch], good_batch)):
        stats = learner.meta_update(supports, query)
        assert stats["skipped"] == 1
        assert all(torch.equal(before[k], learner.theta[k]) for k in before)
    assert learner.skipped_updates == 2


def test_learner_fast_path_equals_per_task_autograd_reference(nav_rollouts):
    """The learner's batched update (hand-derived curvature, task blocks) and the per-task autograd loop take the
    same step from the same rollouts. In float64, since ten CG iterations on this ill-conditioned Fisher amplify
    rounding about 1e11-fold: float32 alone moves either path's step by ~30%, and float64 by 5e-6 on an AMD EPYC
    (below 1e-6 on an Intel Xeon). Dropping the second-order terms from the batched path moves it by 0.5."""
    as64 = lambda b: dataclasses.replace(b, obs=b.obs.double(), actions=b.actions.double(),  # noqa: E731
                                         advantages=b.advantages.double(), mask=b.mask.double())
    steps = []
    for batched in (True, False):
        learner, r = _learner_and_rollouts(nav_rollouts)
        learner.theta = {k: v.double() for k, v in learner.theta.items()}
        learner.task_chunk = 2
        batch = as64(learner.batch(r))
        theta0 = _flat(learner.theta).clone()
        assert learner.meta_update([batch], batch, batched=batched)["accepted"] == 1
        steps.append(_flat(learner.theta) - theta0)
    assert ((steps[0] - steps[1]).norm() / steps[1].norm()).item() < 1e-4
