"""MAML-TRPO (Finn et al. 2017): REINFORCE inner steps on all parameters, second order, and a trust-region outer
step on the query surrogate. The learner's fast path computes it by hand (curvature.py)."""

from metarl.algorithms.algorithm import Algorithm
from metarl.algorithms.inner_objectives import reinforce

ALGORITHM = Algorithm(
    name="maml-trpo", paper="Finn et al. 2017, Model-Agnostic Meta-Learning (ICML)",
    inner_objective=reinforce, outer_step="trust-region", hand_derived=True, defaults={"first_order": False},
    summary="The reference gradient-based meta-RL method; a monotone, well-scaled outer step.")
