"""Reptile (Nichol et al. 2018) for RL: K REINFORCE steps per task with fresh rollouts after each, then
θ ← θ + ε · mean_i(φ_i − θ) with ε = ``outer_lr``; no meta-gradient."""

from metarl.algorithms.algorithm import Algorithm
from metarl.algorithms.inner_objectives import reinforce

ALGORITHM = Algorithm(
    name="reptile", paper="Nichol et al. 2018, On First-Order Meta-Learning Algorithms",
    inner_objective=reinforce, outer_step="reptile", defaults={"first_order": True, "outer_lr": 1.0},
    summary="First order and cheap: needs K >= 2 inner steps to differ from joint training.")
