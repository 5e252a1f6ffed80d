"""Models: task heads built on carousel's recurrent layers (character-level language model, ...)."""

from .char_lm import CharLM, cell_factory

__all__ = ["CharLM", "cell_factory"]
