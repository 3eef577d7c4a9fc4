"""ProMP (Rothfuss et al. 2019): the low-variance curvature (LVC) inner objective, the clipped surrogate on the
query with a KL penalty between pre-update policies, and several Adam steps per batch."""

from metarl.algorithms.algorithm import Algorithm
from metarl.algorithms.inner_objectives import lvc

ALGORITHM = Algorithm(
    name="promp", paper="Rothfuss et al. 2019, ProMP: Proximal Meta-Policy Search (ICLR)",
    inner_objective=lvc, outer_step="adam", clipped=True, pre_update_kl=True,
    defaults={"first_order": False, "outer_lr": 1e-3, "outer_epochs": 5, "clip": 0.3, "kl_coef": 5e-4},
    summary="Fixes MAML's poor credit assignment to the pre-update sampling with a low-variance estimator.")
