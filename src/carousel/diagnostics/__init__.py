"""carousel.diagnostics (see DESIGN.md)."""
