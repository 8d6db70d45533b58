"""Learning-rate and momentum schedule: linear warm-up, then cosine, both per iteration (SSD's ``train.py``).

SSD's ``train.py`` runs ``warmup_epochs`` *extra* epochs under ``CyclicLR(base_lr=0.01, max_lr=lr)``
(the lr rises linearly from 0.01 to lr), then resets the lr and runs ``CosineAnnealingLR(T_max =
epochs x iterations, eta_min=1e-4)`` for ``epochs`` epochs. Both are stepped every iteration. This
module computes the same numbers as a closed-form function of the global step, so a resumed run
needs only the step counter.

The momentum bug: ``CyclicLR`` cycles momentum by default (``cycle_momentum=True``, 0.9 -> 0.8 as
the lr rises) and nothing resets it, so SSD's whole cosine phase runs with momentum 0.8
(SSD's ``train.py``; see PyTorch's ``CyclicLR``). By default the momentum stays at the configured value throughout;
``original_warmup_momentum=True`` reproduces SSD (0.9 -> 0.8 during warm-up, 0.8 afterwards).
"""

from __future__ import annotations

import math

WARMUP_START_LR = 0.01  # SSD's CyclicLR base_lr
ETA_MIN = 1e-4  # SSD's CosineAnnealingLR eta_min
ORIGINAL_MOMENTUM = (0.9, 0.8)  # CyclicLR's default (max_momentum, base_momentum), used by SSD


class WarmupCosine:
    """Sets lr and momentum of every param group for each global step; ``step()`` advances.

    ``warmup_steps`` iterations of linear warm-up from ``min(0.01, lr)`` to ``lr``, then
    ``cosine_steps`` iterations of cosine annealing from ``lr`` to ``ETA_MIN``.
    """

    def __init__(
        self,
        optimizer,
        *,
        lr: float,
        momentum: float,
        warmup_steps: int,
        cosine_steps: int,
        original_warmup_momentum: bool = False,
    ) -> None:
        if cosine_steps < 1:
            raise ValueError(f"cosine_steps must be >= 1, got {cosine_steps}: train for at least one epoch")
        self.optimizer = optimizer
        self.base_lr, self.base_momentum = lr, momentum
        self.warmup_steps, self.cosine_steps = warmup_steps, cosine_steps
        self.original_warmup_momentum = original_warmup_momentum
        self.last_step = 0
        self._apply()

    def lr(self, step: int) -> float:
        if step < self.warmup_steps:
            start = min(WARMUP_START_LR, self.base_lr)
            return start + (self.base_lr - start) * step / self.warmup_steps
        t = min(step - self.warmup_steps, self.cosine_steps)
        return ETA_MIN + (self.base_lr - ETA_MIN) * (1 + math.cos(math.pi * t / self.cosine_steps)) / 2

    def momentum(self, step: int) -> float:
        if not (self.original_warmup_momentum and self.warmup_steps):
            return self.base_momentum
        high, low = ORIGINAL_MOMENTUM
        return high - (high - low) * min(step, self.warmup_steps) / self.warmup_steps

    def _apply(self) -> None:
        lr, momentum = self.lr(self.last_step), self.momentum(self.last_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
            if "momentum" in group:
                group["momentum"] = momentum

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"last_step": self.last_step}

    def load_state_dict(self, state: dict) -> None:
        self.last_step = int(state["last_step"])
        self._apply()
