"""MAML-PPO: REINFORCE inner steps, PPO's clipped surrogate on the query rollouts as the outer objective, and
several Adam epochs per batch of rollouts."""

from metarl.algorithms.algorithm import Algorithm
from metarl.algorithms.inner_objectives import reinforce

ALGORITHM = Algorithm(
    name="maml-ppo", paper="Finn et al. 2017 with the outer step of Schulman et al. 2017 (PPO)",
    inner_objective=reinforce, outer_step="adam", clipped=True,
    defaults={"first_order": False, "outer_lr": 1e-3, "outer_epochs": 5, "clip": 0.2},
    summary="More outer progress per batch of rollouts than TRPO, with no conjugate gradient.")
