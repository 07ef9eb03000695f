"""PyTorch twins of the convnets models, written as the articles write them.

The module attribute names are the contract: `state_dict()` keys here are the parameter
names on the Rust side (STYLE.md, Code 3), so weights move both ways with no renaming.

* `LeNet5`    -- seed 000 (LeNet-5 on Fashion-MNIST, 77.9 % after 20 epochs). As written:
                 average pooling and NO activation after the convolutions.
* `MnistNet`  -- seed 004 (the complete MNIST CNN, ~98 % after 10 epochs).
* `SimpleCNN` -- seed 003 (32x32x3 input, CIFAR-10 shapes); keys `layer1.conv1.weight`,
                 `layer2.conv2.weight`, ..., `layer4.fc3.bias` as the article prints them.
* `ResNet20`  -- He et al. 2016, "Deep Residual Learning for Image Recognition", sec. 4.2
                 (CIFAR-10, n=3: 6n+2 = 20 layers, 0.27 M parameters, 8.75 % error). Option-B
                 shortcuts (1x1 conv + BN projection where the shape changes); torchvision
                 naming (`layer2.0.downsample.0.weight`). PyTorch default initialisation.

* `InceptionNet`, `ResidualNet` -- seed 001 (an Inception module and a residual block on
                 MNIST: GoogLeNet-style 1x1/3x3/5x5 branches concatenated, and
                 `relu(x + conv2(relu(conv1(x))))`), the article's `Net`s.

`MODELS` maps the registry names used by the Rust zoo to the classes.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet5(nn.Module):
    """Seed 000. Input [b, 1, 28, 28] -> logits [b, 10]; 111,302 parameters (per-layer counts below)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)  # 6*1*5*5 + 6 = 156
        self.pool1 = nn.AvgPool2d(2, stride=2)
        self.conv2 = nn.Conv2d(6, 16, 5)  # 16*6*5*5 + 16 = 2,416
        self.pool2 = nn.AvgPool2d(2, stride=2)
        self.fc1 = nn.Linear(4 * 4 * 16, 320)  # 256*320 + 320 = 82,240
        self.fc2 = nn.Linear(320, 80)  # 320*80 + 80 = 25,680
        self.fc3 = nn.Linear(80, 10)  # 80*10 + 10 = 810

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)  # [b, 6, 24, 24]
        x = self.pool1(x)  # [b, 6, 12, 12]
        x = self.conv2(x)  # [b, 16, 8, 8]
        x = self.pool2(x)  # [b, 16, 4, 4]
        x = x.view(-1, 256)  # [b, 256]
        x = F.relu(self.fc1(x))  # [b, 320]
        x = F.relu(self.fc2(x))  # [b, 80]
        x = self.fc3(x)  # [b, 10]
        return x


class MnistNet(nn.Module):
    """Seed 004 (`Net` there). Input [b, 1, 28, 28] -> logits [b, 10]; 8,490 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)  # 10*1*25 + 10 = 260
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)  # 20*10*25 + 20 = 5,020
        self.pooling = nn.MaxPool2d(2)
        self.fc = nn.Linear(320, 10)  # 3,210

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch_size = x.size(0)
        x = F.relu(self.pooling(self.conv1(x)))  # [b, 10, 24, 24] -> [b, 10, 12, 12]
        x = F.relu(self.pooling(self.conv2(x)))  # [b, 20, 8, 8] -> [b, 20, 4, 4]
        x = x.view(batch_size, -1)  # [b, 320]
        x = self.fc(x)  # [b, 10]
        return x


class SimpleCNN(nn.Module):
    """Seed 003. Input [b, 3, 32, 32] -> logits [b, 10]; 1,175,818 parameters."""

    def __init__(self) -> None:
        super().__init__()
        layer1 = nn.Sequential()
        layer1.add_module("conv1", nn.Conv2d(3, 32, 3, 1, padding=1))
        layer1.add_module("relu1", nn.ReLU(True))
        layer1.add_module("pool1", nn.MaxPool2d(2, 2))
        self.layer1 = layer1

        layer2 = nn.Sequential()
        layer2.add_module("conv2", nn.Conv2d(32, 64, 3, 1, padding=1))
        layer2.add_module("relu2", nn.ReLU(True))
        layer2.add_module("pool2", nn.MaxPool2d(2, 2))
        self.layer2 = layer2

        layer3 = nn.Sequential()
        layer3.add_module("conv3", nn.Conv2d(64, 128, 3, 1, padding=1))
        layer3.add_module("relu3", nn.ReLU(True))
        layer3.add_module("pool3", nn.MaxPool2d(2, 2))
        self.layer3 = layer3

        layer4 = nn.Sequential()
        layer4.add_module("fc1", nn.Linear(2048, 512))
        layer4.add_module("fc_relu1", nn.ReLU(True))
        layer4.add_module("fc2", nn.Linear(512, 64))
        layer4.add_module("fc_relu2", nn.ReLU(True))
        layer4.add_module("fc3", nn.Linear(64, 10))
        self.layer4 = layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv1 = self.layer1(x)  # [b, 32, 16, 16]
        conv2 = self.layer2(conv1)  # [b, 64, 8, 8]
        conv3 = self.layer3(conv2)  # [b, 128, 4, 4]
        fc_input = conv3.view(conv3.size(0), -1)  # [b, 2048]
        return self.layer4(fc_input)  # [b, 10]


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; identity shortcut, or 1x1 conv + BN (option B) when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                nn.BatchNorm2d(c_out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ResNetCifar(nn.Module):
    """He et al. 2016 CIFAR ResNet with 6n+2 layers; 16/32/64 channels on 32/16/8 maps."""

    def __init__(self, n: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, n, stride=1)
        self.layer2 = self._stage(16, 32, n, stride=2)
        self.layer3 = self._stage(32, 64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(c_in: int, c_out: int, n: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlock(c_in, c_out, stride)]
        blocks += [BasicBlock(c_out, c_out, 1) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # [b, 16, 32, 32]
        x = self.layer1(x)  # [b, 16, 32, 32]
        x = self.layer2(x)  # [b, 32, 16, 16]
        x = self.layer3(x)  # [b, 64, 8, 8]
        x = torch.flatten(self.avgpool(x), 1)  # [b, 64]
        return self.fc(x)  # [b, 10]


class ResNet20(ResNetCifar):
    """ResNet-20 (n = 3), option-B shortcuts: 272,474 parameters (269,722 with the paper's
    parameter-free option A; the two 1x1 projections + their BN add 512 + 2,048 + 64 + 128)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(n=3, num_classes=num_classes)


class InceptionA(nn.Module):
    """Seed 001's Inception module: 16 + 24 + 24 + 24 = 88 output channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch1x1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch5x5_1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch5x5_2 = nn.Conv2d(16, 24, kernel_size=5, padding=2)
        self.branch3x3_1 = nn.Conv2d(in_channels, 16, kernel_size=1)
        self.branch3x3_2 = nn.Conv2d(16, 24, kernel_size=3, padding=1)
        self.branch3x3_3 = nn.Conv2d(24, 24, kernel_size=3, padding=1)
        self.branch_pool = nn.Conv2d(in_channels, 24, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3 = self.branch3x3_3(self.branch3x3_2(self.branch3x3_1(x)))
        branch_pool = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([branch1x1, branch5x5, branch3x3, branch_pool], dim=1)


class InceptionNet(nn.Module):
    """Seed 001's GoogLeNet-style MNIST net (`Net` there). conv1/conv2 are registered before
    the Inception modules, as in the article's code, which sets the state_dict order."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(88, 20, kernel_size=5)
        self.incep1 = InceptionA(in_channels=10)
        self.incep2 = InceptionA(in_channels=20)
        self.mp = nn.MaxPool2d(2)
        self.fc = nn.Linear(1408, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_size = x.size(0)
        x = F.relu(self.mp(self.conv1(x)))  # [b, 10, 12, 12]
        x = self.incep1(x)  # [b, 88, 12, 12]
        x = F.relu(self.mp(self.conv2(x)))  # [b, 20, 4, 4]
        x = self.incep2(x)  # [b, 88, 4, 4]
        x = x.view(in_size, -1)  # [b, 1408]
        return self.fc(x)


class ResidualBlock(nn.Module):
    """Seed 001: y = relu(x + conv2(relu(conv1(x)))), channels kept."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv1(x))
        y = self.conv2(y)
        return F.relu(x + y)


class ResidualNet(nn.Module):
    """Seed 001's residual MNIST net (`Net` there)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=5)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)
        self.mp = nn.MaxPool2d(2)
        self.rblock1 = ResidualBlock(16)
        self.rblock2 = ResidualBlock(32)
        self.fc = nn.Linear(512, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_size = x.size(0)
        x = self.mp(F.relu(self.conv1(x)))  # [b, 16, 12, 12]
        x = self.rblock1(x)
        x = self.mp(F.relu(self.conv2(x)))  # [b, 32, 4, 4]
        x = self.rblock2(x)
        x = x.view(in_size, -1)  # [b, 512]
        return self.fc(x)


MODELS: dict[str, type[nn.Module]] = {
    "lenet5": LeNet5,
    "mnist-net": MnistNet,
    "simple-cnn": SimpleCNN,
    "resnet20": ResNet20,
    "inception-net": InceptionNet,
    "residual-net": ResidualNet,
}

# Input shape (without batch) each registry entry expects.
INPUT_SHAPES: dict[str, tuple[int, int, int]] = {
    "lenet5": (1, 28, 28),
    "mnist-net": (1, 28, 28),
    "simple-cnn": (3, 32, 32),
    "resnet20": (3, 32, 32),
    "inception-net": (1, 28, 28),
    "residual-net": (1, 28, 28),
}


def build(name: str) -> nn.Module:
    """Instantiate a model by registry name (`lenet5`, `mnist-net`, `simple-cnn`, `resnet20`,
    `inception-net`, `residual-net`)."""
    try:
        return MODELS[name]()
    except KeyError:
        raise SystemExit(f"unknown model {name!r}; expected one of {sorted(MODELS)}") from None


if __name__ == "__main__":
    # Print each model's parameter count and state_dict keys (what the Rust tests compare to).
    for name, cls in MODELS.items():
        m = cls()
        n = sum(p.numel() for p in m.parameters())
        print(f"{name}: {n:,} parameters")
        for k, v in m.state_dict().items():
            print(f"  {k:40s} {list(v.shape)}")
