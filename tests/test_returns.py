"""returns.py: discounting, GAE, the linear feature baseline and normalisation against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarl.returns import (
    advantages,
    baseline_features,
    discounted_returns,
    fit_linear_baseline,
    gae,
    linear_baseline_values,
    normalize,
)


def t64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def test_discounted_returns_hand_computed():
    rewards = t64([[1.0, 2.0, 3.0, 4.0]])
    mask = torch.ones_like(rewards)
    g = 0.5
    expected = [1 + g * 2 + g**2 * 3 + g**3 * 4, 2 + g * 3 + g**2 * 4, 3 + g * 4, 4.0]
    assert torch.allclose(discounted_returns(rewards, mask, g), t64([expected]))


def test_discounted_returns_early_termination_ignores_steps_after_the_end():
    # Episode 0 ends after 2 steps (garbage rewards after it), episode 1 runs the full horizon.
    rewards = t64([[[1.0, 2.0, 100.0, -50.0], [1.0, 1.0, 1.0, 1.0]]])
    mask = t64([[[1, 1, 0, 0], [1, 1, 1, 1]]])
    g = 0.9
    expected = t64([[[1 + g * 2, 2.0, 0.0, 0.0], [1 + g + g**2 + g**3, 1 + g + g**2, 1 + g, 1.0]]])
    out = discounted_returns(rewards, mask, g)
    assert out.shape == rewards.shape
    assert torch.allclose(out, expected)


def _gae_loop(r, v, m, gamma, lam):
    """Textbook backward recursion, one episode at a time."""
    T = len(r)
    adv = np.zeros(T)
    last = 0.0
    for t in reversed(range(T)):
        if not m[t]:
            last = 0.0
            continue
        next_v = v[t + 1] * m[t + 1] if t + 1 < T else 0.0
        delta = r[t] + gamma * next_v - v[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv


def test_gae_hand_computed():
    r, v = t64([[1.0, 2.0, 3.0]]), t64([[0.5, 1.0, 1.5]])
    gamma, lam = 0.9, 0.8
    # deltas: 1 + .9*1 - .5 = 1.4 ; 2 + .9*1.5 - 1 = 2.35 ; 3 - 1.5 = 1.5
    expected = t64([[1.4 + 0.72 * (2.35 + 0.72 * 1.5), 2.35 + 0.72 * 1.5, 1.5]])
    assert torch.allclose(gae(r, v, torch.ones_like(r), gamma, lam), expected)
    # Terminated after 2 steps: the value after the last valid step is 0 and step 2 is masked out.
    mask = t64([[1, 1, 0]])
    r2 = t64([[1.0, 2.0, 99.0]])
    expected2 = t64([[1.4 + 0.72 * 1.0, 2.0 - 1.0, 0.0]])
    assert torch.allclose(gae(r2, v, mask, gamma, lam), expected2)


def test_gae_matches_backward_recursion_on_random_batches():
    rng = np.random.default_rng(0)
    n, E, T = 3, 4, 7
    r, v = rng.normal(size=(n, E, T)), rng.normal(size=(n, E, T))
    lengths = rng.integers(1, T + 1, size=(n, E))
    m = (np.arange(T) < lengths[..., None]).astype(float)
    out = gae(t64(r), t64(v), t64(m), 0.95, 0.9).numpy()
    for i in range(n):
        for e in range(E):
            np.testing.assert_allclose(out[i, e], _gae_loop(r[i, e], v[i, e], m[i, e], 0.95, 0.9), atol=1e-12)


def test_gae_lambda_one_is_returns_minus_values():
    rng = np.random.default_rng(1)
    r, v = t64(rng.normal(size=(2, 3, 6))), t64(rng.normal(size=(2, 3, 6)))
    m = t64((np.arange(6) < np.array([[6, 4, 1], [2, 6, 5]])[..., None]).astype(float))
    assert torch.allclose(gae(r, v, m, 0.9, 1.0), (discounted_returns(r, m, 0.9) - v) * m, atol=1e-12)


def test_fit_linear_baseline_recovers_exact_coefficients():
    gen = torch.Generator().manual_seed(0)
    n, E, T, F = 3, 5, 8, 4
    X = torch.randn(n, E, T, F, generator=gen, dtype=torch.float64)
    coeffs = torch.randn(n, F, generator=gen, dtype=torch.float64)
    y = torch.einsum("netf,nf->net", X, coeffs)
    mask = torch.ones(n, E, T, dtype=torch.float64)
    fit = fit_linear_baseline(X, y, mask)
    assert fit.shape == (n, F)
    assert torch.allclose(fit, coeffs, atol=1e-5)


def test_linear_baseline_predicts_returns_that_are_linear_in_its_features():
    gen = torch.Generator().manual_seed(1)
    n, E, T, d = 2, 6, 20, 2
    obs = torch.rand(n, E, T, d, generator=gen, dtype=torch.float64)
    lengths = torch.tensor([[20, 20, 13, 20, 7, 20], [20, 3, 20, 20, 20, 11]])
    mask = (torch.arange(T) < lengths[..., None]).double()
    feats = baseline_features(obs, mask)
    assert feats.shape == (n, E, T, 2 * d + 4)
    assert torch.all(feats[mask == 0] == 0)
    coeffs = torch.randn(n, feats.shape[-1], generator=gen, dtype=torch.float64)
    returns = torch.einsum("netf,nf->net", feats, coeffs)
    returns = returns + 1e3 * (1 - mask)  # garbage after the end must not matter
    values = linear_baseline_values(obs, returns, mask)
    # the 1e-5 ridge term biases the poorly scaled t^2, t^3 coefficients slightly: predictions match to ~1e-4
    assert torch.allclose(values, returns * mask, atol=2e-3)
    assert torch.all(values[mask == 0] == 0)


def test_linear_baseline_fits_each_task_independently():
    gen = torch.Generator().manual_seed(2)
    n, E, T = 4, 3, 10
    obs = torch.randn(n, E, T, 2, generator=gen, dtype=torch.float64)
    returns = torch.randn(n, E, T, generator=gen, dtype=torch.float64) * torch.arange(1, n + 1).view(n, 1, 1)
    mask = torch.ones(n, E, T, dtype=torch.float64)
    mask[1, 2, 5:] = 0
    feats = baseline_features(obs, mask)
    batched = fit_linear_baseline(feats, returns, mask)
    alone = torch.cat([fit_linear_baseline(feats[i:i + 1], returns[i:i + 1], mask[i:i + 1]) for i in range(n)])
    assert torch.allclose(batched, alone, atol=1e-10)
    # and changing another task's data leaves task 0's fit untouched
    returns2 = returns.clone()
    returns2[1:] *= -7
    assert torch.allclose(fit_linear_baseline(feats, returns2, mask)[0], batched[0], atol=1e-10)
    assert not torch.allclose(fit_linear_baseline(feats, returns2, mask)[1], batched[1])


def test_normalize_per_task_over_valid_entries():
    rng = np.random.default_rng(3)
    x = rng.normal(loc=[[[5.0]], [[-2.0]]], scale=[[[3.0]], [[0.5]]], size=(2, 4, 6))
    m = np.ones_like(x)
    m[0, 1, 3:] = 0
    m[1, :, 5] = 0
    out = normalize(t64(x), t64(m)).numpy()
    for i in range(2):
        valid = x[i][m[i] == 1]
        expected = (valid - valid.mean()) / (valid.std() + 1e-8)
        np.testing.assert_allclose(out[i][m[i] == 1], expected, atol=1e-10)
        assert np.all(out[i][m[i] == 0] == 0)
        assert abs(out[i][m[i] == 1].mean()) < 1e-10 and abs(out[i][m[i] == 1].std() - 1) < 1e-6


@pytest.mark.parametrize("norm", [True, False])
def test_advantages_shape_masking_and_normalisation(norm):
    gen = torch.Generator().manual_seed(4)
    n, E, T = 2, 5, 12
    obs = torch.randn(n, E, T, 2, generator=gen)
    rewards = torch.randn(n, E, T, generator=gen)
    mask = torch.ones(n, E, T)
    mask[0, 0, 6:] = 0
    adv = advantages(obs, rewards, mask, 0.99, 0.95, normalize_advantages=norm)
    assert adv.shape == (n, E, T) and torch.isfinite(adv).all()
    assert torch.all(adv[mask == 0] == 0)
    if norm:
        for i in range(n):
            valid = adv[i][mask[i] == 1]
            assert abs(valid.mean().item()) < 1e-5 and abs(valid.std(unbiased=False).item() - 1) < 1e-4
