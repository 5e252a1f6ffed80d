"""Models: task heads built on carousel's recurrent layers from shared parts (``parts``).

``RecurrentModel`` (features or tokens -> a stack -> a linear head at every step or at the last)
and ``CharLM`` (the character-level language model).
"""

from .attention_plot import plot_attention
from .char_lm import CharLM
from .fcn import ConvBranch, FCNClassifier
from .heads import SequenceClassifier, SequenceTagger
from .generator import GeneratedSequences, SequenceGenerator
from .parts import CellFactory, bridge_maps, bridge_state, cell_factory, check_token_ids, last_step, recurrent_stack
from .recurrent_model import RecurrentModel
from .seq2seq import AttentionDecoder, DecoderState, Memory, Seq2Seq, SourceEncoder, TreeSourceEncoder, sequence_loss

__all__ = ["CharLM", "SequenceTagger", "SequenceClassifier", "FCNClassifier", "ConvBranch", "SequenceGenerator", "GeneratedSequences", "RecurrentModel", "CellFactory", "cell_factory", "recurrent_stack", "check_token_ids", "last_step", "bridge_maps", "bridge_state", "Seq2Seq", "AttentionDecoder", "DecoderState", "Memory", "SourceEncoder", "TreeSourceEncoder", "sequence_loss", "plot_attention"]
