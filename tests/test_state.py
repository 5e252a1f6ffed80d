"""map_state walks any nesting of states; detach_state cuts them from the graph."""

import pytest
import torch

from carousel import GRUState, LSTMState
from carousel.state import detach_state, map_state


def test_map_state_keeps_the_structure_and_types():
    h, c = torch.ones(2, 3), torch.zeros(2, 3)
    nested = ((LSTMState(h, c), GRUState(h)), [h], {"a": h}, None)
    doubled = map_state(lambda t: 2 * t, nested)
    (lstm, gru), listed, mapped, nothing = doubled
    assert type(lstm) is LSTMState and type(gru) is GRUState and type(listed) is list and nothing is None
    torch.testing.assert_close(lstm.h, 2 * h)
    torch.testing.assert_close(mapped["a"], 2 * h)
    with pytest.raises(TypeError, match="expected a recurrent state made of tensors.*got str"):
        map_state(lambda t: t, (h, "label"))
    assert map_state(lambda t: 2 * t, (h, "label"), keep_others=True)[1] == "label"


def test_detach_state_cuts_the_graph():
    w = torch.ones(3, requires_grad=True)
    state = LSTMState(w * 2, w * 3)
    cut = detach_state(state)
    assert all(t.grad_fn is None and not t.requires_grad for t in cut)
    torch.testing.assert_close(cut.c, state.c.detach())
