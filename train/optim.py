"""The trainer's optimizer: torch's SGD or AdamW, built from a TrainConfig."""
import torch

__all__ = ["build_optimizer"]


def build_optimizer(model: torch.nn.Module, cfg, lr: float) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``model``'s parameters at learning rate ``lr``.

    "sgd": torch's SGD with ``cfg.momentum``, ``cfg.nesterov`` and ``cfg.weight_decay`` on every parameter.
    "adamw": torch's AdamW (betas 0.9/0.999, eps 1e-8) with ``cfg.weight_decay`` on the weights of more than
    one dimension and none on 1-D weights (normalization) and biases, as timm's optimizer factory does.
    """
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov)
    if cfg.optimizer != "adamw":
        raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {cfg.optimizer!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() > 1], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)
