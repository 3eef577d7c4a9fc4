"""algorithms/curvature.py: the hand-derived meta-gradient and KL Hessian-vector products equal autograd's
(MetaObjective and kl_hvp_reference) for every policy head, activation, number of inner steps and task block."""

from __future__ import annotations

import pytest
import torch

from metarl.adaptation import InnerLoop, PolicyBatch, adapt_steps
from metarl.algorithms.curvature import MetaCurvature, _tanh
from metarl.algorithms.outer_objectives import MetaObjective
from metarl.algorithms.trust_region import TRPOSettings, flat, kl_hvp_reference, trpo_step
from metarl.policies import CategoricalMLPPolicy, GaussianMLPPolicy

DT = torch.float64


def problem(discrete: bool, activation: str, K: int, n: int = 3, B: int = 30, seed: int = 0):
    """A small float64 meta-batch with padded steps, for a Gaussian or categorical MLP with two hidden layers."""
    gen = torch.Generator().manual_seed(seed)
    obs_dim, act = 4, 3
    policy = (CategoricalMLPPolicy(obs_dim, act, (8, 5), activation) if discrete
              else GaussianMLPPolicy(obs_dim, act, (8, 5), activation, init_log_std=-0.3))
    theta = {k: (v + 0.1 * torch.randn(v.shape, generator=gen)).to(DT) for k, v in policy.init_params(gen).items()}

    def batch() -> PolicyBatch:
        mask = (torch.rand(n, B, generator=gen) > 0.2).to(DT)
        actions = (torch.randint(0, act, (n, B), generator=gen) if discrete
                   else torch.randn(n, B, act, generator=gen, dtype=DT))
        return PolicyBatch(torch.randn(n, B, obs_dim, generator=gen, dtype=DT), actions,
                           torch.randn(n, B, generator=gen, dtype=DT) * mask, mask)

    return policy, theta, [batch() for _ in range(K)], batch()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


CASES = [(discrete, act, K, fo) for discrete in (False, True) for act in ("tanh", "relu")
         for K, fo in ((1, False), (2, False), (2, True))]


@pytest.mark.parametrize("discrete,activation,K,first_order", CASES)
@pytest.mark.parametrize("task_chunk", [0, 2])
def test_gradient_and_kl_hvp_equal_autograd(discrete, activation, K, first_order, task_chunk):
    policy, theta, supports, query = problem(discrete, activation, K)
    lr = 0.4
    th = {k: v.clone().requires_grad_() for k, v in theta.items()}
    loss, kl, _ = MetaObjective(policy, supports, query, InnerLoop((lr,), first_order=first_order))(th)
    grad = flat(torch.autograd.grad(loss, list(th.values()), retain_graph=True))
    hvp = kl_hvp_reference(kl, list(th.values()), damping=0.0)

    curvature = MetaCurvature(policy, theta, supports, query, lr, first_order, task_chunk)
    phi = adapt_steps(policy, theta, supports, InnerLoop((lr,), first_order=first_order), differentiable=False)
    assert all(torch.allclose(curvature.phi[k], phi[k], rtol=0, atol=1e-12) for k in theta)
    assert rel(curvature.gradient(), grad) < 1e-10
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):
        v = torch.randn(grad.shape, generator=gen, dtype=DT)
        expected = hvp(v)
        assert expected.norm() > 1e-6
        assert rel(curvature.kl_hvp(v), expected) < 1e-10


def test_float32_tanh_layers_match_the_float64_path():
    """In float32 on a CPU the tanh layers are 2σ(2x) − 1 (faster there than torch.tanh): within 2e-7 of tanh
    elementwise, and the gradient and KL products stay within float32 rounding of the float64 path."""
    x = torch.linspace(-12, 12, 100_001)
    assert (_tanh(x) - torch.tanh(x.double())).abs().max().item() < 2e-7
    policy, theta, supports, query = problem(False, "tanh", K=2)
    as32 = lambda b: PolicyBatch(b.obs.float(), b.actions.float(), b.advantages.float(), b.mask.float())  # noqa: E731
    exact = MetaCurvature(policy, theta, supports, query, 0.4)
    fast = MetaCurvature(policy, {k: v.float() for k, v in theta.items()}, [as32(b) for b in supports], as32(query),
                         0.4)
    assert rel(fast.gradient().double(), exact.gradient()) < 1e-5
    v = torch.randn(sum(t.numel() for t in theta.values()), generator=torch.Generator().manual_seed(4), dtype=DT)
    assert rel(fast.kl_hvp(v.float()).double(), exact.kl_hvp(v)) < 1e-5


def test_second_order_terms_are_present():
    """The products go through the adaptation: dropping the inner steps' curvature (first order) changes them."""
    policy, theta, supports, query = problem(False, "tanh", K=1)
    v = torch.randn(sum(t.numel() for t in theta.values()), generator=torch.Generator().manual_seed(2), dtype=DT)
    so = MetaCurvature(policy, theta, supports, query, 0.4, first_order=False)
    fo = MetaCurvature(policy, theta, supports, query, 0.4, first_order=True)
    assert rel(fo.kl_hvp(v), so.kl_hvp(v)) > 1e-2
    assert rel(fo.gradient(), so.gradient()) > 1e-2


@pytest.mark.parametrize("discrete", [False, True])
def test_trpo_step_with_curvature_equals_autograd_step(discrete):
    policy, theta, supports, query = problem(discrete, "tanh", K=1, n=4, B=40, seed=3)
    settings = TRPOSettings(max_kl=0.01)
    fast, fast_stats = trpo_step(MetaCurvature(policy, theta, supports, query, 0.3, task_chunk=3), theta, settings)
    slow, slow_stats = trpo_step(MetaObjective(policy, supports, query, InnerLoop((0.3,))), theta, settings)
    assert fast_stats["accepted"] == slow_stats["accepted"] == 1
    assert fast_stats["line_search_steps"] == slow_stats["line_search_steps"]
    assert fast_stats["loss_before"] == pytest.approx(slow_stats["loss_before"], rel=1e-12)
    assert rel(flat(list(fast.values())) - flat(list(theta.values())),
               flat(list(slow.values())) - flat(list(theta.values()))) < 1e-8


def test_unknown_activation_is_refused():
    policy, theta, supports, query = problem(False, "tanh", K=1)
    policy = GaussianMLPPolicy(4, 3, (8, 5), "gelu")
    with pytest.raises(ValueError, match="allowed: tanh, relu"):
        MetaCurvature(policy, theta, supports, query, 0.4)


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("task_chunk", [0, 2])
def test_loss_and_line_search_evaluation_equal_the_objective(discrete, task_chunk):
    policy, theta, supports, query = problem(discrete, "tanh", K=2)
    objective = MetaObjective(policy, supports, query, InnerLoop((0.4,)))
    loss0, kl0, _ = objective(theta, differentiable=False)  # records π_old
    curvature = MetaCurvature(policy, theta, supports, query, 0.4, task_chunk=task_chunk)
    assert curvature.loss().item() == pytest.approx(loss0.item(), rel=1e-12)
    assert [x.item() for x in curvature.evaluate(theta)] == pytest.approx([loss0.item(), 0.0], abs=1e-12)
    gen = torch.Generator().manual_seed(5)
    moved = {k: v + 0.05 * torch.randn(v.shape, generator=gen, dtype=DT) for k, v in theta.items()}
    loss, kl, _ = objective(moved, differentiable=False)
    assert kl.item() > 1e-6
    assert [x.item() for x in curvature.evaluate(moved)] == pytest.approx([loss.item(), kl.item()], rel=1e-10)


def _hvp(f, x: dict, u: dict) -> dict:
    """Autograd's (∂²f/∂x²) u."""
    x = {k: t.detach().requires_grad_() for k, t in x.items()}
    g = torch.autograd.grad(f(x), list(x.values()), create_graph=True)
    return dict(zip(x, torch.autograd.grad(g, list(x.values()), grad_outputs=list(u.values()))))


def _subsampled_kl_hvp_reference(policy, theta, supports, query, lr, n_sub, v):
    """Σ_i A_iᵀ G_i A_i v by autograd, with every H_k (in A_i) and G_i on every n-th sample, at the exact φ path."""
    from metarl.algorithms.curvature import every_nth_sample
    from metarl.algorithms.inner_objectives import reinforce
    from metarl.policies import expand, unflat

    n = query.obs.shape[0]
    phis = [adapt_steps(policy, theta, supports[:k], InnerLoop((lr,)), differentiable=False) if k
            else expand(theta, n) for k in range(len(supports) + 1)]
    subs = [every_nth_sample(b, n_sub) for b in supports]
    u = {k: t.unsqueeze(0).expand(n, *t.shape) for k, t in unflat(v, theta).items()}
    for phi, sub in zip(phis, subs):  # u ← (I − α H_k) u
        hu = _hvp(lambda x, b=sub: reinforce(policy, x, b).sum(), phi, u)
        u = {k: u[k] - lr * hu[k] for k in u}
    q = every_nth_sample(query, n_sub)
    with torch.no_grad():
        old = policy.distribution(phis[-1], q.obs)
    weights = q.mask / q.mask.sum(-1, keepdim=True) / n
    w = _hvp(lambda x: (policy.kl(old, policy.distribution(x, q.obs)) * weights).sum(), phis[-1], u)
    for phi, sub in reversed(list(zip(phis, subs))):  # w ← (I − α H_k) w, H_k symmetric
        hw = _hvp(lambda x, b=sub: reinforce(policy, x, b).sum(), phi, w)
        w = {k: w[k] - lr * hw[k] for k in w}
    return flat([w[k].sum(0) for k in theta])


@pytest.mark.parametrize("discrete", [False, True])
@pytest.mark.parametrize("task_chunk", [0, 2])
def test_fvp_subsample_is_the_exact_product_on_every_nth_sample(discrete, task_chunk):
    policy, theta, supports, query = problem(discrete, "tanh", 2, B=40)
    exact = MetaCurvature(policy, theta, supports, query, 0.4, task_chunk=task_chunk)
    sub = MetaCurvature(policy, theta, supports, query, 0.4, task_chunk=task_chunk, fvp_subsample=5)
    assert torch.equal(sub.gradient(), exact.gradient())  # the meta-gradient stays exact
    assert all(torch.equal(sub.phi[k], exact.phi[k]) for k in theta)  # and so does the adaptation
    v = torch.randn(exact.gradient().shape, generator=torch.Generator().manual_seed(2), dtype=DT)
    expected = _subsampled_kl_hvp_reference(policy, theta, supports, query, 0.4, 5, v)
    assert rel(sub.kl_hvp(v), expected) < 1e-10
    assert rel(sub.kl_hvp(v), exact.kl_hvp(v)) > 1e-6  # it is a different (cheaper) product
