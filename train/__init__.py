"""The distributed trainer of gpumix, installed as ``gpumix.train``.

Empty until the trainer issue lands.
"""
__all__ = []
