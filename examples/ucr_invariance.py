"""Does a UCR set's class survive a circular shift or a reversal of its series? Asked of the training file only.

For each dataset: leave-one-out 1-nearest-neighbour accuracy on the official training file (every
training series classified by its nearest other training series; the test file is never read),
under three distances between z-normalised series x, y of length T:

* ``euclidean``: ||x - y||;
* ``circular shift``: min over s of ||x - roll(y, s)||, the distance of the best starting point (a
  closed outline traced from another point; computed for all shifts at once by FFT
  cross-correlation);
* ``shift or mirror``: the smaller of that and the same for y reversed in time (the outline traced
  the other way round).

A set whose accuracy rises from the first column to the others has classes that do not change
under those moves, which is what ``carousel train ucr --roll --mirror`` teaches a network by
augmentation (Keogh, Wei, Xi, Lee & Vlachos 2006, "LB_Keogh supports exact indexing of shapes under
rotation invariance with arbitrary representations and distance measures", for the distances).

    .venv/bin/python examples/ucr_invariance.py [--datasets OSULeaf,ArrowHead] [--data-dir DIR]
"""

from __future__ import annotations

import argparse

import numpy as np

DISTANCES = ("euclidean", "circular shift", "shift or mirror")


def _z(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-8)


def squared_distances(x: np.ndarray) -> dict[str, np.ndarray]:
    """The (N, N) squared distances between the rows of ``x`` (N, T), z-normalised first, under each of
    ``DISTANCES``."""
    x = _z(np.asarray(x, dtype=np.float64))
    T = x.shape[1]
    norms = (x ** 2).sum(1)
    total = norms[:, None] + norms[None, :]
    spectra = np.fft.rfft(x, axis=1)

    def best_shift(other: np.ndarray) -> np.ndarray:  # ||x_i - roll(y_j, s)||^2 minimised over s
        cross = np.fft.irfft(spectra[:, None] * np.conj(np.fft.rfft(other, axis=1))[None], n=T, axis=2)
        return total - 2 * cross.max(-1)

    shifted = best_shift(x)
    return {"euclidean": total - 2 * x @ x.T, "circular shift": shifted,
            "shift or mirror": np.minimum(shifted, best_shift(x[:, ::-1].copy()))}


def leave_one_out(x: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Leave-one-out 1-NN accuracy of the series ``x`` (N, T) with ``labels`` (N,), per distance."""
    labels = np.asarray(labels)
    scores = {}
    for name, d in squared_distances(x).items():
        np.fill_diagonal(d, np.inf)
        scores[name] = float((labels[d.argmin(1)] == labels).mean())
    return scores


def main(argv: list[str] | None = None) -> int:
    from carousel.data.ucr import load_ucr

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="GunPoint,ArrowHead,ItalyPowerDemand,OSULeaf",
                        help="comma-separated univariate sets (default %(default)s)")
    parser.add_argument("--data-dir", default=None, help="folder of <Name>/<Name>_TRAIN.ts (default: the aeon package's)")
    args = parser.parse_args(argv)
    print("| dataset (training file, leave-one-out 1-NN) | " + " | ".join(DISTANCES) + " |")
    print("|---|" + "---:|" * len(DISTANCES))
    for name in args.datasets.split(","):
        try:
            split = load_ucr(name.strip(), "train", args.data_dir)
        except (ValueError, OSError) as error:  # a bad name or folder, a missing file or package (MissingPackageError)
            parser.error(str(error))
        if split.x.shape[2] != 1 or not bool((split.lengths == split.x.shape[1]).all()):
            parser.error(f"{name}: expected a univariate set of equal lengths, got {split.x.shape[2]} channels and lengths "
                         f"{int(split.lengths.min())} to {int(split.lengths.max())}")
        scores = leave_one_out(split.x[..., 0].double().numpy(), split.labels.numpy())
        print(f"| {name} | " + " | ".join(f"{scores[d]:.3f}" for d in DISTANCES) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
