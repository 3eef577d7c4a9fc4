"""Policies evaluated with explicit parameters and a leading task dimension.

Parameters are a flat ``dict[str, Tensor]``. Shared parameters θ have no task dimension; per-task parameters
φ have a leading dimension ``n`` (one slice per task). The forward pass always takes per-task parameters
(``expand`` broadcasts θ without copying) and observations shaped ``[n, B, obs_dim]``, so one batched matmul
per layer serves all tasks — on the rollout workers and on the learner alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

Params = dict[str, torch.Tensor]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
}


def expand(params: Params, n: int) -> Params:
    """Broadcast shared parameters to ``n`` tasks (a view; gradients flow back summed over tasks)."""
    return {k: v.unsqueeze(0).expand(n, *v.shape) for k, v in params.items()}


def select(params: Params, index) -> Params:
    return {k: v[index] for k, v in params.items()}


def flat(tensors) -> torch.Tensor:
    """Parameters (or their gradients) as one vector, in the given order."""
    return torch.cat([t.reshape(-1) for t in tensors])


def unflat(vector: torch.Tensor, like: Params) -> Params:
    """The inverse of ``flat(like.values())``: views into ``vector`` shaped like ``like``."""
    out, i = {}, 0
    for k, v in like.items():
        out[k] = vector[i:i + v.numel()].view_as(v)
        i += v.numel()
    return out


def to_numpy(params: Params) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in params.items()}


def from_numpy(params: dict[str, np.ndarray], device: torch.device | str = "cpu") -> Params:
    return {k: torch.as_tensor(np.ascontiguousarray(v), device=device) for k, v in params.items()}


@dataclass(frozen=True)
class MLPPolicy:
    """A tanh/ReLU MLP head shared by the Gaussian and categorical policies."""

    obs_dim: int
    out_dim: int
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"

    def init_params(self, generator: torch.Generator) -> Params:
        """Xavier-uniform weights and zero biases (as in the MAML reference code)."""
        params: Params = {}
        sizes = (self.obs_dim, *self.hidden_sizes, self.out_dim)
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            w = (torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * bound
            params[f"layer{i}.weight"] = w
            params[f"layer{i}.bias"] = torch.zeros(fan_out)
        return params

    def head_keys(self) -> tuple[str, ...]:
        """The policy head: the last layer and, for a Gaussian, the log-std (what ANIL adapts)."""
        last = len(self.hidden_sizes)
        return (f"layer{last}.weight", f"layer{last}.bias") + (() if getattr(self, "discrete", True) else ("log_std",))

    def mlp(self, params: Params, obs: torch.Tensor) -> torch.Tensor:
        """``obs`` [n, B, obs_dim] with per-task ``params`` [n, ...] -> [n, B, out_dim]."""
        act = ACTIVATIONS[self.activation]
        n_layers = len(self.hidden_sizes) + 1
        h = obs
        for i in range(n_layers):
            h = torch.baddbmm(params[f"layer{i}.bias"].unsqueeze(1), h, params[f"layer{i}.weight"])
            if i < n_layers - 1:
                h = act(h)
        return h


@dataclass(frozen=True)
class GaussianMLPPolicy(MLPPolicy):
    """Diagonal Gaussian with an MLP mean and a state-independent log-std (one per action dimension)."""

    init_log_std: float = 0.0
    discrete = False

    def init_params(self, generator: torch.Generator) -> Params:
        params = super().init_params(generator)
        params["log_std"] = torch.full((self.out_dim,), float(self.init_log_std))
        return params

    def distribution(self, params: Params, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean [n, B, a], log_std [n, 1, a])."""
        return self.head(params, self.mlp(params, obs))

    def head(self, params: Params, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The distribution from an MLP output already computed (the learner's cached passes)."""
        return out, params["log_std"].unsqueeze(1)

    def log_prob(self, dist, actions: torch.Tensor) -> torch.Tensor:
        mean, log_std = dist
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def kl(self, old, new) -> torch.Tensor:
        """KL(old || new) per sample, [n, B]."""
        (m0, s0), (m1, s1) = old, new
        var0, var1 = torch.exp(2 * s0), torch.exp(2 * s1)
        return (s1 - s0 + (var0 + (m0 - m1).pow(2)) / (2 * var1) - 0.5).sum(-1)

    def entropy(self, dist) -> torch.Tensor:
        return (dist[1] + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)

    def noise_shape(self) -> tuple[int, ...]:
        return (self.out_dim,)

    def act(self, dist, noise: torch.Tensor) -> torch.Tensor:
        """Reparameterised sample from pre-drawn standard normal noise (keeps sampling seed-exact)."""
        mean, log_std = dist
        return mean + torch.exp(log_std) * noise


@dataclass(frozen=True)
class CategoricalMLPPolicy(MLPPolicy):
    """Categorical over ``out_dim`` actions. The distribution is its raw logits: the KL's gradient with respect
    to them is zero at old = new, which keeps the Gauss-Newton form of the KL Hessian exact."""

    discrete = True

    def distribution(self, params: Params, obs: torch.Tensor) -> torch.Tensor:
        return self.head(params, self.mlp(params, obs))

    def head(self, params: Params, out: torch.Tensor) -> torch.Tensor:
        return out

    def log_prob(self, dist, actions: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(dist, -1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def kl(self, old, new) -> torch.Tensor:
        old_logp, new_logp = torch.log_softmax(old, -1), torch.log_softmax(new, -1)
        return (old_logp.exp() * (old_logp - new_logp)).sum(-1)

    def entropy(self, dist) -> torch.Tensor:
        logp = torch.log_softmax(dist, -1)
        return -(logp.exp() * logp).sum(-1)

    def noise_shape(self) -> tuple[int, ...]:
        return (self.out_dim,)

    def act(self, dist, noise: torch.Tensor) -> torch.Tensor:
        """Gumbel-max sample; ``noise`` is standard Gumbel noise drawn by the sampler."""
        return torch.argmax(dist + noise, dim=-1)


Policy = GaussianMLPPolicy | CategoricalMLPPolicy


def make_policy(observation_space: gym.Space, action_space: gym.Space, hidden_sizes: tuple[int, ...] = (64, 64),
                activation: str = "tanh", init_log_std: float = 0.0) -> Policy:
    """The policy that fits a family's spaces: Gaussian for Box actions, categorical for Discrete."""
    if not isinstance(observation_space, gym.spaces.Box):
        raise TypeError(f"unsupported observation space {observation_space}; "
                        "allowed: Box (one-hot encode discrete states)")
    obs_dim = int(np.prod(observation_space.shape))
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalMLPPolicy(obs_dim, int(action_space.n), tuple(hidden_sizes), activation)
    if isinstance(action_space, gym.spaces.Box):
        return GaussianMLPPolicy(obs_dim, int(np.prod(action_space.shape)), tuple(hidden_sizes), activation,
                                 init_log_std)
    raise TypeError(f"unsupported action space {action_space}; allowed: Box, Discrete")
