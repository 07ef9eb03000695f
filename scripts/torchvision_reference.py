"""PyTorch's side of the torchvision-file tests (STYLE.md, Code 7): writes torchvision models'
weights with `safetensors.torch.save_file(model.state_dict(), ...)` and what PyTorch computes
with them, into a folder the Rust test reads and then deletes. Nothing here is committed but
this script: the tests run it when a Python with torch is available and print SKIP otherwise.

    python scripts/torchvision_reference.py OUT_DIR --models resnet18,googlenet [--seed S] [--image PNG]

For every model (a convnets registry name of a torchvision-layout model):

- `OUT_DIR/<model>.safetensors`: the `state_dict()` of the torchvision module after
  `torch.manual_seed(S)` (default 0) and torchvision's own initialisation, with every batch norm's
  `weight`, `bias`, `running_mean` and `running_var` then drawn from a seeded generator (so
  eval-mode batch norm is not the identity) and `num_batches_tracked` set to 100: a file
  exactly as PyTorch writes one, int64 counters included. (No pretrained weights can be
  downloaded where convnets is developed; the test is of the file path and the arithmetic.)
- `OUT_DIR/<model>-io.safetensors`: `input`, a [1, 3, 224, 224] standard-normal tensor
  (generator seed 1), its eval-mode `logits` in float32 (PyTorch's own result) and
  `logits64`, the output of a float64 copy of the same float32 weights (the exact result the
  Rust float32 result is judged against).

With `--image PNG` (one model): `OUT_DIR/image-io.safetensors` holds `input`, the image
through torchvision's ImageNet evaluation transform on a PIL image (`Resize(256)`,
`CenterCrop(224)`, `ToTensor()`, `Normalize(IMAGENET mean, std)`), and `probs`, the
model's float32 softmax on it, and `probs64` from the float64 copy. The ImageNet test uses
ResNet-18 with seed 2: its top-6 probabilities on chelsea.png are at least 1.4e-3 apart, so the
top-5 order is decided far above rounding (seed 0's third and fourth differ by 1.6e-6).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
import torchvision
from safetensors.torch import save_file
from torchvision import transforms

BUILD = {
    "alexnet-torchvision": lambda: torchvision.models.alexnet(),
    "googlenet": lambda: torchvision.models.GoogLeNet(
        aux_logits=False, transform_input=False, init_weights=True
    ),
    "resnet18": lambda: torchvision.models.resnet18(),
    "resnet34": lambda: torchvision.models.resnet34(),
    "resnet50": lambda: torchvision.models.resnet50(),
}

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def model(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = BUILD[name]()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                n = mod.num_features
                mod.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=g))
                mod.bias.copy_(0.2 * torch.rand(n, generator=g) - 0.1)
                mod.running_mean.copy_(0.2 * torch.rand(n, generator=g) - 0.1)
                mod.running_var.copy_(0.5 + torch.rand(n, generator=g))
                mod.num_batches_tracked.fill_(100)
    return m.eval()


def outputs(m: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        y32 = m(x)
        y64 = copy.deepcopy(m).double()(x.double())
    return y32, y64


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--models", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image", type=Path)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    for name in a.models.split(","):
        m = model(name, a.seed)
        sd = {k: v.contiguous() for k, v in m.state_dict().items()}
        save_file(sd, str(a.out / f"{name}.safetensors"))
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        y32, y64 = outputs(m, x)
        save_file(
            {"input": x, "logits": y32, "logits64": y64},
            str(a.out / f"{name}-io.safetensors"),
        )
        if a.image is not None:
            from PIL import Image

            tf = transforms.Compose(
                [
                    transforms.Resize(256),
                    transforms.CenterCrop(224),
                    transforms.ToTensor(),
                    transforms.Normalize(MEAN, STD),
                ]
            )
            img = tf(Image.open(a.image).convert("RGB")).unsqueeze(0)
            p32, p64 = outputs(m, img)
            save_file(
                {
                    "input": img.contiguous(),
                    "probs": p32.softmax(1),
                    "probs64": p64.softmax(1),
                },
                str(a.out / "image-io.safetensors"),
            )
        print(name, "ok")


if __name__ == "__main__":
    main()
