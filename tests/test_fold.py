"""fold_batchnorm: same outputs as the unfolded eval model, BNs gone where foldable, only there."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from normbench.norms import fold_batchnorm, reference
from normbench.norms.fold import is_batchnorm_like


def mlp(bn1d: type[nn.Module] = nn.BatchNorm1d) -> nn.Module:
    return nn.Sequential(
        nn.Linear(10, 32),
        bn1d(32),
        nn.ReLU(),
        nn.Linear(32, 32, bias=False),
        bn1d(32),
        nn.ReLU(),
        nn.Linear(32, 2),
    )


def convnet(bn2d: type[nn.Module] = nn.BatchNorm2d) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        bn2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        bn2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus a conv1x1-BN shortcut, then ReLU (CIFAR ResNet style)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(ResidualBlock(8, 8), ResidualBlock(8, 16))
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class ConvOutputReused(nn.Module):
    """The conv's output feeds the BN and a skip: folding would change the skip."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


class ConvCalledTwice(nn.Module):
    """One conv, two BNs: the conv weight cannot absorb both."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn_a, self.bn_b = nn.BatchNorm2d(4), nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn_a(self.conv(x)) + self.bn_b(self.conv(x))


def _trained(model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """Non-trivial BN affine parameters and running statistics."""
    torch.manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if is_batchnorm_like(m):
                m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-1, 1)
        model.train()
        for _ in range(3):
            model(torch.randn(shape) * 2 + 1)
    return model


def _bn_count(model: nn.Module) -> int:
    return sum(is_batchnorm_like(m) for m in model.modules())


def _check_fold(model: nn.Module, shape: tuple[int, ...], bns_left: int) -> nn.Module:
    model = _trained(model, shape)
    before = copy.deepcopy(model.state_dict())
    folded = fold_batchnorm(model)
    assert model.training, "the original keeps its mode"
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"original modified: {key}"
    assert not folded.training and _bn_count(folded) == bns_left
    x = torch.randn(shape) * 2 + 1
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model.eval()(x), rtol=1e-5, atol=1e-5)
    return folded


@pytest.mark.parametrize("bn1d", [nn.BatchNorm1d, reference.BatchNorm1d], ids=["torch", "reference"])
def test_mlp(bn1d: type[nn.Module]) -> None:
    folded = _check_fold(mlp(bn1d), (16, 10), bns_left=0)
    assert folded[3].bias is not None, "a bias-free Linear gains the BN's shift as its bias"


@pytest.mark.parametrize("bn2d", [nn.BatchNorm2d, reference.BatchNorm2d], ids=["torch", "reference"])
def test_convnet(bn2d: type[nn.Module]) -> None:
    folded = _check_fold(convnet(bn2d), (4, 3, 8, 8), bns_left=0)
    assert isinstance(folded[1], nn.Identity) and isinstance(folded[4], nn.Identity)


def test_residual_network() -> None:
    folded = _check_fold(ResNetLike(), (4, 3, 8, 8), bns_left=0)
    assert isinstance(folded.blocks[1].shortcut[1], nn.Identity)
    assert type(folded) is ResNetLike, "the model keeps its class and forward"


def test_bn_whose_conv_output_is_reused_is_not_folded() -> None:
    folded = _check_fold(ConvOutputReused(), (2, 4, 5, 5), bns_left=1)
    assert isinstance(folded.bn, nn.BatchNorm2d)


def test_conv_called_twice_is_not_folded() -> None:
    _check_fold(ConvCalledTwice(), (2, 4, 5, 5), bns_left=2)


def test_bn_not_after_a_layer_is_left_alone() -> None:
    model = nn.Sequential(nn.BatchNorm1d(6), nn.Linear(6, 6), nn.ReLU(), nn.BatchNorm1d(6))
    _check_fold(model, (8, 6), bns_left=2)


def test_untraceable_model_is_named() -> None:
    class Branchy(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x

    with pytest.raises(TypeError, match="torch.fx"):
        fold_batchnorm(Branchy())


@pytest.mark.parametrize(
    "model_name, shape, layout", [("resnet", (3, 16, 16), "image"), ("mlp", (10,), "vector")]
)
def test_folding_the_projects_own_models(model_name, shape, layout):
    """The project's ResNet (conv -> BN everywhere, shortcut conv + BN) and MLP (Linear -> BN),
    with running statistics moved off their initial values by a few training steps."""
    from normbench.models import build_model
    from normbench.norms import norm_builder

    torch.manual_seed(0)
    depth = 14 if model_name == "resnet" else 3
    model = build_model(
        model_name, input_shape=shape, num_classes=5, norm_layer=norm_builder("batch", layout), depth=depth
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):
        loss = model(torch.randn(8, *shape) * 2 + 1).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    folded = fold_batchnorm(model)
    x = torch.randn(6, *shape)
    assert torch.allclose(folded(x), model(x), atol=1e-5)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in folded.modules())
