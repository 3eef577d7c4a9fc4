"""policies.py: distributions against torch.distributions, task-batched forward, expand's gradient."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal, kl_divergence

from metarl.policies import CategoricalMLPPolicy, GaussianMLPPolicy, expand, from_numpy, make_policy, select, to_numpy


def _per_task_params(policy, n, seed=0, dtype=torch.float64):
    """n different random parameter sets stacked on a leading task dimension."""
    gens = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    sets = [{k: v.to(dtype) for k, v in policy.init_params(g).items()} for g in gens]
    stacked = {k: torch.stack([s[k] for s in sets]) for k in sets[0]}
    gen = torch.Generator().manual_seed(seed + 100)
    for k in stacked:  # non-zero biases and log-stds so that every parameter matters
        if "bias" in k or k == "log_std":
            stacked[k] = stacked[k] + 0.3 * torch.randn(stacked[k].shape, generator=gen, dtype=dtype)
    return stacked


def _reference_mlp(params_i, obs_i, n_layers, act):
    """Plain torch MLP for a single task: obs [B, d] -> [B, out]."""
    h = obs_i
    for j in range(n_layers):
        h = h @ params_i[f"layer{j}.weight"] + params_i[f"layer{j}.bias"]
        if j < n_layers - 1:
            h = act(h)
    return h


def test_gaussian_log_prob_kl_entropy_match_torch_distributions():
    policy = GaussianMLPPolicy(obs_dim=3, out_dim=2, hidden_sizes=(5,))
    n, B = 3, 7
    p0, p1 = _per_task_params(policy, n, 0), _per_task_params(policy, n, 10)
    obs = torch.randn(n, B, 3, dtype=torch.float64)
    actions = torch.randn(n, B, 2, dtype=torch.float64)
    d0, d1 = policy.distribution(p0, obs), policy.distribution(p1, obs)
    ref0 = Normal(d0[0], d0[1].exp().expand_as(d0[0]))
    ref1 = Normal(d1[0], d1[1].exp().expand_as(d1[0]))
    assert policy.log_prob(d0, actions).shape == (n, B)
    assert torch.allclose(policy.log_prob(d0, actions), ref0.log_prob(actions).sum(-1), atol=1e-12)
    assert torch.allclose(policy.kl(d0, d1), kl_divergence(ref0, ref1).sum(-1), atol=1e-12)
    assert torch.all(policy.kl(d0, d1) > 0)
    assert torch.allclose(policy.kl(d0, d0), torch.zeros(n, B, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(policy.entropy(d0).expand(n, B), ref0.entropy().sum(-1), atol=1e-12)


def test_categorical_log_prob_kl_entropy_match_torch_distributions():
    policy = CategoricalMLPPolicy(obs_dim=4, out_dim=5, hidden_sizes=(6, 6), activation="relu")
    n, B = 2, 9
    p0, p1 = _per_task_params(policy, n, 0), _per_task_params(policy, n, 5)
    obs = torch.randn(n, B, 4, dtype=torch.float64)
    actions = torch.randint(0, 5, (n, B))
    d0, d1 = policy.distribution(p0, obs), policy.distribution(p1, obs)
    logits0 = _reference_mlp(select(p0, 0), obs[0], 3, torch.relu)
    ref0, ref1 = Categorical(logits=policy.mlp(p0, obs)), Categorical(logits=policy.mlp(p1, obs))
    assert torch.allclose(ref0.logits[0], torch.log_softmax(logits0, -1), atol=1e-12)
    assert torch.allclose(policy.log_prob(d0, actions), ref0.log_prob(actions), atol=1e-12)
    assert torch.allclose(policy.kl(d0, d1), kl_divergence(ref0, ref1), atol=1e-12)
    assert torch.allclose(policy.entropy(d0), ref0.entropy(), atol=1e-12)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_task_batched_forward_equals_per_task_forward(activation):
    policy = GaussianMLPPolicy(obs_dim=3, out_dim=2, hidden_sizes=(8, 4), activation=activation)
    n, B = 4, 6
    params = _per_task_params(policy, n, 3)
    obs = torch.randn(n, B, 3, dtype=torch.float64)
    mean, log_std = policy.distribution(params, obs)
    assert mean.shape == (n, B, 2) and log_std.shape == (n, 1, 2)
    act = {"tanh": torch.tanh, "relu": torch.relu}[activation]
    for i in range(n):
        single_mean, single_log_std = policy.distribution(select(params, slice(i, i + 1)), obs[i:i + 1])
        assert torch.allclose(mean[i], single_mean[0], atol=1e-12)
        assert torch.allclose(log_std[i], single_log_std[0])
        assert torch.allclose(mean[i], _reference_mlp(select(params, i), obs[i], 3, act), atol=1e-12)
    # tasks really use their own parameters: outputs differ across tasks on the same observations
    same_obs = obs[:1].expand(n, B, 3)
    m2, _ = policy.distribution(params, same_obs)
    assert not torch.allclose(m2[0], m2[1])


def test_expand_gradients_are_summed_over_tasks():
    policy = GaussianMLPPolicy(obs_dim=2, out_dim=2, hidden_sizes=(5,))
    theta = {k: v.double().requires_grad_() for k, v in policy.init_params(torch.Generator().manual_seed(0)).items()}
    n, B = 3, 4
    obs = torch.randn(n, B, 2, dtype=torch.float64)
    actions = torch.randn(n, B, 2, dtype=torch.float64)
    weights = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    phi = expand(theta, n)
    assert all(phi[k].shape == (n, *theta[k].shape) for k in theta)
    loss = (policy.log_prob(policy.distribution(phi, obs), actions).sum(-1) * weights).sum()
    grads = torch.autograd.grad(loss, list(theta.values()))
    per_task = [torch.zeros_like(v) for v in theta.values()]
    for i in range(n):
        li = policy.log_prob(policy.distribution(expand(theta, 1), obs[i:i + 1]), actions[i:i + 1]).sum() * weights[i]
        for acc, g in zip(per_task, torch.autograd.grad(li, list(theta.values()))):
            acc += g
    for g, ref in zip(grads, per_task):
        assert torch.allclose(g, ref, atol=1e-12)
        assert g.abs().sum() > 0


def test_act_is_reparameterised_gaussian_and_gumbel_max():
    g = GaussianMLPPolicy(obs_dim=2, out_dim=2, hidden_sizes=(3,))
    mean, log_std = torch.randn(2, 5, 2), torch.tensor([[[-1.0, 0.5]]]).expand(2, 1, 2)
    noise = torch.randn(2, 5, 2)
    assert torch.allclose(g.act((mean, log_std), noise), mean + log_std.exp() * noise)
    c = CategoricalMLPPolicy(obs_dim=2, out_dim=3, hidden_sizes=(3,))
    logp = torch.log_softmax(torch.tensor([[[0.0, 5.0, 0.0]]]), -1)
    assert c.act(logp, torch.zeros(1, 1, 3)).item() == 1
    assert c.act(logp, torch.tensor([[[0.0, 0.0, 10.0]]])).item() == 2
    # Gumbel-max samples follow the categorical's probabilities
    rng = np.random.default_rng(0)
    probs = torch.tensor([0.2, 0.5, 0.3])
    gumbel = torch.from_numpy(rng.gumbel(size=(1, 20000, 3))).float()
    samples = c.act(probs.log().view(1, 1, 3), gumbel)
    freq = torch.bincount(samples.reshape(-1), minlength=3).float() / samples.numel()
    assert torch.allclose(freq, probs, atol=0.02)


def test_make_policy_and_init_params():
    box = gym.spaces.Box(-1, 1, shape=(3,), dtype=np.float32)
    gp = make_policy(box, gym.spaces.Box(-1, 1, shape=(2,)), hidden_sizes=(4, 4), init_log_std=-0.5)
    assert isinstance(gp, GaussianMLPPolicy) and not gp.discrete
    params = gp.init_params(torch.Generator().manual_seed(0))
    assert set(params) == {"layer0.weight", "layer0.bias", "layer1.weight", "layer1.bias", "layer2.weight",
                           "layer2.bias", "log_std"}
    assert params["layer0.weight"].shape == (3, 4) and params["layer2.weight"].shape == (4, 2)
    assert torch.all(params["log_std"] == -0.5) and torch.all(params["layer1.bias"] == 0)
    same = gp.init_params(torch.Generator().manual_seed(0))
    assert all(torch.equal(params[k], same[k]) for k in params)
    cp = make_policy(box, gym.spaces.Discrete(4))
    assert isinstance(cp, CategoricalMLPPolicy) and cp.discrete and cp.out_dim == 4
    with pytest.raises(TypeError):
        make_policy(gym.spaces.Discrete(3), gym.spaces.Discrete(2))
    back = from_numpy(to_numpy(params))
    assert all(torch.equal(back[k], params[k]) for k in params)
