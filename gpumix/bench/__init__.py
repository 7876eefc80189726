"""Benchmarks of gpumix."""
__all__ = []
