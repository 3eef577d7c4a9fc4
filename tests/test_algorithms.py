"""The algorithm suite: each algorithm's batched update equals its per-task reference, and each shared part has
the property it claims (DiCE's magic box, LVC's curvature, the clip, learned and per-step step sizes, ANIL's
head, Reptile's interpolation, E-MAML's credit)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from test_adaptation import make_problem

from metarl.adaptation import InnerLoop, adapt, adapt_steps
from metarl.algorithms.algorithm import Algorithm
from metarl.algorithms.inner_objectives import dice, lvc, magic_box, reinforce
from metarl.algorithms.outer_objectives import MetaObjective, OuterLoss, clipped_surrogate
from metarl.algorithms.outer_steps import reptile_step
from metarl.algorithms.registry import ALGORITHMS
from metarl.batch import PolicyBatch
from metarl.cli import main
from metarl.config import AlgoConfig, ConfigError, from_dict
from metarl.learner import Learner
from metarl.policies import GaussianMLPPolicy

DT = torch.float64
NAMES = ["maml-trpo", "fomaml", "maml-vpg", "maml-ppo", "promp", "e-maml", "dice", "meta-sgd", "anil", "reptile"]


def problem(n=4, K=1, episodes=3, seed=0):
    """make_problem's float64 batches with whole episodes and a different query return per task."""
    policy, theta, supports, query = make_problem(n=n, B=12, K=K, hidden=(4,), seed=seed)
    ret = torch.linspace(-2.0, 1.0, n, dtype=DT)
    supports = [dataclasses.replace(b, episodes=episodes, task_return=ret) for b in supports]
    query = dataclasses.replace(query, episodes=episodes, task_return=ret.flip(0))
    return policy, theta, supports, query


def test_registry_holds_the_design_names_and_cli_lists_them(capsys):
    assert list(ALGORITHMS) == NAMES
    assert main(["algos", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == NAMES
    promp = rows[NAMES.index("promp")]
    assert promp["inner_objective"] == "lvc" and promp["outer_step"] == "adam"
    assert promp["defaults"] == {"first_order": False, "outer_lr": 1e-3, "outer_epochs": 5, "clip": 0.3,
                                 "kl_coef": 5e-4}
    assert main(["algos"]) == 0
    assert "Rothfuss" in capsys.readouterr().out


def test_unknown_algorithm_is_one_line_listing_the_known_ones():
    with pytest.raises(ConfigError) as err:
        from_dict({"algo": {"name": "maml-sac"}})
    message = str(err.value)
    assert "\n" not in message and "algo.name" in message and all(n in message for n in NAMES)


@pytest.mark.parametrize("data,needle", [
    ({"algo": {"inner_lr": [0.1, 0.2], "inner_steps": 1}}, "one per inner step"),
    ({"algo": {"inner_lr": [0.1, -0.2], "inner_steps": 2}}, "algo.inner_lr"),
    ({"algo": {"name": "fomaml", "first_order": False}}, "fomaml"),
    ({"algo": {"name": "reptile", "inner_steps": 1}}, "reptile"),
    ({"algo": {"name": "promp", "clip": 1.5}}, "algo.clip"),
    ({"algo": {"name": "promp", "inner_steps": 0}}, "only maml-trpo and maml-vpg support, not promp"),
])
def test_contradictory_algorithm_settings_are_refused(data, needle):
    with pytest.raises(ConfigError, match=needle):
        from_dict(data)


def test_null_keys_take_the_algorithm_defaults_and_set_keys_win():
    algo = from_dict({"algo": {"name": "promp", "outer_lr": 0.01}}).algo
    assert (algo.outer_lr, algo.outer_epochs, algo.clip, algo.kl_coef, algo.first_order) == (0.01, 5, 0.3, 5e-4, False)
    assert from_dict({"algo": {"name": "fomaml"}}).algo.first_order is True


# ---- the batched update of every algorithm equals its per-task reference -------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_batched_update_equals_per_task_reference(name):
    K = 2 if name == "reptile" else 1
    policy, theta, supports, query = problem(K=K)
    algo = from_dict({"algo": {"name": name, "inner_steps": K, "inner_lr": 0.3}}).algo
    learners = {b: Learner(policy, theta, algo, torch.device("cpu"), task_chunk=2) for b in (True, False)}
    stats = {b: learner.meta_update(supports, query, batched=b) for b, learner in learners.items()}
    assert stats[True]["skipped"] == 0 and stats[True]["accepted"] == 1, stats[True]
    fast, slow = learners[True].theta, learners[False].theta
    assert set(fast) == set(slow)
    moved = max((fast[k] - theta[k]).abs().max().item() for k in theta)
    assert moved > 1e-4, "the update did not move θ"
    for k in fast:
        assert fast[k].dtype == DT
        assert torch.allclose(fast[k], slow[k], atol=1e-6, rtol=0), (k, (fast[k] - slow[k]).abs().max())


# ---- the parts -------------------------------------------------------------------------------------------------

def _toy(advantages, actions):
    """A Gaussian 'policy' whose mean is its output bias (no hidden layer, zero observations), std 1."""
    policy = GaussianMLPPolicy(obs_dim=1, out_dim=1, hidden_sizes=())
    n, B = advantages.shape
    batch = PolicyBatch(obs=torch.zeros(n, B, 1, dtype=DT), actions=actions.reshape(n, B, 1),
                        advantages=advantages, mask=torch.ones(n, B, dtype=DT), episodes=1)
    theta = {"layer0.weight": torch.zeros(1, 1, dtype=DT), "layer0.bias": torch.tensor([0.3], dtype=DT),
             "log_std": torch.zeros(1, dtype=DT)}
    return policy, theta, batch


def _bias_grad_and_hessian(objective, policy, theta, batch):
    b = theta["layer0.bias"].clone().requires_grad_()
    params = {**{k: v.unsqueeze(0) for k, v in theta.items()}, "layer0.bias": b.unsqueeze(0)}
    loss = objective(policy, params, batch).sum()
    (g,) = torch.autograd.grad(loss, b, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), b)
    return loss.detach(), g.detach(), h


def test_dice_magic_box_is_one_forward_and_passes_the_score_function_gradient():
    x = torch.tensor([0.7, -1.2], dtype=DT, requires_grad=True)
    box = magic_box(x * x)
    assert torch.equal(box.detach(), torch.ones(2, dtype=DT))
    (grad,) = torch.autograd.grad(box.sum(), x)
    assert torch.allclose(grad, 2 * x.detach())  # ∇𝔅(f) = 𝔅(f) ∇f = ∇f


def test_inner_objectives_share_the_policy_gradient_and_differ_in_curvature():
    gen = torch.Generator().manual_seed(3)
    policy, theta, batch = _toy(torch.randn(1, 8, generator=gen, dtype=DT), torch.randn(1, 8, generator=gen, dtype=DT))
    batch = dataclasses.replace(batch, episodes=2)
    a, A, mu = batch.actions[0, :, 0], batch.advantages[0], theta["layer0.bias"]
    results = {f.__name__: _bias_grad_and_hessian(f, policy, theta, batch) for f in (reinforce, lvc, dice)}
    # first derivative: −mean[(a − μ) A] for all three (σ = 1)
    for _, g, _ in results.values():
        assert torch.allclose(g, -((a - mu) * A).mean().reshape(1), atol=1e-12)
    # second derivatives in closed form: ∇²log π = −1, ∇log π = (a − μ)
    assert torch.allclose(results["reinforce"][2], A.mean().reshape(1), atol=1e-12)
    assert torch.allclose(results["lvc"][2], -(((a - mu) ** 2 - 1) * A).mean().reshape(1), atol=1e-12)
    # DiCE adds, per step t, the cross terms with the earlier steps s < t of the same episode
    s = (a - mu).reshape(2, 4)
    earlier = torch.cumsum(s, -1) - s
    cross = -(2 * s * earlier * A.reshape(2, 4)).mean()
    assert torch.allclose(results["dice"][2], results["lvc"][2] + cross, atol=1e-12)
    assert results["dice"][0].item() == 0.0  # 𝔅(c_t) − 𝔅(c_{t−1}) = 0 in the forward pass


def test_clipped_surrogate_stops_the_gradient_outside_the_clip_range():
    ratio = torch.tensor([0.5, 0.95, 1.05, 1.5, 0.5, 1.5], dtype=DT, requires_grad=True)
    adv = torch.tensor([1.0, 1.0, 1.0, 1.0, -1.0, -1.0], dtype=DT)
    (grad,) = torch.autograd.grad(clipped_surrogate(ratio, adv, 0.3).sum(), ratio)
    # A > 0: clipped above 1.3 only; A < 0: clipped below 0.7 only (the pessimistic bound keeps the other side)
    assert grad.tolist() == [-1.0, -1.0, -1.0, 0.0, 0.0, 1.0]


def test_meta_sgd_learned_step_sizes_receive_gradient_and_are_used():
    policy, theta, supports, query = problem()
    inner = InnerLoop(lrs=(0.2,), learned_lrs=True)
    meta = {**theta, **inner.init_learned_lrs(theta)}
    assert {k for k in meta if k.startswith("inner_lr.0.")} == {f"inner_lr.0.{k}" for k in theta}
    meta = {k: v.clone().requires_grad_() for k, v in meta.items()}
    loss = MetaObjective(policy, supports, query, inner)(meta)[0]
    grads = dict(zip(meta, torch.autograd.grad(loss, list(meta.values()))))
    for k in theta:
        assert grads[f"inner_lr.0.{k}"].abs().max() > 0, k
    # with every learned step size equal to 0.2 the adaptation is plain SGD with 0.2
    fixed = adapt_steps(policy, theta, supports, InnerLoop(lrs=(0.2,)))
    learned = adapt_steps(policy, meta, supports, inner)
    for k in theta:
        assert torch.allclose(fixed[k], learned[k].detach(), atol=1e-12)


def test_anil_inner_step_leaves_the_body_untouched():
    policy, theta, supports, _ = problem()
    head = policy.head_keys()
    assert head == ("layer1.weight", "layer1.bias", "log_std")
    phi = adapt_steps(policy, theta, supports, InnerLoop(lrs=(0.5,), keys=head))
    for k in theta:
        same = torch.equal(phi[k], theta[k].expand_as(phi[k]))
        assert same == (k not in head), k


def test_reptile_moves_theta_toward_the_mean_adapted_parameters():
    policy, theta, supports, _ = problem(K=2)
    phi = adapt_steps(policy, theta, supports, InnerLoop(lrs=(0.5,)), differentiable=False)
    target = {k: v.mean(0) for k, v in phi.items()}
    new = reptile_step(theta, phi, 0.25)
    for k in theta:
        assert torch.allclose(new[k], theta[k] + 0.25 * (target[k] - theta[k]), atol=1e-12)
    dist = lambda a: sum((a[k] - target[k]).pow(2).sum() for k in a).sqrt()  # noqa: E731
    assert dist(new) < 0.8 * dist(theta)
    assert all(torch.allclose(reptile_step(theta, phi, 1.0)[k], target[k]) for k in theta)


def test_emaml_credit_is_zero_when_the_query_return_does_not_depend_on_the_support():
    policy, theta, supports, query = problem()
    th = {k: v.clone().requires_grad_() for k, v in theta.items()}

    def grad(q, emaml):
        obj = MetaObjective(policy, supports, q, InnerLoop(lrs=(0.3,)), OuterLoss(emaml=emaml))
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(obj(th)[0], list(th.values()))])

    same_return = dataclasses.replace(query, task_return=torch.full((4,), 3.0, dtype=DT))
    assert torch.allclose(grad(same_return, True), grad(same_return, False), atol=1e-14)
    assert (grad(query, True) - grad(query, False)).abs().max() > 1e-3


def test_per_step_inner_lr_uses_the_first_then_the_second():
    policy, theta, supports, _ = problem(K=2)
    phi = adapt_steps(policy, theta, supports, InnerLoop(lrs=(0.5, 0.25)))
    step = adapt_steps(policy, theta, supports[:1], InnerLoop(lrs=(0.5,)))
    step = adapt(policy, step, supports[1], {k: 0.25 for k in theta}, create_graph=False)
    for k in theta:
        assert torch.allclose(phi[k], step[k], atol=1e-12)
    # more steps than values: the last value carries on
    assert InnerLoop(lrs=(0.5, 0.25)).step_sizes(theta, 5)["log_std"] == 0.25


def test_algorithm_outer_objective_text_names_its_parts():
    promp = ALGORITHMS["promp"]
    assert "clipped" in promp.outer_objective and "KL" in promp.outer_objective
    assert isinstance(promp, Algorithm) and ALGORITHMS["reptile"].describe()["outer_step"] == "reptile"
    assert AlgoConfig(inner_lr=(0.1, 0.05), inner_steps=2).inner_lrs == (0.1, 0.05)
