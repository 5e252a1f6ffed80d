"""carousel.models (see DESIGN.md)."""
