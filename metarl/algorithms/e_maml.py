"""E-MAML (Stadie et al. 2018): MAML-TRPO plus the term that credits the pre-update (support) sampling
distribution with the post-update return."""

from metarl.algorithms.algorithm import Algorithm
from metarl.algorithms.inner_objectives import reinforce

ALGORITHM = Algorithm(
    name="e-maml", paper="Stadie et al. 2018, Some Considerations on Learning to Explore via Meta-RL",
    inner_objective=reinforce, outer_step="trust-region", emaml=True, defaults={"first_order": False},
    summary="Rewards pre-update exploration that leads to good post-update returns.")
