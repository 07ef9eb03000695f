"""Write the PyTorch golden fixtures of the convnets-layers layer tests (STYLE.md, Code 7).

    scripts/setup-torch.sh && .venv/bin/python scripts/torch_layers_reference.py [--only CASE ...]

Cases, each a folder under tests/golden/ with one safetensors file and a README.md (written by
this script) listing every key, shape and dtype; crates/layers/tests/layers_golden.rs reads them:

  layers_batchnorm/      nn.BatchNorm2d(3): two training steps (outputs, running statistics,
                         num_batches_tracked), eval output, and the gradients of the first
                         training step wrt the input, weight and bias.
  layers_lrn/            nn.LocalResponseNorm for three settings (AlexNet's 5/1e-4/0.75/2, a
                         strong 3/0.5/0.75/1, an even size 4/0.3/0.6/1.5): outputs and input
                         gradients.
  layers_adaptive_pool/  nn.AdaptiveAvgPool2d: 7x5 -> 3x2, 10x9 -> 4x4, 2x3 -> 3x5 (output
                         larger than input): outputs and input gradients.

Every input is filled by a formula of the flat index i (written below and in each README), and
every gradient is of `loss = (y * g).sum()` with `g[i] = cos(0.11 i)`, so each fixture is a few
KiB. Float32, CPU, one thread, deterministic: reruns are byte-identical on the same torch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_reference import c, describe, save_file, setup  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
REGEN = "scripts/setup-torch.sh && .venv/bin/python scripts/torch_layers_reference.py"


def formula(shape: tuple[int, ...], a: float, b: float, scale: float = 1.0, offset: float = 0.0) -> torch.Tensor:
    """x[i] = scale * sin(a * i + b) + offset over the flat index i, float32."""
    n = 1
    for d in shape:
        n *= d
    i = torch.arange(n, dtype=torch.float64)
    return (scale * torch.sin(a * i + b) + offset).to(torch.float32).reshape(shape)


def upstream(shape: tuple[int, ...]) -> torch.Tensor:
    """The upstream gradient g[i] = cos(0.11 i) of `loss = (y * g).sum()`."""
    n = 1
    for d in shape:
        n *= d
    return torch.cos(0.11 * torch.arange(n, dtype=torch.float64)).to(torch.float32).reshape(shape)


def write(case: str, tensors: dict[str, torch.Tensor], notes: str) -> list[Path]:
    out = GOLDEN / case
    out.mkdir(parents=True, exist_ok=True)
    meta = {"torch_version": torch.__version__}
    fname = f"{case}.safetensors"
    save_file({k: c(v) for k, v in tensors.items()}, str(out / fname), metadata=meta)
    lines = [f"# Golden fixture: {case}", "", notes.strip(), "", "Regenerate (from the repo root):", "",
             "```sh", f"{REGEN} --only {case}", "```", "", "Metadata (also stored in the safetensors header):", ""]
    lines += [f"- `{k}`: {v}" for k, v in meta.items()] + [""]
    lines += [f"## `{fname}`", "", "| key | shape | dtype |", "| --- | --- | --- |", *describe(tensors), ""]
    (out / "README.md").write_text("\n".join(lines))
    return [out / fname, out / "README.md"]


def case_batchnorm() -> list[Path]:
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(1.0 + 0.1 * torch.arange(3, dtype=torch.float32))
        bn.bias.copy_(0.05 * torch.arange(3, dtype=torch.float32) - 0.05)
    x1 = formula((4, 3, 5, 5), 0.37, 0.1, 2.0).requires_grad_(True)
    x2 = formula((4, 3, 5, 5), 0.23, 0.7, 3.0, 1.5)
    bn.train()
    y1 = bn(x1)
    (y1 * upstream(y1.shape)).sum().backward()
    y2 = bn(x2)
    bn.eval()
    with torch.no_grad():
        y_eval = bn(x1)
    t = {
        "weight": bn.weight, "bias": bn.bias, "x1": x1, "x2": x2,
        "y1_train": y1, "y2_train": y2, "y_eval": y_eval,
        "running_mean": bn.running_mean, "running_var": bn.running_var,
        "num_batches_tracked": bn.num_batches_tracked,
        "grad_x1": x1.grad, "grad_weight": bn.weight.grad, "grad_bias": bn.bias.grad,
    }
    notes = """
`nn.BatchNorm2d(3)` (eps 1e-5, momentum 0.1) with weight = 1 + 0.1 c, bias = 0.05 c - 0.05.
Inputs [4, 3, 5, 5]: `x1[i] = 2 sin(0.37 i + 0.1)`, `x2[i] = 3 sin(0.23 i + 0.7) + 1.5`.
Train step 1 on x1 (`y1_train`, gradients of `(y1 * g).sum()` with `g[i] = cos(0.11 i)`:
`grad_x1`, `grad_weight`, `grad_bias`), train step 2 on x2 (`y2_train`), then the running
statistics and `num_batches_tracked` (int64, = 2), then eval on x1 (`y_eval`).
"""
    return write("layers_batchnorm", t, notes)


LRN_SETTINGS = [  # (key, size, alpha, beta, k, shape, input scale)
    ("alexnet", 5, 1e-4, 0.75, 2.0, (2, 7, 3, 3), 10.0),
    ("strong", 3, 0.5, 0.75, 1.0, (2, 4, 3, 3), 1.5),
    ("even", 4, 0.3, 0.6, 1.5, (1, 6, 2, 3), 1.5),
]


def case_lrn() -> list[Path]:
    t: dict[str, torch.Tensor] = {}
    for key, size, alpha, beta, k, shape, scale in LRN_SETTINGS:
        x = formula(shape, 0.41, 0.2, scale).requires_grad_(True)
        y = nn.LocalResponseNorm(size, alpha, beta, k)(x)
        (y * upstream(y.shape)).sum().backward()
        t[f"{key}_x"], t[f"{key}_y"], t[f"{key}_grad_x"] = x, y, x.grad
    rows = "\n".join(f"- `{key}`: `LocalResponseNorm({size}, {alpha}, {beta}, {k})` on {list(shape)}, "
                     f"`x[i] = {scale} sin(0.41 i + 0.2)`" for key, size, alpha, beta, k, shape, scale in LRN_SETTINGS)
    notes = f"""
`nn.LocalResponseNorm(size, alpha, beta, k)`: output `<key>_y` and the gradient `<key>_grad_x` of
`(y * g).sum()` with `g[i] = cos(0.11 i)`, for:

{rows}
"""
    return write("layers_lrn", t, notes)


POOL_SETTINGS = [  # (key, input shape, output size)
    ("a", (2, 3, 7, 5), (3, 2)),
    ("b", (1, 2, 10, 9), (4, 4)),
    ("c", (1, 1, 2, 3), (3, 5)),
]


def case_adaptive_pool() -> list[Path]:
    t: dict[str, torch.Tensor] = {}
    for key, shape, out in POOL_SETTINGS:
        x = formula(shape, 0.29, 0.4, 2.0).requires_grad_(True)
        y = nn.AdaptiveAvgPool2d(out)(x)
        (y * upstream(y.shape)).sum().backward()
        t[f"{key}_x"], t[f"{key}_y"], t[f"{key}_grad_x"] = x, y, x.grad
    rows = "\n".join(f"- `{key}`: {list(shape)} -> `AdaptiveAvgPool2d({out})`" for key, shape, out in POOL_SETTINGS)
    notes = f"""
`nn.AdaptiveAvgPool2d(output_size)` on `x[i] = 2 sin(0.29 i + 0.4)`: output `<key>_y` and the
gradient `<key>_grad_x` of `(y * g).sum()` with `g[i] = cos(0.11 i)`, for:

{rows}
"""
    return write("layers_adaptive_pool", t, notes)


CASES = {
    "layers_batchnorm": case_batchnorm,
    "layers_lrn": case_lrn,
    "layers_adaptive_pool": case_adaptive_pool,
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="*", choices=sorted(CASES), help="cases to regenerate (default: all)")
    args = p.parse_args()
    for name in args.only or CASES:
        setup()
        for path in CASES[name]():
            print(path.relative_to(REPO))


if __name__ == "__main__":
    main()
