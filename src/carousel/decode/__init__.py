"""carousel.decode (see DESIGN.md)."""
