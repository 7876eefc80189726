"""Models: the mixup paper's CIFAR PreAct ResNet-18, and torchvision's classification models by name.

``PreActResNet18`` is the network that facebookresearch/mixup-cifar10 trains
by default (``models/resnet.py``: ``ResNet18 = ResNet(PreActBlock, [2, 2, 2, 2])``),
kept layer for layer: a 3x3 stem conv (64 channels) followed by BN-ReLU, four
stages of two pre-activation blocks (64/128/256/512 channels, strides
1/2/2/2), global average pooling and a linear classifier, with PyTorch's default
initialization. As in that code, a block's shortcut starts from its
pre-activated input ``relu(bn1(x))`` (a 1x1 conv when the shape changes).
"""
import torch.nn as nn
import torch.nn.functional as F

from gpumix.validation import check_int

__all__ = ["PreActBlock", "PreActResNet18", "build_model"]


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus shortcut; float (N, in_planes, H, W) -> (N, planes, H/stride, W/stride)."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """PreAct ResNet-18 for 32x32 inputs: float (N, 3, 32, 32) -> logits (N, num_classes).

    Global average pooling replaces the original ``avg_pool2d(out, 4)``; the two
    are the same on 32x32 inputs (4x4 final maps), and other sizes also work.
    """

    def __init__(self, num_classes):
        super().__init__()
        num_classes = check_int("num_classes", num_classes, 1)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        stages, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(PreActBlock(in_planes, planes, stride), PreActBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def build_model(arch, num_classes):
    """An untrained classifier: ``"preactresnet18"``, or any torchvision classification model name.

    torchvision models come from ``torchvision.models.get_model(arch,
    weights=None, num_classes=num_classes)``; names of detection, segmentation,
    video or optical-flow models are refused with a ValueError.
    """
    num_classes = check_int("num_classes", num_classes, 1)
    if arch == "preactresnet18":
        return PreActResNet18(num_classes)
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if not isinstance(arch, str) or arch not in names:
        examples = ", ".join(["preactresnet18"] + [n for n in ("resnet18", "resnet50", "wide_resnet50_2",
                                                               "vit_b_16", "convnext_tiny") if n in names])
        raise ValueError(f"arch must be 'preactresnet18' or a torchvision classification model "
                         f"(such as {examples}; {len(names)} in all), got {arch!r}")
    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)
