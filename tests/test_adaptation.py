"""adaptation.py + MetaObjective: the batched inner loop equals the per-task loop, and the (second-order)
meta-gradient is exact (finite differences)."""

from __future__ import annotations

import pytest
import torch

from metarl.adaptation import InnerLoop, PolicyBatch, adapt_per_task_loop, adapt_steps, masked_task_mean
from metarl.algorithms.inner_objectives import reinforce as inner_loss
from metarl.algorithms.outer_objectives import MetaObjective
from metarl.policies import GaussianMLPPolicy

DT = torch.float64


def make_problem(n=3, B=12, K=2, hidden=(3,), seed=0):
    """A tiny deterministic meta-learning problem in float64: policy, θ, K support batches and a query batch."""
    policy = GaussianMLPPolicy(obs_dim=2, out_dim=2, hidden_sizes=hidden)
    gen = torch.Generator().manual_seed(seed)
    theta = {k: v.to(DT) for k, v in policy.init_params(gen).items()}
    for k in theta:
        theta[k] = theta[k] + 0.2 * torch.randn(theta[k].shape, generator=gen, dtype=DT)

    def batch():
        mask = torch.ones(n, B, dtype=DT)
        mask[0, -3:] = 0  # one task with a few padded (terminated) steps
        adv = torch.randn(n, B, generator=gen, dtype=DT)
        return PolicyBatch(obs=torch.randn(n, B, 2, generator=gen, dtype=DT),
                           actions=torch.randn(n, B, 2, generator=gen, dtype=DT),
                           advantages=adv * mask, mask=mask)

    return policy, theta, [batch() for _ in range(K)], batch()


def _grad(fn, theta):
    theta = {k: v.detach().clone().requires_grad_() for k, v in theta.items()}
    out = fn(theta)
    return dict(zip(theta, torch.autograd.grad(out, list(theta.values()))))


def _flat(d):
    return torch.cat([v.reshape(-1) for v in d.values()])


@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("first_order", [False, True])
def test_batched_adaptation_equals_per_task_loop(K, first_order):
    policy, theta, supports, _ = make_problem(K=K)
    theta = {k: v.requires_grad_() for k, v in theta.items()}
    fast = adapt_steps(policy, theta, supports, InnerLoop((0.3,), first_order=first_order))
    slow = adapt_per_task_loop(policy, theta, supports, InnerLoop((0.3,), first_order=first_order))
    assert set(fast) == set(theta)
    for k in theta:
        assert fast[k].shape == (3, *theta[k].shape)
        assert torch.allclose(fast[k], slow[k], atol=1e-10), k
    # tasks adapt differently, and adaptation actually moves the parameters
    assert not torch.allclose(fast["layer1.bias"][0], fast["layer1.bias"][1])
    assert not torch.allclose(fast["layer1.bias"][0], theta["layer1.bias"])


def test_one_step_is_theta_minus_lr_times_per_task_gradient():
    policy, theta, supports, _ = make_problem(K=1)
    phi = adapt_steps(policy, theta, supports, InnerLoop((0.25,)))
    for i in range(3):
        task = supports[0].task(i)
        g = _grad(lambda th, task=task: inner_loss(policy, {k: v.unsqueeze(0) for k, v in th.items()}, task).sum(),
                  theta)
        for k in theta:
            assert torch.allclose(phi[k][i], theta[k] - 0.25 * g[k], atol=1e-12)


@pytest.mark.parametrize("K", [1, 2])
@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_batched_equals_per_task_loop(K, first_order):
    policy, theta, supports, query = make_problem(K=K)
    grads = {}
    for batched in (True, False):
        obj = MetaObjective(policy, supports, query, InnerLoop((0.3,), first_order=first_order), batched=batched)
        grads[batched] = _flat(_grad(lambda th, obj=obj: obj(th)[0], theta))
    assert grads[True].abs().max() > 1e-4
    assert torch.allclose(grads[True], grads[False], atol=1e-10)


@pytest.mark.parametrize("task_chunk", [1, 2, 3, 5])
def test_task_blocks_give_the_same_objective_and_meta_gradient(task_chunk):
    """The CPU path evaluates the outer objective in blocks of tasks; it must equal the one-block evaluation."""
    policy, theta, supports, query = make_problem(n=5, K=2)
    results = {}
    for chunk in (0, task_chunk):
        obj = MetaObjective(policy, supports, query, InnerLoop((0.3,)), task_chunk=chunk)
        th = {k: v.detach().clone().requires_grad_() for k, v in theta.items()}
        loss, kl, dist = obj(th)
        grad = torch.autograd.grad(loss, list(th.values()))
        results[chunk] = (loss.detach(), _flat(dict(zip(th, grad))), dist[0].detach())
    for a, b in zip(results[0], results[task_chunk]):
        assert torch.allclose(a, b, atol=1e-12)


def _finite_difference_grad(obj, theta, eps=1e-6):
    flat = _flat(theta)
    out = torch.zeros_like(flat)

    def unflat(v):
        res, i = {}, 0
        for k, t in theta.items():
            res[k] = v[i:i + t.numel()].view_as(t)
            i += t.numel()
        return res

    for j in range(flat.numel()):
        e = torch.zeros_like(flat)
        e[j] = eps
        plus = obj(unflat(flat + e), differentiable=False)[0].item()
        minus = obj(unflat(flat - e), differentiable=False)[0].item()
        out[j] = (plus - minus) / (2 * eps)
    return out


@pytest.mark.parametrize("K", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(K):
    policy, theta, supports, query = make_problem(K=K)
    obj = MetaObjective(policy, supports, query, InnerLoop((0.5,), first_order=False))
    obj(theta)  # fixes π_old (the query policy at θ) as the first evaluation does in TRPO
    analytic = _flat(_grad(lambda th: obj(th)[0], theta))
    numeric = _finite_difference_grad(obj, theta)
    rel = (analytic - numeric).norm() / numeric.norm()
    assert rel <= 1e-4, f"relative error {rel:.2e}"


def test_first_order_gradient_is_post_adaptation_gradient_and_differs_from_second_order():
    policy, theta, supports, query = make_problem(K=1)
    lr = 0.5
    so = _flat(_grad(lambda th: MetaObjective(policy, supports, query, InnerLoop((lr,)))(th)[0], theta))
    fo = _flat(_grad(lambda th: MetaObjective(policy, supports, query, InnerLoop((lr,), first_order=True))(th)[0],
                     theta))
    assert (fo - so).norm() / so.norm() > 1e-3

    # ∇_θ of the FOMAML objective = Σ_i ∇_{φ_i} L_query,i(φ_i) / n, with φ fixed
    phi = {k: v.detach().requires_grad_() for k, v in adapt_steps(policy, theta, supports, InnerLoop((lr,))).items()}
    dist = policy.distribution(phi, query.obs)
    logp = policy.log_prob(dist, query.actions)
    loss = -masked_task_mean(torch.exp(logp - logp.detach()) * query.advantages, query.mask).mean()
    g_phi = dict(zip(phi, torch.autograd.grad(loss, list(phi.values()))))
    expected = _flat({k: g.sum(0) for k, g in g_phi.items()})
    assert torch.allclose(fo, expected, atol=1e-12)


def test_meta_objective_kl_is_zero_at_old_parameters_and_positive_elsewhere():
    policy, theta, supports, query = make_problem(K=1)
    obj = MetaObjective(policy, supports, query, InnerLoop((0.3,)))
    loss0, kl0 = obj(theta)[:2]
    assert abs(kl0.item()) < 1e-12
    # at θ_old the ratio is 1: the surrogate is −mean advantage
    assert torch.allclose(loss0, -masked_task_mean(query.advantages, query.mask).mean())
    moved = {k: v + 0.05 for k, v in theta.items()}
    loss1, kl1 = obj(moved, differentiable=False)[:2]
    assert kl1.item() > 0 and loss1.item() != loss0.item()
