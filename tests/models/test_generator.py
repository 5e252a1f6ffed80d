"""The conditioned generator: the conditioning sets the initial state (zero map -> zero state), the
teacher-forced logits equal generation's step-by-step ones, greedy generation is deterministic and
stops at the end token, the loss leaves padding out, and a short training learns digit names."""

import pytest
import torch
import torch.nn.functional as F

from carousel.models import SequenceGenerator

PAD, START, END = 0, 1, 2


def _model(cell="lstm", layers=2, seed=0, **kw):
    torch.manual_seed(seed)
    return SequenceGenerator(cell, 4, 9, embed_size=5, hidden_size=6, layers=layers, **kw).double()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_conditioning_changes_the_initial_state_and_a_zero_map_gives_the_zero_state(cell):
    model = _model(cell)
    g = torch.Generator().manual_seed(1)
    cond = torch.randn(2, 4, generator=g, dtype=torch.float64)
    tokens = torch.randint(3, 9, (2, 5), generator=g)
    z = model(cond, tokens)
    assert (z[0, 0] - z[1, 0]).abs().max() > 1e-3  # two conditions, two first-step distributions
    for layer_state in model.initial_state(cond):  # every component (h and c) depends on cond
        for part in (layer_state if isinstance(layer_state, tuple) else (layer_state,)):
            assert (part[0] - part[1]).abs().max() > 1e-3
    with torch.no_grad():
        for maps in model.init_maps:
            for m in maps:
                m.weight.zero_()
                m.bias.zero_()
    for layer_state in model.initial_state(cond):
        for part in (layer_state if isinstance(layer_state, tuple) else (layer_state,)):
            assert torch.equal(part, torch.zeros_like(part))
    inputs = torch.cat([torch.full((2, 1), START), tokens[:, :-1]], dim=1)
    zero_state_logits, _ = model.step(inputs, None)  # the stack's own all-zero state
    torch.testing.assert_close(model(cond, tokens), zero_state_logits, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_teacher_forced_logits_equal_generation_steps(cell):
    model = _model(cell)
    cond = torch.randn(3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = model.generate(cond, 7, temperature=1.0, generator=torch.Generator().manual_seed(3))
    forced = model(cond, out.tokens)  # (B, L, V), fed the sampled tokens
    mask = torch.arange(7).unsqueeze(0) < out.lengths.unsqueeze(1)
    torch.testing.assert_close(forced[mask], out.logits[mask], rtol=0, atol=1e-10)
    # and step by step by hand, feeding the same tokens
    state, prev = model.initial_state(cond), torch.full((3, 1), START)
    for t in range(7):
        z, state = model.step(prev, state)
        torch.testing.assert_close(z[:, 0], forced[:, t], rtol=0, atol=1e-10)
        prev = out.tokens[:, t:t + 1]


def test_greedy_generation_is_deterministic_and_stops_at_the_end_token():
    model = _model("gru", end_id=END)
    cond = torch.randn(5, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    a = model.generate(cond, 12, greedy=True)
    torch.manual_seed(123)
    b = model.generate(cond, 12, greedy=True, temperature=5.0)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.lengths, b.lengths)
    valid = torch.arange(12) < a.lengths[:, None]
    best = a.logits.index_fill(-1, torch.tensor([PAD]), float("-inf")).argmax(-1)  # the pad token is never drawn
    assert torch.equal(best[valid], a.tokens[valid])
    # make END the argmax from the third step on: every sequence stops there
    end_model = _StopAfter(model)
    out = end_model.generate(cond, 12)
    assert out.lengths.tolist() == [3] * 5
    assert (out.tokens[:, 2] == END).all() and (out.tokens[:, 3:] == PAD).all()
    assert (out.tokens[:, :2] != END).all()


class _StopAfter:
    """Wraps a generator's step so that token 5 wins the first two steps and END every later one."""

    def __init__(self, model):
        self.model, self.t = model, 0
        original = model.step

        def step(inputs, state):
            z, state = original(inputs, state)
            self.t += 1
            z = z.clone()
            z[..., 5] += 10.0
            if self.t >= 3:
                z[..., END] += 100.0
            return z, state

        model.step = step

    def generate(self, cond, n):
        self.t = 0
        return self.model.generate(cond, n, greedy=True)


def test_loss_leaves_padding_out():
    model = _model()
    cond = torch.randn(2, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    tokens = torch.tensor([[3, 4, END, PAD], [5, END, PAD, PAD]])
    lengths = torch.tensor([3, 2])
    z = model(cond, tokens)
    expected = torch.cat([F.cross_entropy(z[0, :3], tokens[0, :3], reduction="none"),
                          F.cross_entropy(z[1, :2], tokens[1, :2], reduction="none")]).mean()
    torch.testing.assert_close(model.loss(z, tokens, lengths), expected)
    other = tokens.clone()
    other[0, 3], other[1, 2:] = 7, 8  # padding changed: neither the valid logits nor the loss move
    torch.testing.assert_close(model(cond, other)[0, :3], z[0, :3])
    torch.testing.assert_close(model.loss(model(cond, other), other, lengths), expected)


def test_bad_input_raises_clear_errors():
    model = _model()
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.ones(2, 4, dtype=torch.long), torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="float64"):
        model(torch.ones(2, 4), torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        model(torch.ones(2, 5, dtype=torch.float64), torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"one row per cond"):
        model(torch.ones(2, 4, dtype=torch.float64), torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 9\)"):
        model(torch.ones(2, 4, dtype=torch.float64), torch.full((2, 3), 9))
    with pytest.raises(ValueError, match="max_length"):
        model.generate(torch.ones(2, 4, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match="end_id different"):
        SequenceGenerator("gru", 4, 9, end_id=0, pad_id=0)


NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def test_short_training_learns_every_digit_name():
    letters = sorted(set("".join(NAMES)))
    index = {ch: i + 3 for i, ch in enumerate(letters)}  # 0 pad, 1 start, 2 end
    T = max(map(len, NAMES)) + 1
    tokens = torch.full((10, T), PAD)
    for d, name in enumerate(NAMES):
        tokens[d, :len(name) + 1] = torch.tensor([index[c] for c in name] + [END])
    lengths = torch.tensor([len(n) + 1 for n in NAMES])
    cond = torch.eye(10)
    torch.manual_seed(0)
    model = SequenceGenerator("lstm", 10, len(letters) + 3, embed_size=16, hidden_size=48)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(150):
        opt.zero_grad()
        loss = model.loss(model(cond, tokens), tokens, lengths)
        loss.backward()
        opt.step()
    out = model.generate(cond, T + 3, greedy=True)
    symbols = {i: ch for ch, i in index.items()}
    spelled = ["".join(symbols[int(i)] for i in row[:n - 1]) for row, n in zip(out.tokens, out.lengths)]
    assert spelled == NAMES
    assert (out.tokens[torch.arange(10), out.lengths - 1] == END).all()
