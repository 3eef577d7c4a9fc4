"""The learner on a CUDA device gives the CPU's numbers, and a whole training run works there.

Marked ``cuda`` and skipped where PyTorch sees no CUDA device (every CI machine). On a GPU machine ``pytest -m cuda``
runs them; ``scripts/device_check.sh`` runs them with the GPU figures of docs/performance.md. Each test compares
CUDA with the CPU: the hand-derived curvature against autograd, the learner's advantages and TRPO step, and a tiny
training run (the sampler always runs on the CPU, so the first iteration's rollouts must be bit-identical).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from processes import metarl, read_metrics
from test_cli import CONFIG, TINY
from test_curvature import CASES, DT, problem, rel

from metarl.adaptation import InnerLoop, PolicyBatch
from metarl.algorithms.curvature import MetaCurvature
from metarl.algorithms.outer_objectives import MetaObjective
from metarl.algorithms.trust_region import flat, kl_hvp_reference
from metarl.config import AlgoConfig
from metarl.learner import Learner

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (pytest -m cuda on a GPU)")]

GPU = torch.device("cuda")


def to(batch: PolicyBatch, device: torch.device, dtype: torch.dtype | None = None) -> PolicyBatch:
    """The batch on ``device``; floating tensors (not categorical actions) in ``dtype`` where one is given."""
    move = lambda t: t.to(device, dtype) if dtype is not None and t.is_floating_point() else t.to(device)  # noqa: E731
    return dataclasses.replace(batch, obs=move(batch.obs), actions=move(batch.actions),
                               advantages=move(batch.advantages), mask=move(batch.mask))


@pytest.mark.parametrize("discrete,activation,K,first_order", CASES)
def test_curvature_on_cuda_equals_autograd_on_the_cpu(discrete, activation, K, first_order):
    """float64 on the GPU, the whole meta-batch as one block (the GPU's task_chunk): gradient and KL products equal
    the CPU autograd reference to rounding."""
    policy, theta, supports, query = problem(discrete, activation, K)
    th = {k: v.clone().requires_grad_() for k, v in theta.items()}
    loss, kl, _ = MetaObjective(policy, supports, query, InnerLoop((0.4,), first_order=first_order))(th)
    grad = flat(torch.autograd.grad(loss, list(th.values()), retain_graph=True))
    hvp = kl_hvp_reference(kl, list(th.values()), damping=0.0)

    curvature = MetaCurvature(policy, {k: v.to(GPU) for k, v in theta.items()}, [to(b, GPU) for b in supports],
                              to(query, GPU), 0.4, first_order, task_chunk=0)
    assert curvature.gradient().device.type == "cuda"
    assert rel(curvature.gradient().cpu(), grad) < 1e-9
    v = torch.randn(grad.shape, generator=torch.Generator().manual_seed(1), dtype=DT)
    assert rel(curvature.kl_hvp(v.to(GPU)).cpu(), hvp(v)) < 1e-9


def test_float32_curvature_on_cuda_stays_within_rounding_of_float64():
    """What training runs: float32 on the GPU (torch.tanh there), within float32 rounding of the float64 CPU path."""
    policy, theta, supports, query = problem(False, "tanh", K=2)
    exact = MetaCurvature(policy, theta, supports, query, 0.4)
    fast = MetaCurvature(policy, {k: v.to(GPU, torch.float32) for k, v in theta.items()},
                         [to(b, GPU, torch.float32) for b in supports], to(query, GPU, torch.float32), 0.4)
    assert rel(fast.gradient().cpu().double(), exact.gradient()) < 1e-5
    v = torch.randn(sum(t.numel() for t in theta.values()), generator=torch.Generator().manual_seed(4), dtype=DT)
    assert rel(fast.kl_hvp(v.to(GPU, torch.float32)).cpu().double(), exact.kl_hvp(v)) < 1e-5


def _learner(nav_rollouts, device: torch.device, dtype: torch.dtype) -> Learner:
    learner = Learner(nav_rollouts["policy"], nav_rollouts["theta"], AlgoConfig(), device)
    learner.theta = {k: v.to(dtype) for k, v in learner.theta.items()}
    return learner


def test_learner_step_on_cuda_equals_the_cpu_step(nav_rollouts):
    """The same rollouts give the same advantages (baseline fitted on the GPU) and, in float64, the same TRPO step.
    The tolerance is test_trust_region's: ten CG iterations amplify rounding differences about 1e11-fold."""
    steps, advantages = [], []
    for device in (torch.device("cpu"), GPU):
        learner = _learner(nav_rollouts, device, torch.float64)
        batch = learner.batch(nav_rollouts["rollouts"])
        assert batch.obs.device.type == device.type
        advantages.append(batch.advantages.cpu())
        batch = to(batch, device, torch.float64)
        theta0 = flat(list(learner.theta.values())).clone()
        assert learner.meta_update([batch], batch)["accepted"] == 1
        steps.append((flat(list(learner.theta.values())) - theta0).cpu())
    assert rel(advantages[1], advantages[0]) < 1e-5
    assert rel(steps[1], steps[0]) < 1e-4


def test_float32_learner_on_cuda_updates_and_checkpoints_on_the_cpu(nav_rollouts):
    learner = _learner(nav_rollouts, GPU, torch.float32)
    batch = learner.batch(nav_rollouts["rollouts"])
    before = {k: v.clone() for k, v in learner.theta.items()}
    stats = learner.meta_update([batch], batch)
    assert stats["accepted"] == 1 and stats["loss_after"] < stats["loss_before"]
    assert all(v.device.type == "cuda" and torch.isfinite(v).all() for v in learner.theta.values())
    assert not all(torch.equal(before[k], learner.theta[k]) for k in before)
    saved = learner.state_dict()["theta"]
    assert all(v.device.type == "cpu" for v in saved.values())
    assert all(torch.equal(saved[k], learner.theta[k].cpu()) for k in saved)


@pytest.mark.slow  # four CLI runs; `pytest -m cuda` selects it all the same
def test_training_on_cuda_matches_the_cpu_run_resumes_and_evaluates(tmp_path):
    """`metarl train` with the learner on the GPU: iteration 1 samples exactly the CPU run's rollouts (same θ, same
    seeds, sampling on the CPU) and adapts to rounding of it (later iterations need not: float32 CG amplifies
    rounding); resume and eval work from its checkpoints, which load on a machine without a GPU."""
    runs = {}
    for device in ("cpu", "cuda"):
        log_dir = tmp_path / device
        proc = metarl("train", CONFIG, *[f"--set={s}" for s in (*TINY, f"log.dir={log_dir}",
                                                                f"learner.device={device}")])
        assert proc.returncode == 0, proc.stderr[-3000:]
        (runs[device],) = log_dir.iterdir()
    cpu, gpu = read_metrics(runs["cpu"]), read_metrics(runs["cuda"])
    assert [r["iteration"] for r in gpu] == [1, 2]
    assert gpu[0]["env_steps"] == cpu[0]["env_steps"] and gpu[0]["return_step_0"] == cpu[0]["return_step_0"]
    assert gpu[0]["return_step_1"] == pytest.approx(cpu[0]["return_step_1"], rel=1e-3)

    run = runs["cuda"]
    theta = torch.load(run / "checkpoints" / "iter_2.pt", weights_only=True)["theta"]  # no map_location: as saved
    assert all(v.device.type == "cpu" and torch.isfinite(v).all() for v in theta.values())
    proc = metarl("train", "--resume", str(run), "--set", "train.iterations=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [r["iteration"] for r in read_metrics(run)] == [1, 2, 3]
    proc = metarl("eval", str(run), "--num-tasks", "3", "--steps", "1", "--out", str(tmp_path / "eval.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "eval.json").is_file()
