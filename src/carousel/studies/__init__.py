"""Studies: experiments built from the library, end to end, each written up.

* ``gradients``: why gates work (``carousel study gradients``);
* ``demo``: the character-level language model behind ``make demo`` (``carousel demo``).
"""
