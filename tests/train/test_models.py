"""gpumix.train.models: the mixup paper's PreAct ResNet-18 and torchvision models by name."""
import pytest
import torch

from gpumix.train.models import PreActBlock, PreActResNet18, build_model


def _expected_parameter_count(num_classes):
    """PreAct ResNet-18 of facebookresearch/mixup-cifar10, counted from its layer list."""
    def conv(cin, cout, k):
        return cin * cout * k * k

    def bn(c):
        return 2 * c

    total = conv(3, 64, 3) + bn(64)  # stem conv + BN
    cin = 64
    for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block_stride in (stride, 1):
            total += bn(cin) + conv(cin, planes, 3) + bn(planes) + conv(planes, planes, 3)
            if block_stride != 1 or cin != planes:
                total += conv(cin, planes, 1)
            cin = planes
    return total + 512 * num_classes + num_classes


def test_preactresnet18_shapes_and_layout():
    torch.manual_seed(0)
    model = build_model("preactresnet18", 10)
    assert isinstance(model, PreActResNet18)
    assert sum(p.numel() for p in model.parameters()) == _expected_parameter_count(10)
    blocks = [m for m in model.modules() if isinstance(m, PreActBlock)]
    assert [b.conv1.stride[0] for b in blocks] == [1, 1, 2, 1, 2, 1, 2, 1]
    assert [b.conv2.out_channels for b in blocks] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(x)
    assert out.shape == (2, 10) and out.dtype == torch.float32 and torch.isfinite(out).all()
    # an identity block's shortcut carries its pre-activated input, as in the mixup code
    block = blocks[1].eval()
    h = torch.randn(2, 64, 8, 8)
    with torch.no_grad():
        pre = torch.relu(block.bn1(h))
        residual = block.conv2(torch.relu(block.bn2(block.conv1(pre))))
        torch.testing.assert_close(block(h), residual + pre)


def test_preactresnet18_backward_and_hundred_classes():
    model = PreActResNet18(100)
    out = model(torch.randn(2, 3, 32, 32))
    out.square().mean().backward()
    assert out.shape == (2, 100)
    assert model.conv1.weight.grad is not None and model.conv1.weight.grad.abs().sum() > 0


def test_torchvision_model_by_name():
    torch.manual_seed(0)
    model = build_model("resnet18", 7)
    assert type(model).__module__.startswith("torchvision.models")
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)


def test_unknown_or_non_classification_arch():
    with pytest.raises(ValueError, match=r"arch must be 'preactresnet18' or a torchvision classification model "
                                         r"\(such as preactresnet18, resnet18, resnet50.*got 'resnet9000'"):
        build_model("resnet9000", 10)
    with pytest.raises(ValueError, match=r"arch must be .*got 'fasterrcnn_resnet50_fpn'"):
        build_model("fasterrcnn_resnet50_fpn", 10)  # a detection model, not a classifier
    with pytest.raises(ValueError, match=r"num_classes must be >= 1, got 0"):
        build_model("preactresnet18", 0)
