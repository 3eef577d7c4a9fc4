"""Meta-SGD (Li et al. 2017; MAML++'s learned inner learning rates): per-parameter, per-step inner step sizes
learned by the outer loop alongside θ; REINFORCE inner steps and the trust-region outer step, as in the paper's
RL experiments."""

from metarl.algorithms.algorithm import Algorithm
from metarl.algorithms.inner_objectives import reinforce

ALGORITHM = Algorithm(
    name="meta-sgd", paper="Li et al. 2017, Meta-SGD: Learning to Learn Quickly for Few-Shot Learning",
    inner_objective=reinforce, outer_step="trust-region", learned_lrs=True, defaults={"first_order": False},
    summary="Learns how far and in which direction each parameter moves in adaptation.")
