"""carousel.regularize (see DESIGN.md)."""
