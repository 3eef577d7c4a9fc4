"""First-order MAML with the trust-region outer step: the inner gradient is a constant, so the meta-gradient is
the query gradient at φ and no second-order graph is built."""

from metarl.algorithms.algorithm import Algorithm
from metarl.algorithms.inner_objectives import reinforce

ALGORITHM = Algorithm(
    name="fomaml", paper="Finn et al. 2017 (first-order approximation, section 5.2)",
    inner_objective=reinforce, outer_step="trust-region", hand_derived=True, defaults={"first_order": True},
    summary="MAML without Hessian terms: cheaper updates, usually a little worse adaptation.")
