"""The distributed trainer of gpumix, installed as ``gpumix.train``: ``gpumix-train`` / ``python -m gpumix.train``.

Modules, lower layers first (each imports only modules listed before it):
``losses``, ``schedule``, ``models``, ``config`` (TrainConfig, recipes, the
flags), ``dist`` (torchrun's ranks), ``optim``, ``metrics``, ``data`` (the
DALI loaders), ``checkpoint`` (the schema, the run identity, resume checks,
file I/O, ``load_trained_model``), ``builder`` (the run's parts), ``loop``
(``train``), ``__main__`` (the command); ``attack`` (``gpumix-attack``) and
``label_fit`` (``gpumix-label-fit``) read trained checkpoints through
``checkpoint.load_trained_model``. Nothing is imported here.
"""
__all__: list[str] = []
