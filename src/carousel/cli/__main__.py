"""``python -m carousel.cli`` (what ``torchrun -m carousel.cli train ...`` runs)."""

from . import main

main()
