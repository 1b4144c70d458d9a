"""Consistency distillation on N(0, s²) data, whose PF-ODE is known in closed form: x_σ ↦ x_σ·s/√(s² + σ²).

The exact denoiser is D(x; σ) = x·s²/(s² + σ²) (the teacher); the exact consistency function is
f(x, σ) = x·s/√(s² + σ²). A one-pass deterministic solver collapses the spread, f does not; the distillation
loss vanishes (up to the teacher's Heun step) at f and not at the teacher itself.
"""

import pytest
import torch

from petdiff.diffusion import StackedRandomGenerator, sample
from petdiff.diffusion.consistency import ConsistencyDistillationLoss
from petdiff.diffusion.residual_loss import ResidualConsistencyLoss

S = 0.5


class Teacher(torch.nn.Module):
    """The exact denoiser of N(0, s²) data, with the network calling convention."""

    sigma_data = S

    def forward(self, x, sigma, condition=None, class_labels=None):
        s2 = sigma.to(x.dtype).view(-1, 1, 1, 1) ** 2
        return x * S**2 / (S**2 + s2)


class ExactConsistency(torch.nn.Module):
    """f_a(x, σ) = x·s/√(s² + a·σ²): the consistency function for a = 1; f_a(x, 0) = x for every a (the boundary
    condition holds), but only a = 1 is constant along the ODE's trajectories."""

    def __init__(self, a: float = 1.0):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(float(a)))

    def forward(self, x, sigma, condition=None, class_labels=None):
        s2 = sigma.to(x.dtype).view(-1, 1, 1, 1) ** 2
        return x * S / torch.sqrt(S**2 + self.a * s2)


def draw(denoise, sampler: str, steps: int, sigma_min: float = 0.002) -> torch.Tensor:
    seeds = list(range(256))
    rnd = StackedRandomGenerator("cpu", seeds)
    latents = rnd.randn((len(seeds), 1, 8, 8), dtype=torch.float64)
    return sample(denoise, latents, sampler, num_steps=steps, sigma_min=sigma_min, sigma_max=10.0, noise=rnd)


def test_one_pass_of_a_consistency_function_samples_where_one_solver_step_collapses():
    f = ExactConsistency().double()
    for steps, sigma_min in ((1, 0.002), (2, 0.5)):
        x = draw(f, "consistency", steps, sigma_min)
        assert float(x.std()) == pytest.approx(S, rel=0.03)
    collapsed = sample(Teacher().double(), torch.randn(256, 1, 8, 8, dtype=torch.float64), "euler", num_steps=1,
                       sigma_max=10.0)
    assert float(collapsed.std()) < 0.1 * S  # one Euler step lands on the mean D(x; σ_max) ≈ 0
    with pytest.raises(ValueError, match="noise"):
        sample(f, torch.randn(2, 1, 4, 4, dtype=torch.float64), "consistency", num_steps=2)


def test_distillation_loss_vanishes_at_the_consistency_function_only():
    loss = ConsistencyDistillationLoss(Teacher(), num_scales=18, sigma_max=10.0)
    data = S * torch.randn(512, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        exact = float(loss(ExactConsistency(), data, generator=torch.Generator().manual_seed(1)).mean())
        wrong = float(loss(ExactConsistency(1.5), data, generator=torch.Generator().manual_seed(1)).mean())
        teacher_as_student = float(loss(Teacher(), data, generator=torch.Generator().manual_seed(1)).mean())
    assert exact < 1e-3 * S**2
    assert wrong > 20 * exact and teacher_as_student > 20 * exact


def test_the_gradient_reaches_the_student_not_its_target():
    loss = ConsistencyDistillationLoss(Teacher(), num_scales=8)
    student = ExactConsistency(1.5)
    value = loss(student, S * torch.randn(16, 1, 4, 4), generator=torch.Generator().manual_seed(0)).mean()
    value.backward()
    assert student.a.grad is not None and float(student.a.grad) > 0  # a descent step moves a towards 1
    with pytest.raises(ValueError, match="num_scales"):
        ConsistencyDistillationLoss(Teacher(), num_scales=1)


def test_residual_consistency_loss_conditions_on_low_dose_and_mean():
    class Mean(torch.nn.Module):
        def forward(self, condition, class_labels=None):
            return condition

    seen = {}

    class Student(ExactConsistency):
        def forward(self, x, sigma, condition=None, class_labels=None):
            seen["condition"] = condition
            return super().forward(x, sigma)

    y = torch.rand(4, 1, 8, 8)
    loss = ResidualConsistencyLoss(Mean(), S, Teacher(), num_scales=8)
    value = loss(Student(), y + S * torch.randn(4, 1, 8, 8), condition=y, generator=torch.Generator().manual_seed(0))
    assert value.shape == (4, 1, 8, 8) and seen["condition"].shape == (4, 2, 8, 8)
    with pytest.raises(ValueError, match="condition"):
        loss(Student(), y)
