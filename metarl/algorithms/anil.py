"""ANIL (Raghu et al. 2020): only the policy head (the last layer and the log-std) adapts in the inner loop; the
body is meta-learned by the trust-region outer step."""

from metarl.algorithms.algorithm import Algorithm
from metarl.algorithms.inner_objectives import reinforce

ALGORITHM = Algorithm(
    name="anil", paper="Raghu et al. 2020, Rapid Learning or Feature Reuse? (ICLR)",
    inner_objective=reinforce, outer_step="trust-region", adapts="head", defaults={"first_order": False},
    summary="Feature reuse: a cheaper, lower-variance inner loop when tasks share their features.")
