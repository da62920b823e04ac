"""Learning-rate schedules as pure functions of the step, so a resumed run needs only the step.

All start with a linear re-warm-up from 0 (continued pretraining re-warms, then re-decays; Ibrahim
et al. 2024): cosine to a floor, constant, or warm-up-stable-decay (constant, then linear decay to
the floor over the last steps; Hu et al. 2024, "infinite" schedules).
"""

from __future__ import annotations

import math


def learning_rate(step: int, total_steps: int, peak: float, schedule: str, warmup_share: float,
                  min_lr_ratio: float, decay_share: float) -> float:
    """The learning rate of optimizer step `step` (0-based) of `total_steps`."""
    warmup = round(total_steps * warmup_share)
    floor = peak * min_lr_ratio
    if step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant":
        return peak
    if schedule == "cosine":
        progress = (step - warmup) / max(1, total_steps - warmup - 1)
        return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    if schedule == "wsd":
        decay = max(1, round(total_steps * decay_share))
        decay_start = total_steps - decay
        if step < decay_start:
            return peak
        return peak - (peak - floor) * min(1.0, (step - decay_start + 1) / decay)
    raise ValueError(f"unknown schedule {schedule!r}")
