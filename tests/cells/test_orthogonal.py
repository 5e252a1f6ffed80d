"""OrthogonalMap: torch's orthogonal parametrisation (same maps, same keys, same float32 numbers),
computed in float32 for half-precision weights and outside autocast."""

import pytest
import torch
from torch.nn.utils import parametrizations

import carousel as C
from carousel.cells.orthogonal import OrthogonalMap


@pytest.mark.parametrize("orthogonal_map", ["matrix_exp", "cayley"])
def test_torch_checkpoints_load_and_give_the_same_matrix(orthogonal_map):
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 6, bias=False)
    parametrizations.orthogonal(lin, "weight", orthogonal_map=orthogonal_map)
    with torch.no_grad():
        lin.parametrizations.weight.original.add_(0.2 * torch.randn(6, 6))
    cell = C.OrthogonalCell(2, 6, orthogonal_map=orthogonal_map)
    sd = {k.replace("weight", "weight_hh", 1): v for k, v in lin.state_dict().items()}
    cell.load_state_dict({**cell.state_dict(), **sd})
    torch.testing.assert_close(cell.weight_hh, lin.weight, rtol=0, atol=1e-7)
    if orthogonal_map == "matrix_exp":
        assert torch.equal(cell.weight_hh, lin.weight)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("orthogonal_map", ["matrix_exp", "cayley"])
def test_half_precision_weights_stay_orthogonal(orthogonal_map, dtype):
    torch.manual_seed(1)
    cell = C.OrthogonalCell(2, 8, orthogonal_map=orthogonal_map)
    with torch.no_grad():
        cell.parametrizations.weight_hh.original.add_(0.1 * torch.randn(8, 8))
    half = C.OrthogonalCell(2, 8, orthogonal_map=orthogonal_map)
    half.load_state_dict(cell.state_dict())
    half = half.to(dtype)
    w = half.weight_hh.detach()
    assert w.dtype == dtype
    # the map of the rounded parameters, computed in float32: as close to the float32 matrix as rounding allows
    torch.testing.assert_close(w.float(), cell.weight_hh.detach(), rtol=0, atol=2e-2)
    assert float((w.float().T @ w.float() - torch.eye(8)).abs().max()) < 2e-2


def test_built_and_run_under_autocast():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cell = C.OrthogonalCell(3, 4, orthogonal_map="cayley", nonlinearity="modrelu")
        out, _ = C.run(cell, torch.randn(2, 5, 3))
        w = cell.weight_hh
    assert w.dtype == torch.float32 and torch.allclose(w.T @ w, torch.eye(4), atol=1e-5)
    assert bool(torch.isfinite(out).all())


def test_assigning_a_matrix_orthogonalises_it():
    m = OrthogonalMap("matrix_exp")
    q = torch.linalg.qr(torch.randn(5, 5))[0]
    x = m.right_inverse(q)
    torch.testing.assert_close(m(x), q)
    x = m.right_inverse(torch.randn(5, 5))  # not orthogonal: its QR factor is kept
    w = m(x)
    torch.testing.assert_close(w.T @ w, torch.eye(5), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="square orthogonal matrix, got shape \\(3, 4\\)"):
        m.right_inverse(torch.randn(3, 4))
