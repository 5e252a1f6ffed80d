"""Initialisations: torch's uniform start, a chosen spectral radius, Henaff et al.'s rotations."""

import math

import pytest
import torch

import carousel as C
from carousel.cells import henaff_rotations, set_spectral_radius_, uniform_init_


def test_uniform_init_draws_every_parameter_within_one_over_sqrt_h():
    cell = C.GRUCell(3, 16)
    with torch.no_grad():
        for p in cell.parameters():
            p.fill_(5.0)
    uniform_init_(cell, 16)
    for p in cell.parameters():
        p = p.detach()
        assert float(p.abs().max()) <= 1 / math.sqrt(16) and float(p.std()) > 0.05


@pytest.mark.parametrize("rho", [0.5, 1.0, 1.3])
def test_set_spectral_radius(rho):
    cell = C.ElmanCell(2, 12)
    set_spectral_radius_(cell, rho)
    assert float(torch.linalg.eigvals(cell.weight_hh.detach().double()).abs().max()) == pytest.approx(rho, rel=1e-6)
    with pytest.raises(ValueError, match="spectral radius rho > 0"):
        set_spectral_radius_(cell, 0.0)


def test_henaff_rotations_are_orthogonal_two_by_two_blocks():
    u = henaff_rotations(7, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(u.T @ u, torch.eye(7, dtype=torch.float64))
    mask = torch.block_diag(*[torch.ones(2, 2)] * 3, torch.ones(1, 1)).bool()
    assert bool((u[~mask] == 0).all()) and u[6, 6] == 1
    assert bool((torch.linalg.eigvals(u[:6, :6]).abs() - 1).abs().max() < 1e-12)
