"""Captured runs of the ``"explicit"`` backend: the whole time loop, forward and backward, replayed as a CUDA graph.

An explicit run launches a dozen small kernels per step; on a GPU the launches, not the arithmetic,
set the pace of a small layer. A CUDA graph records every kernel of a run once and replays them
with one launch. The loop that is recorded is the explicit backend's own (``step.forward`` over
time, then ``step.backward`` and ``finish``): the cell's math stays written once.

How a graphed run goes (``run_graphed``):

* one cache entry per configuration: the cell (its identity, which fixes its step's kind, and its
  training mode), the shapes of ``px`` (B, T, G), of the state and of the cell's tensors, dtype,
  device, whether a recurrent mask and lengths are present, and which inputs need a gradient;
* an entry owns static buffers: ``px``, the state, the cell's tensors, the recurrent mask ``h_mask``
  (B, F), the alive mask (T, B) for lengths, the outputs ``hs`` (T+1, B, F) and the final state; for
  the backward also the incoming gradients and the outgoing ones;
* on its first call the entry warms the loop up once on a fresh step object (on a side stream, as
  torch's CUDA graph documentation asks: libraries allocate their workspaces there, outside the
  capture), then records the forward loop and, when a gradient will be needed, the backward loop
  (``recorder.capture``); both graphs share one step object, whose buffers carry the forward's
  activations to the backward;
* every call copies the inputs in (so weight updates and a newly drawn recurrent-dropout mask are
  seen: that mask is an input, drawn outside the graph), replays, and copies the outputs out;
  zoneout's keep masks are drawn inside the graph (in ``begin``), and CUDA graphs draw random
  numbers afresh at every replay;
  the backward likewise copies the gradients in, replays, and clones the gradients out (a static
  buffer handed to autograd could reach the user, through ``torch.autograd.grad`` or a hook, and be overwritten
  by the next replay).

Lengths: ``int(lengths.min())`` decides on the host which steps need masking, and the longest
length decides T; neither can be fixed in a graph. A graphed run with lengths therefore runs all
T steps with the masked step (state frozen and outputs zero past each sequence's end), the alive
mask (T, B) being one more static input. That is the same arithmetic as the uncaptured run, a few
more kernels per step, and one graph whatever the lengths.

An entry whose forward activations a pending backward still needs is *busy*: another run of the
same configuration takes a second entry (at most ``MAX_ENTRIES`` per configuration), and beyond
that runs uncaptured. An entry is free again when its backward has run or its autograd graph is
freed. A retained graph (``retain_graph=True``) whose backward runs again after another run
replayed the same entry raises a ``RuntimeError`` instead of returning wrong gradients.

The capture mechanism is injectable (``Recorder``): ``CUDAGraphRecorder`` records with
``torch.cuda.CUDAGraph``; ``ReplayRecorder``, a test double for the CPU, keeps the recorded
callable and runs it again at every replay, reading and writing the same static buffers, so the
plumbing (keys, copies in and out, busy entries) is tested without a GPU (tests/runners/test_graphs.py).

Switches: the environment variable ``CAROUSEL_CUDA_GRAPHS=0`` turns graphs off; ``use_cuda_graphs(False)``
does so inside a block, ``use_cuda_graphs(recorder=ReplayRecorder())`` forces the graphed path with
that recorder on any device. Without either, CUDA inputs are graphed and CPU inputs never are.
Not graphed (uncaptured explicit run instead): a stream that is itself being captured, torch.compile
tracing, autocast, and a configuration whose capture failed once (warned about).
"""

from __future__ import annotations

import os
import warnings
import weakref
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, Callable, ContextManager, Iterator, Protocol, Sequence

import torch
from torch import Tensor

from .scan import refuse_double_backward

MAX_ENTRIES = 3  # captured entries per configuration (runs whose backward is pending at the same time)
MAX_CONFIGS = 32  # configurations kept; the least recently used is dropped beyond this
ENV = "CAROUSEL_CUDA_GRAPHS"


class Graph(Protocol):
    def replay(self) -> None: ...


class Recorder(Protocol):
    """How runs are captured: ``warming()`` is the context the warm-up runs in, ``capture(fn)``
    records ``fn`` (which reads and writes only static buffers and returns nothing) and returns an
    object whose ``replay()`` does what ``fn`` did, on the buffers' current contents."""

    def warming(self, device: torch.device) -> ContextManager[None]: ...

    def capture(self, fn: Callable[[], None], device: torch.device) -> Graph: ...


class CUDAGraphRecorder:
    """Captures with ``torch.cuda.CUDAGraph``: warm-up and capture on one side stream per device
    (cuBLAS and friends create their handles and workspaces during the warm-up, outside the capture)."""

    def __init__(self) -> None:
        self._streams: dict[torch.device, torch.cuda.Stream] = {}

    def _stream(self, device: torch.device) -> torch.cuda.Stream:
        if device not in self._streams:
            self._streams[device] = torch.cuda.Stream(device)
        return self._streams[device]

    @contextmanager
    def warming(self, device: torch.device) -> Iterator[None]:
        side = self._stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            yield
        torch.cuda.current_stream(device).wait_stream(side)

    def capture(self, fn: Callable[[], None], device: torch.device) -> Graph:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=self._stream(device)):
            fn()
        return graph


class _Rerun:
    def __init__(self, fn: Callable[[], None], recorder: "ReplayRecorder") -> None:
        self.fn, self.recorder = fn, recorder

    def replay(self) -> None:
        self.recorder.replays += 1
        self.fn()


class ReplayRecorder:
    """The test double of ``CUDAGraphRecorder``, for the CPU: ``capture`` keeps the callable
    without running it (a CUDA capture computes nothing either), ``replay`` runs it again. It counts
    ``captures``, ``replays`` and ``warmups``, so a test can see which calls recorded and which replayed."""

    def __init__(self) -> None:
        self.captures = self.replays = self.warmups = 0

    def warming(self, device: torch.device) -> ContextManager[None]:
        self.warmups += 1
        return nullcontext()

    def capture(self, fn: Callable[[], None], device: torch.device) -> Graph:
        self.captures += 1
        return _Rerun(fn, self)


_CUDA = CUDAGraphRecorder()
_SETTING: ContextVar[tuple[bool, Recorder | None] | None] = ContextVar("carousel_cuda_graphs", default=None)


@contextmanager
def use_cuda_graphs(enabled: bool = True, *, recorder: Recorder | None = None) -> Iterator[None]:
    """Inside the block, graph explicit runs (``enabled``) or never (``enabled=False``), whatever
    ``CAROUSEL_CUDA_GRAPHS`` says. With a ``recorder`` (e.g. ``ReplayRecorder()``) every capturable
    explicit run is graphed with it, on any device; without one, CUDA runs use ``CUDAGraphRecorder``.
    Nested blocks: the innermost wins."""
    token = _SETTING.set((bool(enabled), recorder))
    try:
        yield
    finally:
        _SETTING.reset(token)


def env_enabled() -> bool:
    """False when the environment variable ``CAROUSEL_CUDA_GRAPHS`` is ``0`` (graphs off), else True."""
    return os.environ.get(ENV, "1").strip() != "0"


def graph_recorder(x: Tensor) -> Recorder | None:
    """The recorder that will capture an explicit run over ``x`` (B, T, I), or None when the run is not graphed."""
    setting = _SETTING.get()
    if setting is None:
        if x.device.type != "cuda" or not env_enabled():
            return None  # the default on the CPU: nothing changes
        recorder: Recorder | None = _CUDA
    else:
        enabled, recorder = setting
        if not enabled or (recorder is None and x.device.type != "cuda"):
            return None
        recorder = recorder or _CUDA
    if torch.compiler.is_compiling():
        return None
    if x.device.type == "cuda" and (torch.cuda.is_current_stream_capturing() or torch.is_autocast_enabled("cuda")):
        return None
    return recorder


# ------------------------------------------------------------------------------------------------
ForwardLoop = Callable[[Any, Tensor, tuple, Tensor, "Tensor | None"], tuple]
BackwardLoop = Callable[[Any, Tensor, Tensor, list, "Tensor | None"], tuple]


class _Entry:
    """One captured configuration: static buffers, the shared step object, the forward graph and,
    when a gradient is needed, the backward graph."""

    def __init__(self, recorder: Recorder, make_step: Callable[[], Any], loops: tuple[ForwardLoop, BackwardLoop],
                 px: Tensor, state: Sequence[Tensor], tensors: Sequence[Tensor], h_mask: Tensor | None,
                 alive: Tensor | None, keep: bool) -> None:
        self.keep, self.busy, self.generation = keep, False, 0
        B, T, _ = px.shape
        like = torch.empty_like  # static buffers: same shape, dtype and device
        self.px, self.state, self.tensors = like(px), [like(s) for s in state], [like(w) for w in tensors]
        self.h_mask = None if h_mask is None else like(h_mask)
        self.alive = None if alive is None else torch.empty(alive.shape, dtype=torch.bool, device=px.device)
        self.hs = px.new_empty(T + 1, B, state[0].shape[-1])  # (T+1, B, F): h entering each step, then the last
        self.final = [like(s) for s in state]
        if keep:
            self.grad_out = px.new_empty(B, T, self.hs.shape[-1])
            self.grad_final = [like(s) for s in state]
            self.grad_px, self.grad_state = like(px), [like(s) for s in state]
            self.grads = [like(w) for w in tensors]
        self._forward_loop, self._backward_loop = loops
        self._copy_in(px, state, tensors, h_mask, alive)
        device = px.device
        with torch.cuda.device(device) if device.type == "cuda" else nullcontext():
            with recorder.warming(device):  # a throwaway step: its buffers are not the graphs'
                warm = make_step()
                self._forward(warm)
                if keep:
                    self._backward(warm)
            del warm
            self.step = make_step()
            self.forward_graph = recorder.capture(lambda: self._forward(self.step), device)
            self.backward_graph = recorder.capture(lambda: self._backward(self.step), device) if keep else None

    # what the graphs record: the explicit loops between static buffers
    def _forward(self, step: Any) -> None:
        step.begin(self.px, tuple(self.tensors), tuple(self.state), self.keep, self.h_mask)
        self.hs[0].copy_(self.state[0])
        final = self._forward_loop(step, self.px, tuple(self.state), self.hs, self.alive)
        for buffer, value in zip(self.final, final):
            buffer.copy_(value)

    def _backward(self, step: Any) -> None:
        grad_px, grad_state, grads = self._backward_loop(step, self.hs, self.grad_out, list(self.grad_final), self.alive)
        self.grad_px.copy_(grad_px)
        for buffer, value in zip((*self.grad_state, *self.grads), (*grad_state, *grads)):
            buffer.copy_(value)

    def _copy_in(self, px, state, tensors, h_mask, alive) -> None:
        self.px.copy_(px)
        for buffer, value in zip((*self.state, *self.tensors), (*state, *tensors)):
            buffer.copy_(value)
        if h_mask is not None:
            self.h_mask.copy_(h_mask)
        if alive is not None:
            self.alive.copy_(alive)

    # a run
    def forward(self, px, state, tensors, h_mask, alive) -> tuple[Tensor, ...]:
        self._copy_in(px, state, tensors, h_mask, alive)
        self.generation += 1
        self.forward_graph.replay()
        self.busy = self.keep
        # outputs (B, T, F) and final state are copies: the next replay rewrites the static ones
        return (self.hs[1:].transpose(0, 1).contiguous(), *(f.clone() for f in self.final))

    def backward(self, generation: int, grad_out: Tensor, grad_final: Sequence[Tensor]) -> tuple[Tensor, list, list]:
        if generation != self.generation:
            raise RuntimeError(
                "a CUDA-graphed explicit run was asked for its backward again (retain_graph=True) after another run of "
                "the same layer and shapes replayed its graph and overwrote the activations it keeps; run this model "
                f"inside carousel.runners.graphs.use_cuda_graphs(False) or with {ENV}=0"
            )
        self.grad_out.copy_(grad_out)
        for buffer, value in zip(self.grad_final, grad_final):
            buffer.copy_(value)
        self.backward_graph.replay()
        self.busy = False  # another run may replay now; this one's activations are no longer needed once
        return self.grad_px.clone(), [g.clone() for g in self.grad_state], [g.clone() for g in self.grads]

    def release(self, generation: int) -> None:
        if generation == self.generation:
            self.busy = False


class _Lease:
    """Held by the autograd node of a graphed run: when the node is freed without a backward, its entry is free again."""

    def __init__(self, entry: _Entry) -> None:
        weakref.finalize(self, entry.release, entry.generation)


_CACHE: "OrderedDict[tuple, list[_Entry]]" = OrderedDict()
_FAILED: set[tuple] = set()


def clear_graphs() -> None:
    """Drop every captured run (their graphs and static buffers); runs still waiting for their backward keep theirs."""
    _CACHE.clear()
    _FAILED.clear()


def captured_configurations() -> int:
    """How many configurations have captured runs now (for tests and diagnostics)."""
    return len(_CACHE)


def _key(cell, px, state, tensors, h_mask, alive, grad_pattern) -> tuple:
    def sig(t: Tensor) -> tuple:
        return tuple(t.shape)

    # training mode is part of the step's kind (zoneout draws its masks inside the graph in training only)
    return (id(cell), type(cell), bool(cell.training), sig(px), tuple(map(sig, state)),
            tuple(map(sig, tensors)), px.dtype, px.device, h_mask is not None, alive is not None, grad_pattern)


class _GraphedRun(torch.autograd.Function):
    @staticmethod
    def forward(ctx, entry: _Entry, alive, h_mask, n_state: int, px: Tensor, *rest: Tensor):
        state, tensors = rest[:n_state], rest[n_state:]
        outputs = entry.forward(px, state, tensors, h_mask, alive)
        ctx.entry, ctx.generation = entry, entry.generation
        if entry.keep:
            ctx.lease = _Lease(entry)
        return outputs

    @staticmethod
    def backward(ctx, grad_out: Tensor, *grad_final: Tensor):
        refuse_double_backward("explicit")
        grad_px, grad_state, grads = ctx.entry.backward(ctx.generation, grad_out, grad_final)
        return (None, None, None, None, grad_px, *grad_state, *grads)


def run_graphed(recorder: Recorder, cell: Any, make_step: Callable[[], Any], loops: tuple[ForwardLoop, BackwardLoop],
                px: Tensor, state: Sequence[Tensor], tensors: Sequence[Tensor], h_mask: Tensor | None,
                alive: Tensor | None) -> tuple[Tensor, ...] | None:
    """``(outputs (B, T, F), *final_state)`` of an explicit run replayed from a captured graph, or None
    when no entry is free for this configuration (or its capture failed): then the caller runs uncaptured.

    ``make_step()`` gives a fresh step object of ``cell`` (``cell.explicit_step``); ``loops`` are
    ``forward(step, px, state, hs, alive) -> final_state`` (writing ``h`` of every step into
    ``hs[1:]``) and ``backward(step, hs, grad_out, grad_state, alive) -> (grad_px, grad_state0, grads)``;
    ``px`` (B, T, G), ``state`` tensors (B, F...), ``tensors`` the step's, ``h_mask`` (B, F) or None,
    ``alive`` (T, B) bool (step t of sequence b is inside its length) or None.
    """
    grad_on = torch.is_grad_enabled()
    pattern = tuple(grad_on and t.requires_grad for t in (px, *state, *tensors))
    key = _key(cell, px, state, tensors, h_mask, alive, pattern)
    if key in _FAILED:
        return None
    entries = _CACHE.get(key)
    if entries is None:
        entries = _CACHE[key] = []
        while len(_CACHE) > MAX_CONFIGS:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    entry = next((e for e in entries if not e.busy), None)
    if entry is None:
        if len(entries) >= MAX_ENTRIES:
            return None
        try:
            with torch.no_grad():
                entry = _Entry(recorder, make_step, loops, px, state, tensors, h_mask, alive, keep=any(pattern))
        except RuntimeError as error:  # a capture refused by the device: remember, warn once, run uncaptured
            if not isinstance(recorder, CUDAGraphRecorder):
                raise  # a test double's failure is a bug in carousel, not a device's limit
            if not entries:
                del _CACHE[key]
            _FAILED.add(key)
            warnings.warn(f"carousel could not capture an explicit run of {type(cell).__name__} in a CUDA graph "
                          f"({error}); this configuration runs uncaptured", RuntimeWarning, stacklevel=3)
            return None
        entries.append(entry)
    return _GraphedRun.apply(entry, alive, h_mask, len(state), px, *state, *tensors)
