"""Scheduled-sampling decays against their closed forms (Bengio et al. 2015, section 2.4)."""

import math

import pytest

from carousel.decode import SamplingSchedule


def test_linear():
    s = SamplingSchedule("linear", k=1.0, c=0.002, minimum=0.1)
    assert s(0) == 1.0
    assert s(100) == pytest.approx(0.8)
    assert s(250) == pytest.approx(0.5)
    assert s(10_000) == 0.1  # the floor


def test_exponential():
    s = SamplingSchedule("exponential", k=0.999)
    for i in (0, 1, 700, 2500):
        assert s(i) == pytest.approx(0.999**i)
    assert SamplingSchedule("exponential", k=0.5, minimum=0.2)(10) == 0.2


def test_inverse_sigmoid():
    s = SamplingSchedule("inverse_sigmoid", k=100.0)
    for i in (0, 50, 460, 1000):
        assert s(i) == pytest.approx(100.0 / (100.0 + math.exp(i / 100.0)))
    assert s(10**7) == 0.0  # no overflow far along
    values = [s(i) for i in range(0, 2000, 10)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_none_is_teacher_forcing():
    assert SamplingSchedule()(12345) == 1.0


def test_bad_constants():
    with pytest.raises(ValueError, match="unknown scheduled-sampling decay 'cosine'"):
        SamplingSchedule("cosine")
    with pytest.raises(ValueError, match="0 < k < 1"):
        SamplingSchedule("exponential", k=1.5)
    with pytest.raises(ValueError, match="k >= 1"):
        SamplingSchedule("inverse_sigmoid", k=0.5)
    with pytest.raises(ValueError, match="slope c > 0"):
        SamplingSchedule("linear", k=1.0)
    with pytest.raises(ValueError, match="i >= 0"):
        SamplingSchedule("linear", k=1.0, c=0.1)(-1)
