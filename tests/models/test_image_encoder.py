"""``ImageEncoder``: regions in reading order that keep their place (a shift by one region moves the
features by one region), a receptive field that stays local, a pooled vector that knows where
things are, the ``Seq2Seq`` encoder interface, and refusals of bad input."""

import pytest
import torch

from carousel.models.image_encoder import ImageEncoder
from carousel.models.seq2seq import Memory


def encoder(**kw):
    torch.manual_seed(0)
    return ImageEncoder((4, 8, 8), 16, **kw).eval()


def blob() -> torch.Tensor:
    img = torch.zeros(1, 1, 56, 56)
    img[0, 0, 18:30, 10:20] = torch.rand(12, 10, generator=torch.Generator().manual_seed(1))
    return img


def test_a_shift_by_one_region_moves_the_features_by_one_region():
    enc = encoder()  # biases start at zero: the blank background and the padding look alike
    img = blob()
    right = torch.roll(img, 8, dims=3)  # 8 pixels = one region to the right
    down = torch.roll(img, 8, dims=2)
    with torch.no_grad():
        f = (enc(img).features - enc.positions).reshape(1, 7, 7, 8)  # regions row by row
        fr = (enc(right).features - enc.positions).reshape(1, 7, 7, 8)
        fd = (enc(down).features - enc.positions).reshape(1, 7, 7, 8)
    assert f.abs().sum() > 0
    torch.testing.assert_close(fr[:, :, 1:], f[:, :, :-1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(fd[:, 1:], f[:, :-1], atol=1e-6, rtol=1e-5)


def test_a_region_sees_only_its_neighbourhood():
    enc = encoder()
    img = torch.rand(1, 1, 56, 56)
    changed = img.clone()
    changed[0, 0, :8, :8] = 1 - changed[0, 0, :8, :8]  # the top-left region's pixels
    with torch.no_grad():
        a = enc(img).features.reshape(7, 7, 8)
        b = enc(changed).features.reshape(7, 7, 8)
    differs = (a - b).abs().amax(-1) > 0  # (7, 7)
    assert differs[0, 0] and not differs[3:].any() and not differs[:, 3:].any()  # a receptive field of 32 pixels


def test_the_pooled_vector_knows_where_things_are():
    enc = encoder()
    img = blob()
    with torch.no_grad():
        a = enc(img).pooled
        b = enc(torch.roll(img, 24, dims=3)).pooled
    assert a.shape == (1, 16) and (a - b).abs().max() > 1e-3


def test_the_seq2seq_encoder_interface():
    enc = encoder()
    assert (enc.init_size, enc.memory_size, enc.num_regions, enc.grid) == (16, 8, 49, (7, 7))
    init, memory = enc.encode(torch.rand(3, 1, 56, 56))
    assert isinstance(memory, Memory) and memory.mask is None and memory.keys.shape == (3, 49, 8) and init.shape == (3, 16)
    with pytest.raises(ValueError, match="an image has no length"):
        enc.encode(torch.rand(3, 1, 56, 56), torch.tensor([1, 2, 3]))


@pytest.mark.parametrize("images, words", [
    (torch.rand(2, 56, 56), r"expected images of shape \(B, 1, 56, 56\) and a floating dtype, got \(2, 56, 56\)"),
    (torch.rand(2, 1, 48, 56), r"got \(2, 1, 48, 56\)"),
    (torch.zeros(2, 1, 56, 56, dtype=torch.uint8), "torch.uint8"),
    # float64 images for float32 weights: carousel's words, not torch's convolution error
    (torch.rand(2, 1, 56, 56, dtype=torch.float64),
     r"expected images of dtype torch.float32 \(that of the encoder's parameters\), got torch.float64"),
])
def test_bad_images_are_refused(images, words):
    with pytest.raises(ValueError, match=words):
        encoder()(images)


@pytest.mark.parametrize("kw, words", [
    ({"channels": (4, 8)}, "three positive integers"),
    ({"pooled_size": 0}, "pooled_size to be a positive integer"),
    ({"image_size": (50, 56)}, "multiples of 8"),
])
def test_bad_sizes_are_refused(kw, words):
    args = {"channels": (4, 8, 8), "pooled_size": 16, **kw}
    with pytest.raises(ValueError, match=words):
        ImageEncoder(args.pop("channels"), args.pop("pooled_size"), **args)
