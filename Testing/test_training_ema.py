"""The EMA teacher's update (training/model_setup.update_ema): trained parameters mix, frozen ones copy."""

from __future__ import annotations

import torch
from torch import nn

from SSSSegmentLib.training.model_setup import update_ema


def test_trained_parameters_mix_and_frozen_ones_stay_bit_exact():
    """d = min(0.9, 1 - 1/(step + 1)) = 0.9 at step 20: teacher 1.0, student 3.0 -> 0.9 + 0.3 = 1.2 by hand.
    A frozen tensor whose value x gives d * x + (1 - d) * x != x in float32 must come out as x exactly."""
    student, teacher = nn.Linear(1, 1), nn.Linear(1, 1)
    x = torch.tensor([[-1.6959311962127686]])
    mixed = x.clone().mul_(0.9).add_(x, alpha=1 - 0.9)
    assert not torch.equal(mixed, x)  # the float32 rounding a mix would introduce
    with torch.no_grad():
        student.weight.fill_(3.0)
        teacher.weight.fill_(1.0)
        student.bias.copy_(x[0])
        teacher.bias.copy_(x[0])
    student.bias.requires_grad_(False)
    update_ema(teacher, student, decay=0.9, step=20)
    torch.testing.assert_close(teacher.weight, torch.tensor([[1.2]]))
    assert torch.equal(teacher.bias, x[0])
