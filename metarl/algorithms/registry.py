"""Every algorithm by its name (`algo.name`), in the order `metarl algos` lists them."""

from __future__ import annotations

from metarl.algorithms import anil, dice, e_maml, fomaml, maml_ppo, maml_trpo, maml_vpg, meta_sgd, promp, reptile
from metarl.algorithms.algorithm import Algorithm

ALGORITHMS: dict[str, Algorithm] = {m.ALGORITHM.name: m.ALGORITHM for m in (
    maml_trpo, fomaml, maml_vpg, maml_ppo, promp, e_maml, dice, meta_sgd, anil, reptile)}
