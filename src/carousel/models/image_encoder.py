"""A small convolutional image encoder for captioning: a feature map to attend over and a vector to start from.

``ImageEncoder`` maps images (B, C, H, W) to

* ``features`` (B, S, K): one K-vector per region of a (H/8) x (W/8) grid (S = 49 regions for a
  56 x 56 image), the "annotation vectors" a captioning decoder attends over (Xu et al. 2015,
  "Show, Attend and Tell", section 3.1.1, who take them from a lower convolutional layer so that
  each keeps its place in the image); a learned position vector per region is added, so that a
  context read by attention also says *where* it was read;
* ``pooled`` (B, D): a vector of the whole image for the decoder's initial state (Vinyals et al.
  2015, "Show and Tell", section 3.1, start the decoder from the image alone). It is a linear map
  of the whole flattened feature map, not its mean, so that it keeps which region holds what (a
  mean over regions would lose the layout, which a caption must say), layer-normalised (Ba, Kiros
  & Hinton 2016). A squashing ``tanh`` there instead saturated in training (every unit beyond
  0.99 for every image after 2,500 steps on the captioning task), so the decoder's start stopped
  telling images apart; the norm keeps the vector's scale fixed.

``encode(images, lengths=None) -> (pooled, Memory(features, None))`` is the encoder interface of
``carousel.models.Seq2Seq`` (with ``init_size`` = D and ``memory_size`` = K), so
``Seq2Seq(cell, None, V, encoder=ImageEncoder(...))`` is a captioner: the bridge maps the pooled
vector to the decoder's initial state and the decoder attends over the regions.

The network, written with torch alone (no torchvision), is three convolutions:

1. ``Conv2d(4 x 4, stride 4) -> ReLU``: non-overlapping 4 x 4 patches (H/4, W/4);
2. ``Conv2d(3 x 3, padding 1) -> ReLU -> MaxPool2d(2)``: (H/8, W/8);
3. ``Conv2d(3 x 3, padding 1) -> ReLU``.

A region's features see 32 x 32 pixels. Cutting the image into patches first, instead of a 3 x 3
convolution at full resolution, costs about a tenth of the time on a CPU thread (measured: 0.03 s
against 0.28 s for a training step of 64 images of 56 x 56 with 16 channels), for the same grid.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

from .._checks import check_same_kind
from .seq2seq import Memory

__all__ = ["ImageEncoder", "ImageFeatures"]


class ImageFeatures(NamedTuple):
    """``features`` (B, S, K) per region in reading order (row by row), ``pooled`` (B, D)."""

    features: Tensor
    pooled: Tensor


class ImageEncoder(nn.Module):
    """Images (B, in_channels, H, W) -> ``ImageFeatures(features (B, S, K), pooled (B, D))``.

    ``channels``: the output channels of the three convolutions (K = the last); ``pooled_size``: D;
    ``image_size``: (H, W), each a multiple of 8 (the grid is (H/8, W/8), S = H W / 64).
    ``ValueError`` for sizes that are not positive or not multiples of 8, and for an input that
    is not (B, in_channels, H, W) of a floating dtype, or not of the parameters' dtype and device.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 64), pooled_size: int = 128, *, in_channels: int = 1,
                 image_size: tuple[int, int] = (56, 56), device=None, dtype=None) -> None:
        super().__init__()
        channels = tuple(channels)
        if len(channels) != 3 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1 for c in channels):
            raise ValueError(f"expected channels as three positive integers (one per block), got {channels!r}")
        for name, v in (("pooled_size", pooled_size), ("in_channels", in_channels)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"expected {name} to be a positive integer, got {v!r}")
        h, w = image_size
        if h < 8 or w < 8 or h % 8 or w % 8:
            raise ValueError(f"expected image_size (H, W) of multiples of 8 (a grid of H/8 x W/8 regions), got {tuple(image_size)!r}")
        kw = {"device": device, "dtype": dtype}
        c1, c2, c3 = channels
        self.convolutions = nn.Sequential(
            nn.Conv2d(in_channels, c1, 4, stride=4, **kw), nn.ReLU(),  # (B, c1, H/4, W/4)
            nn.Conv2d(c1, c2, 3, padding=1, **kw), nn.ReLU(), nn.MaxPool2d(2),  # (B, c2, H/8, W/8)
            nn.Conv2d(c2, c3, 3, padding=1, **kw), nn.ReLU())  # (B, c3, H/8, W/8)
        for conv in self.convolutions:
            if isinstance(conv, nn.Conv2d):  # He et al. 2015 (eq. 10): activations keep their scale through the ReLUs
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
        self.in_channels, self.image_size, self.grid = in_channels, (h, w), (h // 8, w // 8)
        self.feature_size, self.pooled_size = channels[-1], pooled_size
        self.memory_size, self.init_size = self.feature_size, pooled_size  # the Seq2Seq encoder interface
        self.num_regions = self.grid[0] * self.grid[1]
        self.positions = nn.Parameter(torch.randn(self.num_regions, self.feature_size, **kw) * 0.1)  # (S, K)
        self.pool = nn.Linear(self.num_regions * self.feature_size, pooled_size, **kw)
        self.pool_norm = nn.LayerNorm(pooled_size, **kw)

    def forward(self, images: Tensor) -> ImageFeatures:
        expected = (self.in_channels, *self.image_size)
        if not isinstance(images, Tensor) or images.dim() != 4 or tuple(images.shape[1:]) != expected or not images.is_floating_point():
            got = f"{tuple(images.shape)} {images.dtype}" if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"expected images of shape (B, {', '.join(map(str, expected))}) and a floating dtype, got {got}")
        check_same_kind(images, self.pool_norm.weight, "images", "the encoder's parameters")  # not torch's conv error
        fmap = self.convolutions(images)  # (B, K, H/8, W/8)
        features = fmap.flatten(2).transpose(1, 2)  # (B, S, K), regions row by row
        pooled = self.pool_norm(self.pool(fmap.flatten(1)))  # (B, D) from the whole map: keeps where things are
        return ImageFeatures(features + self.positions, pooled)

    def encode(self, images: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Memory]:
        """``Seq2Seq``'s encoder interface: images (B, C, H, W) -> init (B, D) and the memory
        ``Memory(keys=features (B, S, K), mask=None)`` (every region valid). ``ValueError`` for
        ``lengths`` other than None (an image has no length) and as ``forward``."""
        if lengths is not None:
            raise ValueError("an image has no length; expected lengths=None")
        features, pooled = self(images)
        return pooled, Memory(features, None)
