"""torch.nn's recurrent modules built from carousel's parts: ``RNN``, ``LSTM``, ``GRU``.

``modules`` has their signatures; ``base`` the shared constructor and forward; ``names`` torch's
parameter names and ``state_dict`` keys; ``hidden`` the state layout; ``cudnn`` the GPU weight buffer.
"""

from .base import TorchCompatible
from .modules import GRU, LSTM, RNN

__all__ = ["RNN", "LSTM", "GRU", "TorchCompatible"]
