"""Models: task heads built on carousel's recurrent layers from shared parts (``parts``).

``RecurrentModel`` (features or tokens -> a stack -> a linear head at every step or at the last)
and ``CharLM`` (the character-level language model).
"""

from .char_lm import CharLM
from .heads import SequenceClassifier, SequenceTagger
from .generator import GeneratedSequences, SequenceGenerator
from .parts import CellFactory, cell_factory, check_token_ids, last_step, recurrent_stack
from .recurrent_model import RecurrentModel

__all__ = ["CharLM", "SequenceTagger", "SequenceClassifier", "SequenceGenerator", "GeneratedSequences", "RecurrentModel", "CellFactory", "cell_factory", "recurrent_stack", "check_token_ids", "last_step"]
