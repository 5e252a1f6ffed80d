"""carousel.structures (see DESIGN.md)."""
