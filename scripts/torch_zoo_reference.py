"""Write the PyTorch fixtures of the zoo models (tests/golden/zoo/*.json; STYLE.md, Code 7).

    /work/venv-torch/bin/python scripts/torch_zoo_reference.py [--only CASE ...] [--list]

For every case (a zoo model, sometimes with a non-default config) this script builds the
PyTorch module, overwrites EVERY parameter and buffer with the deterministic formula below,
runs a formula input through it and writes one small JSON file with:

- `keys`: `[[name, shape], ...]`, the `state_dict()` keys in order (buffers included),
- `params`: `sum(p.numel() for p in model.parameters())` (PyTorch's parameter count) and
  `buffers` (the element count of the buffers: batch-norm running statistics),
- `input`: the input shape and `input_key` of the formula that fills it,
- `logits`: the eval-mode output under `no_grad` (flattened, row-major), and `loss`, the
  mean cross-entropy of those logits against the labels `i mod classes`,
- `train` (batch-norm models without active dropout only): the train-mode output of one
  forward pass on the freshly filled model, and `running_mean` / `running_var` of the first
  batch-norm layer afterwards (momentum 0.1, unbiased variance), under the name `bn`,
- `torch_f32_error`: how far PyTorch's own float32 output is from these values.

The outputs are computed by a float64 copy of the filled float32 model (the exact result for
those float32 weights and input): train-mode batch norm over small maps amplifies rounding,
and the Rust float32 result should be judged against the exact one, not against another
float32 computation.
- `layers` (AlexNet of seed 002 only): each layer's output shape and parameter count, the
  article's two printouts.

No weight file is written: the Rust tests fill the same tensors with the same formula
(`crates/zoo/tests/common/mod.rs`), so the fixtures stay small.

The fill formula. `unit(k, n)` gives n values in [-1, 1) from integer hashing only, so both
sides produce the same bits: for i in 0..n, with wrapping 64-bit arithmetic,

    x = i * 0x9E3779B97F4A7C15 + (k + 1) * 0xD1B54A32D192ED03
    x ^= x >> 33; x *= 0xFF51AFD7ED558CCD; x ^= x >> 33; x *= 0xC4CEB9FE1A85EC53; x ^= x >> 33
    unit = (x >> 40) / 2^23 - 1            (24 bits: exact in float32)

Tensor number k (its position in `state_dict()` order, 0-based) named `name` with shape s:

    ndim >= 2 (conv / linear weight)   u * sqrt(3 / fan_in), fan_in = prod(s[1:])  (variance 1/fan_in)
    1-D `*.bias` after such a weight   u / sqrt(fan_in of that weight)             (PyTorch default)
    1-D `*.weight` (batch-norm gamma)  1 + 0.1 u
    other 1-D `*.bias` (batch-norm)    0.1 u
    `*.running_mean`                   0.1 u
    `*.running_var`                    1 + 0.5 u
    `*.num_batches_tracked`            left at 0

each computed in float64 and rounded to float32 once. The input is `unit(INPUT_KEY, n)`
reshaped to [b, c, h, w] with INPUT_KEY = 1_000_003.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import InceptionNet, ResidualNet, ResNetCifar, SimpleCNN  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "golden" / "zoo"
REGEN = "/work/venv-torch/bin/python scripts/torch_zoo_reference.py"
INPUT_KEY = 1_000_003
M64 = (1 << 64) - 1


# ----------------------------------------------------------------------------------------------
# The deterministic fill (the Rust tests implement the same formula)


def unit(k: int, n: int) -> np.ndarray:
    """n float64 values in [-1, 1), each a multiple of 2^-23 (exact in float32)."""
    i = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = i * np.uint64(0x9E3779B97F4A7C15) + np.uint64(((k + 1) * 0xD1B54A32D192ED03) & M64)
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xFF51AFD7ED558CCD)
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xC4CEB9FE1A85EC53)
        x ^= x >> np.uint64(33)
    return (x >> np.uint64(40)).astype(np.float64) / float(1 << 23) - 1.0


def fill(model: nn.Module) -> None:
    """Overwrite every parameter and buffer of `model` following the module docstring."""
    prev_fan_in = None
    with torch.no_grad():
        for k, (name, t) in enumerate(model.state_dict(keep_vars=True).items()):
            last = name.rsplit(".", 1)[-1]
            n = t.numel()
            if last == "num_batches_tracked":
                t.zero_()
                prev_fan_in = None
                continue
            u = unit(k, n)
            if t.dim() >= 2:
                fan_in = int(np.prod(t.shape[1:]))
                v = u * math.sqrt(3.0 / fan_in)
                prev_fan_in = fan_in
            elif last == "bias" and prev_fan_in is not None:
                v = u / math.sqrt(prev_fan_in)
                prev_fan_in = None
            elif last == "weight":
                v = 1.0 + 0.1 * u
                prev_fan_in = None
            elif last == "running_var":
                v = 1.0 + 0.5 * u
                prev_fan_in = None
            else:  # batch-norm bias, running_mean
                v = 0.1 * u
                prev_fan_in = None
            t.copy_(torch.from_numpy(v.astype(np.float32)).view(t.shape))


def formula_input(shape: tuple[int, ...]) -> torch.Tensor:
    n = int(np.prod(shape))
    return torch.from_numpy(unit(INPUT_KEY, n).astype(np.float32)).view(*shape)


# ----------------------------------------------------------------------------------------------
# The PyTorch twins of the zoo models not already in scripts/models.py


def alexnet_seed002(lrn: bool = False) -> nn.Sequential:
    """Seed 002's `net = nn.Sequential(...)`, as written (no dropout, no ReLU between the
    Linear layers). With `lrn`, LocalResponseNorm(5, 1e-4, 0.75, 2) after the first two ReLUs
    (Krizhevsky et al. 2012, sec. 3.3-3.4), which shifts the Sequential indices."""
    norm = (lambda: [nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)]) if lrn else (lambda: [])
    return nn.Sequential(
        nn.Conv2d(kernel_size=11, in_channels=3, out_channels=96, stride=4, padding=0),
        nn.ReLU(),
        *norm(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(kernel_size=5, in_channels=96, out_channels=256, stride=1, padding=2),
        nn.ReLU(),
        *norm(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(kernel_size=3, in_channels=256, out_channels=384, stride=1, padding=1),
        nn.ReLU(),
        nn.Conv2d(kernel_size=3, in_channels=384, out_channels=384, stride=1, padding=1),
        nn.ReLU(),
        nn.Conv2d(kernel_size=3, in_channels=384, out_channels=256, stride=1, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Linear(9216, 4096),
        nn.Linear(4096, 4096),
        nn.Linear(4096, 1000),
    )


class ZfNet(nn.Module):
    """Zeiler & Fergus 2013, Fig. 3 with the Table 1 widths (b) for layers 3, 4, 5.

    224 -> conv1 7x7/2 pad 1 (110) -> pool 3/2 ceil (55) -> conv2 5x5/2 (26) -> pool 3/2 ceil (13)
    -> conv3, conv4, conv5 3x3/1 pad 1 (13) -> pool 3/2 (6) -> 6*6*c5 -> 4096 -> 4096 -> classes.
    `lrn`: LocalResponseNorm(5, 1e-4, 0.75, 2) after pool 1 and pool 2 (the paper's "contrast
    normalized across feature maps" comes after pooling).
    """

    def __init__(self, widths=(512, 1024, 512), lrn: bool = False, dropout: float = 0.5, num_classes: int = 1000) -> None:
        super().__init__()
        c3, c4, c5 = widths
        norm = (lambda: [nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)]) if lrn else (lambda: [])
        self.features = nn.Sequential(
            nn.Conv2d(3, 96, 7, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            *norm(),
            nn.Conv2d(96, 256, 5, stride=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            *norm(),
            nn.Conv2d(256, c3, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(c5 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


class LeNet5Bn(nn.Module):
    """Seed 000's LeNet-5 with BatchNorm + ReLU + max pooling after each convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5)
        self.bn1 = nn.BatchNorm2d(6)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool2 = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(256, 320)
        self.fc2 = nn.Linear(320, 80)
        self.fc3 = nn.Linear(80, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))  # [b, 6, 12, 12]
        x = self.pool2(F.relu(self.bn2(self.conv2(x))))  # [b, 16, 4, 4]
        x = torch.flatten(x, 1)  # [b, 256]
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def googlenet(aux: bool = False, dropout: float = 0.2) -> nn.Module:
    return torchvision.models.GoogLeNet(aux_logits=aux, transform_input=False, init_weights=False, dropout=dropout)


# ----------------------------------------------------------------------------------------------
# The cases: (builder, input shape, train-mode check, the first batch-norm layer's prefix)

CASES: dict[str, dict] = {
    "simple-cnn": dict(build=SimpleCNN, input=(2, 3, 32, 32)),
    "alexnet": dict(build=alexnet_seed002, input=(1, 3, 227, 227), layers=True),
    "alexnet-lrn": dict(build=lambda: alexnet_seed002(lrn=True), input=(1, 3, 227, 227)),
    "alexnet-torchvision": dict(build=lambda: torchvision.models.alexnet(), input=(2, 3, 112, 112)),
    "zfnet": dict(build=ZfNet, input=(1, 3, 224, 224)),
    "zfnet-fig3": dict(build=lambda: ZfNet(widths=(384, 384, 256)), input=(1, 3, 224, 224)),
    "inception-net": dict(build=InceptionNet, input=(2, 1, 28, 28)),
    "residual-net": dict(build=ResidualNet, input=(2, 1, 28, 28)),
    "lenet5-bn": dict(build=LeNet5Bn, input=(4, 1, 28, 28), bn="bn1"),
    "googlenet": dict(build=googlenet, input=(2, 3, 64, 64)),
    "googlenet-train": dict(build=lambda: googlenet(dropout=0.0), input=(2, 3, 96, 96), bn="conv1.bn", eval=False),
    "googlenet-aux": dict(build=lambda: googlenet(aux=True), input=(2, 3, 64, 64)),
    "resnet18": dict(build=lambda: torchvision.models.resnet18(), input=(2, 3, 64, 64), bn="bn1"),
    "resnet34": dict(build=lambda: torchvision.models.resnet34(), input=(1, 3, 64, 64), bn="bn1"),
    "resnet50": dict(build=lambda: torchvision.models.resnet50(), input=(2, 3, 96, 96), bn="bn1"),
    "resnet20": dict(build=lambda: ResNetCifar(n=3), input=(2, 3, 32, 32), bn="bn1"),
    "resnet56": dict(build=lambda: ResNetCifar(n=9), input=(2, 3, 32, 32), bn="bn1"),
}


def f64_list(t: torch.Tensor) -> list[float]:
    """Values as JSON numbers (float64, 9 significant digits: more than float32 resolves)."""
    return [float(f"{v:.9g}") for v in t.detach().reshape(-1).double().numpy()]


def layer_table(net: nn.Sequential, shape: tuple[int, ...]) -> list[dict]:
    """Seed 002's two printouts: each layer's output shape and parameter count."""
    rows, x = [], torch.zeros(shape)
    with torch.no_grad():
        for i, layer in enumerate(net):
            x = layer(x)
            rows.append({"index": i, "kind": layer.__class__.__name__, "shape": list(x.shape),
                         "params": sum(p.numel() for p in layer.parameters())})
    return rows


def run_case(name: str, spec: dict) -> dict:
    torch.manual_seed(0)
    model = spec["build"]()
    fill(model)
    sd = model.state_dict()
    keys = [[k, list(v.shape)] for k, v in sd.items()]
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    x = formula_input(spec["input"])
    out: dict = {
        "case": name,
        "generator": REGEN + f" --only {name}",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "params": params,
        "buffers": buffers,
        "keys": keys,
        "input": list(spec["input"]),
        "input_key": INPUT_KEY,
        "input_sum": float(x.double().sum()),
    }
    # The reference outputs come from a float64 copy of the filled model, so that the tests
    # measure float32 error against the exact result (train-mode batch norm on small maps is
    # ill-conditioned: PyTorch's own float32 result differs by up to a few 1e-5 relative);
    # `torch_f32_error` records PyTorch's own float32 error for comparison.
    model64 = copy.deepcopy(model).double()
    x64 = x.double()
    if spec.get("eval", True):
        model.eval()
        model64.eval()
        with torch.no_grad():
            logits = model64(x64)
            out["torch_f32_error"] = float((model(x).double() - logits).abs().max())
        labels = torch.arange(x.shape[0]) % logits.shape[1]
        out["logits_shape"] = list(logits.shape)
        out["logits"] = f64_list(logits)
        out["loss"] = float(F.cross_entropy(logits, labels))
    if "bn" in spec:
        model.train()
        model64.train()
        with torch.no_grad():
            logits = model64(x64)
            logits32 = model(x)
            if isinstance(logits, tuple):
                logits, logits32 = logits[0], logits32[0]
        sd = model64.state_dict()
        out["train"] = {
            "logits_shape": list(logits.shape),
            "logits": f64_list(logits),
            "torch_f32_error": float((logits32.double() - logits).abs().max()),
            "bn": spec["bn"],
            "running_mean": f64_list(sd[spec["bn"] + ".running_mean"]),
            "running_var": f64_list(sd[spec["bn"] + ".running_var"]),
        }
    if spec.get("layers"):
        out["layers"] = layer_table(model, spec["input"])
    return out


NOTES = {
    "simple-cnn": "seed 003's SimpleCNN (`scripts/models.py`)",
    "alexnet": "seed 002's `nn.Sequential`, plus its per-layer table",
    "alexnet-lrn": "the same with LocalResponseNorm after the first two ReLUs",
    "alexnet-torchvision": "`torchvision.models.alexnet()`, adaptive pooling from 2x2 to 6x6",
    "zfnet": "ZFNet, Table 1 (b) widths 512/1024/512",
    "zfnet-fig3": "ZFNet, Fig. 3 widths 384/384/256",
    "inception-net": "seed 001's Inception MNIST net",
    "residual-net": "seed 001's residual MNIST net",
    "lenet5-bn": "seed 000's LeNet-5 with BatchNorm + ReLU + max pooling",
    "googlenet": "`torchvision.models.GoogLeNet(aux_logits=False)`",
    "googlenet-train": "the same with dropout 0, train mode only",
    "googlenet-aux": "with the auxiliary classifiers (keys, eval logits)",
    "resnet18": "`torchvision.models.resnet18()`",
    "resnet34": "`torchvision.models.resnet34()`",
    "resnet50": "`torchvision.models.resnet50()`",
    "resnet20": "CIFAR ResNet-20, option B (`scripts/models.py`)",
    "resnet56": "CIFAR ResNet-56, option B",
}


def write_readme() -> None:
    rows = []
    for path in sorted(OUT.glob("*.json")):
        d = json.loads(path.read_text())
        checks = ["keys"] + (["eval"] if "logits" in d else []) + (["train + BN stats"] if "train" in d else [])
        checks += ["layer table"] if "layers" in d else []
        rows.append(f"| `{path.name}` | {NOTES.get(d['case'], '')} | {d['params']:,} | {len(d['keys'])} | "
                    f"{'x'.join(map(str, d['input']))} | {', '.join(checks)} | {path.stat().st_size:,} |")
    text = f"""# PyTorch fixtures of the zoo models

Written by `scripts/torch_zoo_reference.py` (torch {torch.__version__.split('+')[0]}, torchvision
{torchvision.__version__.split('+')[0]}) and read by `crates/zoo/tests/zoo_models.rs`. No weights are stored:
the script fills every parameter and buffer with a deterministic integer-hash formula that
`crates/zoo/tests/common/mod.rs` repeats bit for bit (see the script's docstring), runs a formula
input through a float64 copy of the model, and keeps the `state_dict()` keys and shapes, the
parameter count and the outputs. Regenerate from the repository root:

```sh
{REGEN}            # all cases
{REGEN} --only resnet18  # one case
```

| file | model | parameters | keys | input | checks | bytes |
| --- | --- | ---: | ---: | --- | --- | ---: |
""" + "\n".join(rows) + "\n"
    (OUT / "README.md").write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=sorted(CASES), help="regenerate only these cases")
    ap.add_argument("--list", action="store_true", help="print each case's parameter count and keys, write nothing")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in args.only or CASES:
        res = run_case(name, CASES[name])
        if args.list:
            print(f"{name}: {res['params']:,} parameters, {res['buffers']:,} buffer elements, {len(res['keys'])} keys")
            continue
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(res, separators=(",", ":")) + "\n")
        size = path.stat().st_size
        total += size
        logits = np.array(res.get("logits", res.get("train", {}).get("logits", [0.0])))
        print(f"{name:22s} {res['params']:>12,d} params  {len(res['keys']):>4d} keys  "
              f"|logits| max {np.abs(logits).max():9.4f} std {logits.std():8.4f}  {size:>8,d} B")
    if not args.list:
        write_readme()
        print(f"{'total':22s} {total:>8,d} B in {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
