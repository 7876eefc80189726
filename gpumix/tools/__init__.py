"""Command-line tools: gpumix-make-dataset and gpumix-scan."""
__all__ = []
