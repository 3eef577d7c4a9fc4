"""Hand-derived meta-gradient and KL Hessian-vector products of MAML-TRPO for task-batched MLP policies.

This is the learner's fast path. Through K inner steps φ_k = φ_{k−1} − α ∇L_k(φ_{k−1}), the Jacobian of φ_i(θ) is
A_i = (I − α H_iK) ⋯ (I − α H_i1), with H_ik the (symmetric) Hessian of task i's support loss at φ_{i,k−1}. So

    ∇θ surrogate = Σ_i A_iᵀ g_i      and      H_KL v = Σ_i A_iᵀ G_i A_i v,

where g_i is the query surrogate's gradient at φ_i and G_i the Gauss-Newton matrix of the query KL (exact at
old = new, see trust_region.kl_hvp). Each H_ik·u is one R-operator pass (Pearlmutter 1994) forward and backward
through the MLP, reusing activations and back-propagated errors cached once per update; each G_i·u is one
forward-tangent and one backward pass. Autograd computes the same numbers by differentiating its own backward
graph (trust_region.kl_hvp and MetaObjective, the references the tests compare against) with the same number of
large matmuls but more elementwise passes over [tasks, samples, hidden] tensors; docs/performance.md has the
measured difference (1.0-1.6x per TRPO step on a CPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from metarl.batch import PolicyBatch
from metarl.policies import Params, Policy, expand, flat, unflat

Tensor = torch.Tensor


@dataclass
class _Pass:
    """One MLP pass over a batch at per-task parameters, with what R-operator products need from it."""

    params: Params
    inputs: list[Tensor]  # input of layer l ([n, B, in_l]; the observations for l = 0)
    slopes: list[Tensor]  # act'(z_l) of each hidden layer
    out: Tensor  # network output [n, B, out]
    deltas: list[Tensor] = field(default_factory=list)  # ∂loss/∂z_l, set by _backward(store=True)
    # (δ_{l+1} W_{l+1}ᵀ) ⊙ act''(z_l) per hidden layer, None for ReLU (act'' = 0); for tanh act'' = −2 h act',
    # so this is −2 h_l ⊙ δ_l. Set by _backward(store=True).
    second: list[Tensor | None] = field(default_factory=list)


def _tanh(x: Tensor) -> Tensor:
    """tanh(x) as 2σ(2x) − 1 in float32 on a CPU, where PyTorch's tanh ran 3.4× slower than these three passes
    (0.88 against 0.26 ms for a [4, 2000, 64] block on the development machine's AVX-512 CPU; docs/performance.md)
    and the tanh layers were the update's largest elementwise cost; absolute error ≤ 2e-7 against ``torch.tanh``.
    ``torch.tanh`` on CUDA (one fused kernel) and in float64, the precision in which the tests compare this path
    with autograd's: there an ill-conditioned Fisher turns a one-ulp difference into 1e-5 of the TRPO step.
    The policy's own forward (rollouts, autograd) keeps ``torch.tanh``."""
    if x.is_cuda or x.dtype != torch.float32:
        return torch.tanh(x)
    return torch.sigmoid(2 * x) * 2 - 1


def _layers(policy: Policy) -> int:
    return len(policy.hidden_sizes) + 1


def _forward(policy: Policy, params: Params, obs: Tensor, with_slopes: bool = True) -> _Pass:
    """One pass at per-task ``params``; ``with_slopes=False`` skips act'(z), which only backward passes need."""
    if policy.activation not in ("tanh", "relu"):
        raise ValueError(f"no analytic curvature for activation {policy.activation!r}; allowed: tanh, relu")
    inputs, slopes = [], []
    h = obs
    L = _layers(policy)
    for j in range(L):
        inputs.append(h)
        z = torch.baddbmm(params[f"layer{j}.bias"].unsqueeze(1), h, params[f"layer{j}.weight"])
        if j == L - 1:
            return _Pass(params, inputs, slopes, z)
        h = _tanh(z) if policy.activation == "tanh" else torch.relu(z)
        if with_slopes:
            slopes.append(torch.addcmul(h.new_ones(()), h, h, value=-1) if policy.activation == "tanh"
                          else (z > 0).to(z.dtype))
    raise AssertionError("unreachable")


def _backward(policy: Policy, p: _Pass, g_out: Tensor, store: bool = False) -> Params:
    """Gradients of the weights and biases from the output gradient; ``store`` keeps what R-passes need."""
    grads: Params = {}
    delta = g_out
    L = _layers(policy)
    deltas: list[Tensor] = [g_out] * L
    second: list[Tensor | None] = [None] * (L - 1)
    for j in reversed(range(L)):
        deltas[j] = delta
        grads[f"layer{j}.weight"] = torch.bmm(p.inputs[j].transpose(1, 2), delta)
        grads[f"layer{j}.bias"] = delta.sum(1)
        if j > 0:
            delta = torch.bmm(delta, p.params[f"layer{j}.weight"].transpose(1, 2)) * p.slopes[j - 1]
            if store and policy.activation == "tanh":
                second[j - 1] = -2 * p.inputs[j] * delta
    if store:
        p.deltas, p.second = deltas, second
    return grads


def _r_forward(policy: Policy, p: _Pass, v: Params) -> tuple[list[Tensor], list[Tensor]]:
    """Tangents ż_l of every layer's pre-activation, and ḣ_l of every hidden output, in direction ``v``."""
    zdots, hdots = [], []
    for j in range(_layers(policy)):
        zd = torch.baddbmm(v[f"layer{j}.bias"].unsqueeze(1), p.inputs[j], v[f"layer{j}.weight"])
        if hdots:
            zd = zd.baddbmm_(hdots[-1], p.params[f"layer{j}.weight"])
        zdots.append(zd)
        if j < _layers(policy) - 1:
            hdots.append(zd * p.slopes[j])
    return zdots, hdots


def _r_backward(policy: Policy, p: _Pass, v: Params, zdots: list[Tensor], hdots: list[Tensor],
                gdot_out: Tensor) -> Params:
    """Tangent of _backward's gradients in direction ``v``, given the output-gradient tangent ``gdot_out``."""
    out: Params = {}
    dd = gdot_out
    for j in reversed(range(_layers(policy))):
        gw = torch.bmm(p.inputs[j].transpose(1, 2), dd)
        if j > 0:
            gw = gw.baddbmm_(hdots[j - 1].transpose(1, 2), p.deltas[j])
        out[f"layer{j}.weight"], out[f"layer{j}.bias"] = gw, dd.sum(1)
        if j > 0:
            pre = torch.bmm(dd, p.params[f"layer{j}.weight"].transpose(1, 2))
            pre = pre.baddbmm_(p.deltas[j], v[f"layer{j}.weight"].transpose(1, 2))
            dd = pre * p.slopes[j - 1]
            if p.second[j - 1] is not None:
                dd = dd.addcmul_(p.second[j - 1], zdots[j - 1])
    return out


class _PolicyGradientHead:
    """Output-space gradient and its tangent for −Σ_b w_b log π(a_b | o_b), per task (w already holds the mask
    and the 1/count of the task mean). At old = new this is also the surrogate's gradient, since ∇ratio = ∇log π."""

    def __init__(self, policy: Policy, params: Params, out: Tensor, actions: Tensor, weights: Tensor):
        self.discrete = policy.discrete
        w = weights.unsqueeze(-1)
        if self.discrete:
            probs = torch.softmax(out, -1)
            onehot = torch.zeros_like(out).scatter_(-1, actions.long().unsqueeze(-1), 1.0)
            self.g_out, self.g_log_std = w * (probs - onehot), None
            self._wp, self._p = w * probs, probs
        else:
            inv_var = torch.exp(-2 * params["log_std"]).unsqueeze(1)
            diff = actions - out
            self._wd = w * diff * inv_var  # w (a − μ) / σ²
            self._wv = w * inv_var
            self._wdd = (self._wd * diff).sum(1)  # Σ_b w (a − μ)² / σ², [n, a]
            self.g_out = -self._wd
            self.g_log_std = w.sum(1) - self._wdd

    def tangent(self, out_dot: Tensor, log_std_dot: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.discrete:
            return self._wp * out_dot - self._wp * (self._p * out_dot).sum(-1, keepdim=True), None
        sd = log_std_dot.unsqueeze(1)
        gdot = torch.addcmul(self._wv * out_dot, self._wd, sd, value=2.0)
        return gdot, 2 * (self._wd * out_dot).sum(1) + 2 * self._wdd * log_std_dot


def every_nth_sample(batch: PolicyBatch, n: int) -> PolicyBatch:
    """Every ``n``-th sample of each task (OpenAI Baselines' TRPO takes ``[::5]`` for its Fisher-vector products)."""
    if n <= 1:
        return batch
    return PolicyBatch(batch.obs[:, ::n].contiguous(), batch.actions[:, ::n].contiguous(),
                       batch.advantages[:, ::n].contiguous(), batch.mask[:, ::n].contiguous())


class _TaskBlock:
    """Caches of one block of tasks at θ_old: a pass per support batch at φ_{k−1} and one over the query at φ_K.
    ``scale`` is 1 / (tasks in the whole meta-batch): the KL and the surrogate are means over all tasks.
    ``fvp_subsample`` > 1 takes the KL's products over every n-th sample only: G_i on the query and the Jacobians
    A_i = Π_k (I − α_k H_k) with each H_k on the support (own passes at the exact φ_{k−1}); the adaptation, the
    meta-gradient and the line search keep all samples."""

    def __init__(self, policy: Policy, theta: Params, supports: list[PolicyBatch], query: PolicyBatch,
                 lrs: tuple[float, ...], first_order: bool, scale: float, fvp_subsample: int = 1):
        self.policy = policy
        self.lrs = [lrs[min(k, len(lrs) - 1)] for k in range(len(supports))]  # step k's inner step size
        self.supports, self.query_batch = supports, query
        phi = {k: v.detach() for k, v in expand(theta, query.obs.shape[0]).items()}
        self.steps: list[tuple[_Pass, _PolicyGradientHead, float]] = []  # the meta-gradient's chain
        # The KL products' chain: the same passes, or their own on every n-th support sample.
        self.fvp_steps = [] if fvp_subsample > 1 else self.steps
        for batch, lr in zip(supports, self.lrs):
            prev = phi
            p, head, phi = self._inner_step(prev, batch, lr, store=not first_order)
            if not first_order:
                self.steps.append((p, head, lr))
                if fvp_subsample > 1:
                    p_sub, head_sub, _ = self._inner_step(prev, every_nth_sample(batch, fvp_subsample), lr, store=True)
                    self.fvp_steps.append((p_sub, head_sub, lr))
        self.phi = phi
        self.query = _forward(policy, phi, query.obs)
        self.kl_weights = query.mask / query.mask.sum(-1, keepdim=True).clamp(min=1) * scale
        self.surrogate = _PolicyGradientHead(policy, phi, self.query.out, query.actions,
                                             query.advantages * self.kl_weights)
        self.old_dist = policy.head(phi, self.query.out)
        self.old_logp = policy.log_prob(self.old_dist, query.actions)
        if fvp_subsample > 1:
            sub = every_nth_sample(query, fvp_subsample)
            self.fvp_query = _forward(policy, phi, sub.obs)
            self.fvp_weights = sub.mask / sub.mask.sum(-1, keepdim=True).clamp(min=1) * scale
        else:
            self.fvp_query, self.fvp_weights = self.query, self.kl_weights
        if policy.discrete:
            self.probs = torch.softmax(self.fvp_query.out, -1)
        else:
            self.inv_var = torch.exp(-2 * phi["log_std"]).unsqueeze(1)

    def _inner_step(self, phi: Params, batch: PolicyBatch, lr: float, store: bool
                    ) -> tuple[_Pass, _PolicyGradientHead, Params]:
        """One inner policy-gradient step for this block's tasks, by hand: (pass, loss head, next φ)."""
        weights = batch.advantages * batch.mask / batch.mask.sum(-1, keepdim=True).clamp(min=1)
        p = _forward(self.policy, phi, batch.obs)
        head = _PolicyGradientHead(self.policy, phi, p.out, batch.actions, weights)
        grads = _with_log_std(_backward(self.policy, p, head.g_out, store=store), head.g_log_std)
        return p, head, {k: v - lr * grads[k] for k, v in phi.items()}

    def evaluate(self, theta: Params) -> tuple[Tensor, Tensor]:
        """(surrogate, KL(π_old ‖ π_φ(θ))) of this block's tasks at another θ, weighted 1/n (the line search)."""
        phi = expand(theta, self.query.out.shape[0])
        for batch, lr in zip(self.supports, self.lrs):
            phi = self._inner_step(phi, batch, lr, store=False)[2]
        dist = self.policy.head(phi, _forward(self.policy, phi, self.query_batch.obs, with_slopes=False).out)
        ratio = torch.exp(self.policy.log_prob(dist, self.query_batch.actions) - self.old_logp)
        loss = -(ratio * self.query_batch.advantages * self.kl_weights).sum()
        return loss, (self.policy.kl(self.old_dist, dist) * self.kl_weights).sum()

    def _support_hvp(self, p: _Pass, head: _PolicyGradientHead, u: Params) -> Params:
        """H_k u for every task: the tangent of the support-loss gradient at φ_{k−1}."""
        zdots, hdots = _r_forward(self.policy, p, u)
        gdot_out, gdot_log_std = head.tangent(zdots[-1], u.get("log_std"))
        return _with_log_std(_r_backward(self.policy, p, u, zdots, hdots, gdot_out), gdot_log_std)

    def transpose_chain(self, w: Params, steps: list[tuple[_Pass, _PolicyGradientHead, float]]) -> Params:
        """Σ_i A_iᵀ w_i over this block's tasks, A_i the product of ``steps``' (I − α_k H_k)."""
        for p, head, lr in reversed(steps):
            hw = self._support_hvp(p, head, w)
            w = {k: v - lr * hw[k] for k, v in w.items()}
        return {k: v.sum(0) for k, v in w.items()}

    def gradient(self) -> Params:
        g = _backward(self.policy, self.query, self.surrogate.g_out)
        return self.transpose_chain(_with_log_std(g, self.surrogate.g_log_std), self.steps)

    def kl_hvp(self, v: Params) -> Params:
        n = self.query.out.shape[0]
        u = {k: t.unsqueeze(0).expand(n, *t.shape) for k, t in v.items()}
        for p, head, lr in self.fvp_steps:
            hu = self._support_hvp(p, head, u)
            u = {k: x - lr * hu[k] for k, x in u.items()}
        out_dot = _r_forward(self.policy, self.fvp_query, u)[0][-1]
        w = self.fvp_weights.unsqueeze(-1)
        if self.policy.discrete:  # ∂²KL/∂logits² = diag(p) − p pᵀ
            m_out = w * self.probs * (out_dot - (self.probs * out_dot).sum(-1, keepdim=True))
            g = _backward(self.policy, self.fvp_query, m_out)
        else:  # ∂²KL/∂μ² = 1/σ², ∂²KL/∂(log σ)² = 2, no cross term
            g = _backward(self.policy, self.fvp_query, w * self.inv_var * out_dot)
            g["log_std"] = 2 * u["log_std"] * self.fvp_weights.sum(-1, keepdim=True)
        return self.transpose_chain(g, self.fvp_steps)


def _with_log_std(grads: Params, g_log_std: Tensor | None) -> Params:
    if g_log_std is not None:
        grads["log_std"] = g_log_std
    return grads


class MetaCurvature:
    """The surrogate's gradient and the KL's Hessian-vector products at θ_old for a whole meta-batch.

    ``task_chunk`` > 0 caches and evaluates blocks of that many tasks one after another, so that each block's
    tensors stay in cache on a CPU (see learner.auto_task_chunk); 0 takes all tasks at once (GPU).
    ``fvp_subsample`` = n > 1 computes the KL products on every n-th support and query sample (standard TRPO
    practice, see docs/performance.md); the adaptation and the meta-gradient stay exact."""

    @torch.no_grad()
    def __init__(self, policy: Policy, theta: Params, supports: list[PolicyBatch], query: PolicyBatch,
                 inner_lr: float | Sequence[float], first_order: bool = False, task_chunk: int = 0,
                 fvp_subsample: int = 1):
        lrs = (float(inner_lr),) if isinstance(inner_lr, (int, float)) else tuple(inner_lr)
        self.theta = {k: v.detach() for k, v in theta.items()}
        n = query.obs.shape[0]
        size = task_chunk if 0 < task_chunk < n else n
        self.blocks = [_TaskBlock(policy, self.theta, [b.tasks(slice(lo, lo + size)) for b in supports],
                                  query.tasks(slice(lo, lo + size)), lrs, first_order, 1.0 / n, fvp_subsample)
                       for lo in range(0, n, size)]

    @property
    def phi(self) -> Params:
        """The adapted per-task parameters φ_K (for tests)."""
        return {k: torch.cat([b.phi[k] for b in self.blocks]) for k in self.theta}

    def _total(self, per_block) -> Tensor:
        parts = [per_block(b) for b in self.blocks]
        return flat(sum(p[k] for p in parts) for k in self.theta)

    @torch.no_grad()
    def loss(self) -> Tensor:
        """The surrogate −mean_i E[π_φi / π_old · A] at θ_old (where the ratio is 1)."""
        return -sum((b.query_batch.advantages * b.kl_weights).sum() for b in self.blocks)

    @torch.no_grad()
    def evaluate(self, theta: Params) -> tuple[Tensor, Tensor]:
        """(surrogate, mean KL to the pre-update query policy) at ``theta``: forward passes only."""
        parts = [b.evaluate(theta) for b in self.blocks]
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    @torch.no_grad()
    def gradient(self) -> Tensor:
        """∇θ of the surrogate at θ_old, flattened in θ's order."""
        return self._total(lambda b: b.gradient())

    @torch.no_grad()
    def kl_hvp(self, v: Tensor) -> Tensor:
        """H_KL v = Σ_i A_iᵀ G_i A_i v (no damping), flattened in θ's order."""
        u = unflat(v, self.theta)
        return self._total(lambda b: b.kl_hvp(u))
