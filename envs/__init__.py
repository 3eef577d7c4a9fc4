"""Built-in task families (installed as ``metarl.envs``; the folder is ``envs/`` in the source tree).

Importing this package also registers every built-in family with Gymnasium under the ``metarl/`` namespace, e.g.
``gymnasium.make("metarl/HalfCheetahVel-v0", version="rothfuss2019", task={"velocity": 2.0})``; without an
explicit import, ``gymnasium.make("metarl.envs:metarl/HalfCheetahVel-v0")`` imports it first. Registration uses
string entry points, so importing this package loads neither MuJoCo nor any family module.
"""

from __future__ import annotations

from typing import Any

import gymnasium

# Gymnasium id -> metarl family name. The env is the family's ``make_env(task)``; it truncates at the horizon itself.
GYM_IDS: dict[str, str] = {
    "metarl/Navigation2D-v0": "2d-navigation",
    "metarl/HalfCheetahVel-v0": "halfcheetah-vel",
    "metarl/HalfCheetahDir-v0": "halfcheetah-dir",
    "metarl/AntVel-v0": "ant-vel",
    "metarl/AntDir-v0": "ant-dir",
    "metarl/AntGoal-v0": "ant-goal",
    "metarl/HopperRandParams-v0": "hopper-rand-params",
    "metarl/Walker2dRandParams-v0": "walker2d-rand-params",
    "metarl/Bandit-v0": "bandit",
    "metarl/TabularMDP-v0": "tabular-mdp",
    "metarl/MetaWorldML1-v0": "metaworld-ml1",  # the metaworld-* ids need the metaworld extra
    "metarl/MetaWorldML10-v0": "metaworld-ml10",
    "metarl/MetaWorldML45-v0": "metaworld-ml45",
}


def make_gym_env(family: str, version: str | None = None, task: dict | None = None,
                 **family_kwargs: Any) -> gymnasium.Env:
    """Gymnasium entry point: one env of ``family`` (default version unless given), set to ``task`` if given."""
    from metarl.families import make_family

    return make_family(family, version, **family_kwargs).make_env(task)


for _gym_id, _family in GYM_IDS.items():
    if _gym_id not in gymnasium.registry:
        gymnasium.register(id=_gym_id, entry_point="metarl.envs:make_gym_env", kwargs={"family": _family})
