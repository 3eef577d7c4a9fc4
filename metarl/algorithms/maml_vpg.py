"""MAML-VPG: the MAML meta-gradient (second order through REINFORCE inner steps) with a plain Adam outer step."""

from metarl.algorithms.algorithm import Algorithm
from metarl.algorithms.inner_objectives import reinforce

ALGORITHM = Algorithm(
    name="maml-vpg", paper="Finn et al. 2017 (the vanilla policy-gradient outer step of Rothfuss et al. 2019)",
    inner_objective=reinforce, outer_step="adam",
    defaults={"first_order": False, "outer_lr": 0.01, "outer_epochs": 1},
    summary="The plainest MAML: one Adam step on the meta-gradient per batch; no trust region.")
