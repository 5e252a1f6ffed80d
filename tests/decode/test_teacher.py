"""Scheduled sampling: what is fed, how often it is the truth, and logits equal a teacher-forced pass over the fed inputs."""

import pytest
import torch

from carousel.decode import scheduled_sampling
from carousel.models import CharLM

V = 7


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return CharLM(V, embed_size=4, hidden_size=8, layers=2, **kw).double().eval()


def _x(B=5, T=30, seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def test_eps_one_is_one_teacher_forced_pass():
    model, x = _model(), _x()
    out = scheduled_sampling(model, x, eps=1.0)
    torch.testing.assert_close(out.logits, model(x)[0])
    assert torch.equal(out.fed, x) and out.sampled == 0


@pytest.mark.parametrize("eps", [0.0, 0.5])
def test_logits_equal_a_single_pass_over_what_was_fed(eps):
    model, x = _model(), _x()
    g = torch.Generator().manual_seed(2)
    out = scheduled_sampling(model, x, eps=eps, generator=g)
    z, s = model(out.fed)  # the reference: one teacher-forced pass over the inputs actually fed
    torch.testing.assert_close(out.logits, z)
    torch.testing.assert_close(out.state[1].c, s[1].c)
    assert torch.equal(out.fed[:, 0], x[:, 0])
    if eps == 0.0:
        assert out.sampled == x.numel() - x.shape[0]


def test_greedy_feeds_the_previous_argmax():
    model, x = _model(), _x()
    out = scheduled_sampling(model, x, eps=0.0, greedy=True)
    assert torch.equal(out.fed[:, 1:], out.logits[:, :-1].argmax(-1))


def test_true_token_fraction_follows_eps_per_character():
    model, x = _model(), _x(B=40, T=50)
    out = scheduled_sampling(model, x, eps=0.7, generator=torch.Generator().manual_seed(3))
    n = x.numel() - x.shape[0]  # the first token is always true
    frac_true = 1 - out.sampled / n
    sd = (0.7 * 0.3 / n) ** 0.5
    assert abs(frac_true - 0.7) < 5 * sd
    # decided per character: rows mix true and sampled tokens
    assert out.sampled > 0 and (out.fed != x).any(dim=1).float().mean() > 0.5


def test_gradients_flow_to_the_parameters_not_through_the_samples():
    model = _model().train()
    x = _x()
    out = scheduled_sampling(model, x, eps=0.5, generator=torch.Generator().manual_seed(4))
    assert not out.fed.requires_grad
    torch.nn.functional.cross_entropy(out.logits.reshape(-1, V), x.reshape(-1)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_bad_input():
    model = _model()
    with pytest.raises(ValueError, match=r"eps in \[0, 1\], got 1.5"):
        scheduled_sampling(model, _x(), eps=1.5)
    with pytest.raises(ValueError, match="token ids of shape"):
        scheduled_sampling(model, torch.zeros(2, 3), eps=0.5)
