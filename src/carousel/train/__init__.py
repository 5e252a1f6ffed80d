"""carousel.train (see DESIGN.md)."""
