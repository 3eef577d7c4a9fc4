"""DiCE (Foerster et al. 2018): the magic-box inner objective, so that the second-order meta-gradient holds the
terms of the support sampling distribution that plain MAML drops; trust-region outer step, so that it differs
from MAML-TRPO in the inner objective alone."""

from metarl.algorithms.algorithm import Algorithm
from metarl.algorithms.inner_objectives import dice

ALGORITHM = Algorithm(
    name="dice", paper="Foerster et al. 2018, DiCE: The Infinitely Differentiable Monte Carlo Estimator (ICML)",
    inner_objective=dice, outer_step="trust-region", defaults={"first_order": False},
    summary="Unbiased meta-gradient, including the sampling terms; higher variance than LVC.")
