"""carousel.structures: trees and graphs — batches, recursive networks, Tree-LSTMs (see DESIGN.md)."""

from .ggnn import GatedGraphNetwork, GatedSumReadout, NodeReadout, NodeStates
from .graphs import Graph, GraphBatch
from .recursive import RecursiveCell, TreeCell
from .tree_encoder import TREE_CELLS, TreeEncoder, make_tree_cell
from .tree_gru import TreeGRUCell
from .tree_layers import BidirectionalTree, BottomUp, TopDown, TreeOutput
from .tree_lstm import ChildSumTreeLSTMCell, NaryTreeLSTMCell
from .tree_plot import plot_tree_states, tree_layout
from .trees import TreeBatch

__all__ = [
    "TreeBatch",
    "TreeCell",
    "RecursiveCell",
    "ChildSumTreeLSTMCell",
    "NaryTreeLSTMCell",
    "TreeGRUCell",
    "BottomUp",
    "TopDown",
    "BidirectionalTree",
    "TreeOutput",
    "TreeEncoder",
    "TREE_CELLS",
    "make_tree_cell",
    "plot_tree_states",
    "tree_layout",
    "Graph",
    "GraphBatch",
    "GatedGraphNetwork",
    "NodeStates",
    "NodeReadout",
    "GatedSumReadout",
]
