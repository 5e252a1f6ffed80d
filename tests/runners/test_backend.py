"""One resolver for layers and drop-in stacks; ``use_backend`` overrides every layer's choice inside a
block; ``observe_steps`` sees every step of the reference loop, and nothing in the model changes."""

import pytest
import torch

import carousel as C
from carousel.runners import observe_steps, resolve_backend, resolve_stack, run, use_backend
from cell_zoo import make_cell, random_state


def test_use_backend_runs_layers_and_drop_ins_on_the_named_backend():
    torch.manual_seed(0)
    lstm = C.LSTM(3, 5, num_layers=2, batch_first=True)
    layer = C.Recurrent(C.GRUCell(3, 4))
    x = torch.randn(2, 6, 3)
    seen = []
    with observe_steps(lambda cell, px, before, after: seen.append(type(cell).__name__)):
        lstm(x), layer(x)
        assert seen == []  # fused kernels: no step of the reference loop
        with use_backend("reference"):
            assert lstm.fused_stack_mode(x) is None and resolve_backend(layer.cell, x, "fused").name == "reference"
            out_ref, _ = lstm(x)
            layer(x)
    assert seen == ["LSTMCell"] * 12 + ["GRUCell"] * 6
    assert lstm.backend == "auto" and layer.backend == "auto"  # nothing was rewritten
    torch.testing.assert_close(out_ref, lstm(x)[0], rtol=1e-5, atol=1e-6)
    assert resolve_stack(lstm.cells(), x) == "lstm" and resolve_stack(lstm.cells(), x, plain=False) is None


def test_the_innermost_block_wins_and_names_are_checked():
    cell = C.LSTMCell(3, 4)
    x = torch.randn(2, 5, 3)
    with use_backend("reference"):
        with use_backend("explicit"):
            assert resolve_backend(cell, x, "fused").name == "explicit"
        assert resolve_backend(cell, x, "fused").name == "reference"
    assert resolve_backend(cell, x).name == "fused"
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        with use_backend("fast"):
            pass
    with use_backend("scan"), pytest.raises(ValueError, match="backend 'scan' cannot run LSTMCell"):
        C.run(cell, x)


def test_observe_steps_hands_over_what_each_step_read_and_wrote():
    torch.manual_seed(1)
    cell = C.GRUCell(3, 4, dtype=torch.float64)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    steps = []
    with observe_steps(lambda c, px, before, after: steps.append((c, px, before, after))):
        out, final = C.run(cell, x, backend="reference", lengths=[5, 3])
    assert len(steps) == 5 and all(c is cell for c, *_ in steps)
    padded = x.clone()
    padded[1, 3:] = 0.0  # the runner sees zero padding, whatever sits there
    for t, (_, px, before, after) in enumerate(steps):
        torch.testing.assert_close(px, cell.project(padded)[:, t])
        torch.testing.assert_close(after.h, cell.step(px, before).h)
    torch.testing.assert_close(steps[4][3].h[0], final.h[0])  # the full-length sequence ends at the last step


@pytest.mark.parametrize(("name", "backend"), [("lstm_layer_norm", "explicit"), ("lstm", "fused"), ("gru", "fused"),
                                               ("elman_tanh", "fused")])
def test_two_chunks_with_the_state_passed_equal_one_run(name, backend):
    cell = make_cell(name, 3, 5)
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    s0 = random_state(cell, 4)
    out, final = run(cell, x, s0, backend=backend)
    out1, mid = run(cell, x[:, :3], s0, backend=backend)
    out2, final2 = run(cell, x[:, 3:], mid, backend=backend)
    torch.testing.assert_close(torch.cat([out1, out2], 1), out)
    for a, b in zip(final, final2):
        torch.testing.assert_close(a, b)
