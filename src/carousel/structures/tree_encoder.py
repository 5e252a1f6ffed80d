"""``TreeEncoder``: token ids on tree nodes -> one vector per node and one per tree."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._checks import check_choice, check_flag, check_number, check_size, factory_kwargs
from ..cells.gru import GRUCell
from ..cells.lstm import LSTMCell
from .recursive import RecursiveCell, TreeCell
from .tree_gru import TreeGRUCell
from .tree_layers import BidirectionalTree, BottomUp, TreeOutput
from .tree_lstm import ChildSumTreeLSTMCell, NaryTreeLSTMCell
from .trees import TreeBatch

TREE_CELLS = ("child_sum_lstm", "nary_lstm", "tree_gru", "recursive_shared", "recursive_positional")


def make_tree_cell(name: str, input_size: int, hidden_size: int, *, max_arity: int | None = None, **kw) -> TreeCell:
    """A tree cell by name (``TREE_CELLS``); ``max_arity`` for the positional ones (``nary_lstm``,
    ``recursive_positional``), where it sets the child positions; the order-free cells take any number
    of children and refuse it. Raises ``ValueError`` for an unknown name, a missing ``max_arity``, or
    one given to an order-free cell."""
    check_choice(name, TREE_CELLS, "tree cell")
    positional = name in ("nary_lstm", "recursive_positional")
    if positional and max_arity is None:
        raise ValueError(f"tree cell {name!r} has one weight per child position and needs max_arity")
    if not positional and max_arity is not None:
        raise ValueError(f"tree cell {name!r} takes any number of children with shared weights and has no use for "
                         f"max_arity; expected max_arity=None, got {max_arity!r}")
    if name == "child_sum_lstm":
        return ChildSumTreeLSTMCell(input_size, hidden_size, **kw)
    if name == "nary_lstm":
        return NaryTreeLSTMCell(input_size, hidden_size, max_arity=max_arity, **kw)
    if name == "tree_gru":
        return TreeGRUCell(input_size, hidden_size, **kw)
    weights = name.split("_")[1]
    return RecursiveCell(input_size, hidden_size, weights=weights, max_arity=max_arity, **kw)


class TreeEncoder(nn.Module):
    """Embedding of each node's token id, then a tree cell bottom-up (and with ``bidirectional``
    a top-down ``LSTMCell``/``GRUCell`` after it, ``BidirectionalTree``).

    ``forward(batch, ids=None)``: ``ids`` (N,) int64 token ids (default ``batch.x``) ->
    ``TreeOutput`` with ``nodes`` (N, F) and ``roots`` (T, F), ``F = hidden_size`` (twice that when
    bidirectional). Raises ``ValueError`` for ids of the wrong shape, type or range.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, hidden_size: int, *, cell: str = "child_sum_lstm",
                 max_arity: int | None = None, bidirectional: bool = False, down_cell: str = "lstm",
                 padding_idx: int | None = None, backend: str = "levels", device=None, dtype=None) -> None:
        super().__init__()
        kw = factory_kwargs(device, dtype)
        self.num_embeddings = check_size(num_embeddings, "num_embeddings")
        check_size(embedding_dim, "embedding_dim")
        bidirectional = check_flag(bidirectional, "bidirectional")
        if padding_idx is not None:
            check_number(padding_idx, "padding_idx", low=-num_embeddings, high=num_embeddings - 1, integer=True)
        self.embedding = nn.Embedding(num_embeddings, embedding_dim, padding_idx=padding_idx, **kw)
        up = make_tree_cell(cell, embedding_dim, hidden_size, max_arity=max_arity, **kw)
        if bidirectional:
            make_down = {"lstm": LSTMCell, "gru": GRUCell}[check_choice(down_cell, ("lstm", "gru"), "top-down cell")]
            self.layer: nn.Module = BidirectionalTree(up, make_down(embedding_dim + hidden_size, hidden_size, **kw),
                                                      backend=backend)
        else:
            self.layer = BottomUp(up, backend=backend)

    @property
    def output_size(self) -> int:
        return self.layer.output_size

    def forward(self, batch: TreeBatch, ids: Tensor | None = None) -> TreeOutput:
        if not isinstance(batch, TreeBatch):
            raise TypeError(f"expected a TreeBatch, got {type(batch).__name__}")
        ids = batch.x if ids is None else ids
        if not isinstance(ids, Tensor) or ids.dtype != torch.int64 or ids.shape != (batch.num_nodes,):
            got = f"{tuple(ids.shape)} {ids.dtype}" if isinstance(ids, Tensor) else type(ids).__name__
            raise ValueError(f"expected token ids of shape ({batch.num_nodes},) and dtype int64 (batch.encode(vocab) "
                             f"makes them), got {got}")
        ref = self.embedding.weight
        if ids.device != ref.device:
            raise ValueError(f"expected token ids on {ref.device} (where the embedding is), got them on {ids.device}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.num_embeddings):
            raise ValueError(f"expected token ids in 0..{self.num_embeddings - 1}, got ids from {int(ids.min())} to {int(ids.max())}")
        return self.layer(self.embedding(ids), batch)
