"""DALI pipelines of gpumix, installed as ``gpumix.pipelines``.

Empty until the pipelines issue lands (ImageNet and CIFAR readers).
"""
__all__ = []
