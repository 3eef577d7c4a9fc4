"""The learner's view of a batch of rollouts: tensors flattened over (episode, time), one slice per task."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PolicyBatch:
    """obs [n, B, d], actions [n, B(, a)], advantages and mask [n, B], with B = episodes × horizon.

    ``episodes`` splits B back into episodes (DiCE's cumulative log-probabilities need it); ``task_return`` [n] is
    each task's mean undiscounted episode return (E-MAML's credit), where the learner knows it."""

    obs: torch.Tensor
    actions: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    episodes: int = 1
    task_return: torch.Tensor | None = None

    def task(self, i: int) -> PolicyBatch:
        """Task i's slice, keeping a task dimension of 1 (for the per-task references)."""
        return self.tasks(slice(i, i + 1))

    def tasks(self, s: slice) -> PolicyBatch:
        ret = None if self.task_return is None else self.task_return[s]
        return PolicyBatch(self.obs[s], self.actions[s], self.advantages[s], self.mask[s], self.episodes, ret)


def masked_task_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over valid samples of each task: [n, B] -> [n]."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)
