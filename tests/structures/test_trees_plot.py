"""The picture of one tree's node states: the layout and the plotted values are the tree's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from carousel.structures import TreeBatch, plot_tree_states, tree_layout


def test_layout_puts_leaves_in_order_and_parents_over_their_children():
    b = TreeBatch.from_brackets(["(S (NP the cat) (VP sat))", "(X y)"])
    where = tree_layout(b, 0)
    assert sorted(where) == [0, 1, 2, 3, 4, 5]
    assert [where[v][0] for v in (2, 3, 5)] == [0.0, 1.0, 2.0]  # the, cat, sat
    assert where[1] == (0.5, -1.0) and where[4] == (2.0, -1.0) and where[0] == (1.25, 0.0)
    assert tree_layout(b, 1) == {6: (0.0, 0.0), 7: (0.0, -1.0)}
    with pytest.raises(ValueError, match="tree index in 0..1, got 2"):
        tree_layout(b, 2)


def test_picture_holds_each_nodes_state(tmp_path):
    b = TreeBatch.from_brackets(["(A b)", "(S (NP the cat) (VP sat))"])
    states = torch.linspace(-1, 1, b.num_nodes * 6).view(b.num_nodes, 6)
    fig = plot_tree_states(b, states, tmp_path / "tree.png", tree=1, units=4)
    assert (tmp_path / "tree.png").stat().st_size > 1000
    images = fig.axes[0].get_images()
    assert len(images) == 6  # the nodes of tree 1, in node order
    for img, v in zip(images, range(2, 8)):
        np.testing.assert_allclose(np.asarray(img.get_array()), states[v : v + 1, :4].numpy())
    with pytest.raises(ValueError, match=r"node states of shape \(N=8, H\), got \(7, 6\)"):
        plot_tree_states(b, states[:7], tmp_path / "x.png")
