"""Command-line tools: gpumix-make-dataset, gpumix-scan, gpumix-make-digits, gpumix-make-fashion, gpumix-label-fit."""
__all__ = []
