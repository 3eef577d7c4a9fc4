"""What an algorithm is: a composition of shared parts, and the defaults of its paper.

inner objective (inner_objectives.py) → which parameters adapt and how their step size is set (adaptation.py)
→ outer objective (outer_objectives.py) → outer step (trust_region.py, outer_steps.py). The learner builds an
update from these fields alone; an algorithm module declares one ``Algorithm`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metarl.algorithms.inner_objectives import InnerObjective

OUTER_STEPS = ("trust-region", "adam", "reptile")


@dataclass(frozen=True)
class Algorithm:
    name: str
    paper: str
    inner_objective: InnerObjective
    outer_step: str
    """trust-region (TRPO through the adaptation), adam (``outer_epochs`` Adam steps per batch) or reptile."""
    adapts: str = "all"
    """all parameters, or head (ANIL: the last layer and the log-std)."""
    learned_lrs: bool = False
    """Meta-SGD: per-parameter, per-step inner step sizes learned by the outer loop."""
    clipped: bool = False
    """PPO's clipped surrogate on the query instead of the plain importance-weighted one."""
    pre_update_kl: bool = False
    """ProMP's penalty ``kl_coef`` · KL(π_θ_old ‖ π_θ) between pre-update policies."""
    emaml: bool = False
    """E-MAML's term crediting the support sampling distribution with the query return."""
    hand_derived: bool = False
    """The learner may use curvature.py's hand-derived gradient and KL products (tested equal to autograd)."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Values of ``algo.*`` keys left null in a config (the paper's where it gives them)."""
    summary: str = ""

    def __post_init__(self) -> None:
        assert self.outer_step in OUTER_STEPS and self.adapts in ("all", "head"), self

    @property
    def outer_objective(self) -> str:
        if self.outer_step == "reptile":
            return "none (θ moves toward the adapted parameters)"
        text = "clipped surrogate" if self.clipped else "importance-weighted surrogate"
        if self.pre_update_kl:
            text += " + KL penalty between pre-update policies"
        if self.emaml:
            text += " + E-MAML credit of the support sampling"
        return text

    def describe(self) -> dict[str, Any]:
        """One row of `metarl algos` (and of docs/algorithms.md)."""
        return {"name": self.name, "paper": self.paper, "inner_objective": self.inner_objective.__name__,
                "adapts": "head (last layer, log-std)" if self.adapts == "head" else "all parameters",
                "learned_inner_lr": self.learned_lrs, "outer_objective": self.outer_objective,
                "outer_step": self.outer_step, "defaults": dict(self.defaults), "summary": self.summary}
