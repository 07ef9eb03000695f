"""Write the PyTorch golden fixtures the Rust tests compare against (STYLE.md, Code 7).

    .venv/bin/python scripts/torch_reference.py [--data-dir DIR] [--only CASE ...]

Cases, each a folder under tests/golden/ with its safetensors files and a README.md (written
by this script) that lists every key, shape and dtype:

  lenet5/         seed 000 LeNet5 after torch.manual_seed(0): weights, 4 Fashion-MNIST test images
                  and their logits, CrossEntropy loss and the gradient of every parameter.
  mnist_net/      seed 004 MnistNet, the same on 4 MNIST test images (Normalize(0.1307, 0.3081)).
  conv_example/   seed 004's hand-worked convolution: stride 2 -> [[211, 262], [251, 169]];
                  padding 1 -> 5x5.
  sgd/            torch.optim.SGD updates, step by step, for four (momentum, dampening,
                  weight decay, nesterov) settings.
  cross_entropy/  CrossEntropyLoss (mean) and its gradient wrt the logits.

The input images come from the IDX files under --data-dir / $CONVNETS_DATA / <repo>/datasets
(`<root>/{mnist,fashion-mnist}/t10k-images-idx3-ubyte.gz`). When those are missing a
deterministic formula is used instead; the choice is recorded in the safetensors metadata
(`input_source`) and in the README, so a test can tell which one it has.

Everything is float32 on the CPU with one thread and deterministic algorithms, so reruns are
bit-identical on the same torch version.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from idx import MNIST_MEAN, MNIST_STD, idx_paths, load_split  # noqa: E402
from models import LeNet5, MnistNet  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
REGEN = "scripts/setup-torch.sh && .venv/bin/python scripts/torch_reference.py"

CONV_INPUT = [3, 4, 6, 5, 7, 2, 4, 6, 8, 2, 1, 6, 7, 8, 4, 9, 7, 4, 6, 2, 3, 7, 5, 4, 1]
CONV_STRIDE2_EXPECTED = [[211.0, 262.0], [251.0, 169.0]]  # as printed in seed 004


_ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}


def save_file(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str]) -> None:
    """Write a safetensors file with a byte-stable header (sorted keys), then read it back.

    `safetensors.torch.save_file` orders the metadata through a hash map, so reruns differ in the
    header bytes even when every tensor is identical; this writer makes reruns byte-identical.
    """
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    blobs, offset = [], 0
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))
    back = load_file(path)
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in tensors), path


def setup() -> None:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)


def c(t: torch.Tensor) -> torch.Tensor:
    """Detached, contiguous CPU copy (safetensors needs contiguous, non-shared storage)."""
    return t.detach().cpu().contiguous().clone()


def describe(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [f"| `{k}` | {list(v.shape)} | {str(v.dtype).removeprefix('torch.')} |" for k, v in tensors.items()]


def write_case(case: str, files: dict[str, dict[str, torch.Tensor]], meta: dict[str, str], notes: str) -> list[Path]:
    """Save each file's tensors (with `meta` as safetensors metadata) and a README listing them."""
    out = GOLDEN / case
    out.mkdir(parents=True, exist_ok=True)
    written = []
    lines = [f"# Golden fixture: {case}", "", notes.strip(), "", "Regenerate (from the repo root):", "",
             "```sh", f"{REGEN} --only {case}", "```", ""]
    if meta:
        lines += ["Metadata (also stored in each file's safetensors header):", ""]
        lines += [f"- `{k}`: {v}" for k, v in meta.items()] + [""]
    for fname, tensors in files.items():
        save_file({k: c(v) for k, v in tensors.items()}, str(out / fname), metadata=meta)
        written.append(out / fname)
        lines += [f"## `{fname}`", "", "| key | shape | dtype |", "| --- | --- | --- |", *describe(tensors), ""]
    (out / "README.md").write_text("\n".join(lines))
    written.append(out / "README.md")
    return written


def golden_images(data_dir: Path | None, name: str, normalize: tuple[float, float] | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """First 4 test images [4, 1, 28, 28] float32 and labels [4] int64, or the formula fallback."""
    if data_dir is not None:
        ip, lp = idx_paths(data_dir, name, "t10k")
        if ip.exists() and lp.exists():
            x, y = load_split(data_dir, name, "t10k", normalize=normalize, limit=4)
            return x, y, f"{name}/t10k-images-idx3-ubyte.gz images 0..4, x/255" + (
                f" then (x - {normalize[0]}) / {normalize[1]}" if normalize else ""
            )
    # Fallback: pixel p(n, i, j) = ((7n + 3i + 5j) mod 17) / 16, labels n*3 mod 10.
    n, i, j = torch.meshgrid(torch.arange(4), torch.arange(28), torch.arange(28), indexing="ij")
    x = (((7 * n + 3 * i + 5 * j) % 17).to(torch.float32) / 16.0).unsqueeze(1)
    if normalize:
        x = (x - normalize[0]) / normalize[1]
    y = torch.tensor([0, 3, 6, 9], dtype=torch.int64)
    return x.contiguous(), y, "formula ((7n + 3i + 5j) mod 17) / 16, labels [0, 3, 6, 9]" + (
        f", then (x - {normalize[0]}) / {normalize[1]}" if normalize else ""
    )


def model_case(case: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, source: str, article: str) -> tuple[list[Path], dict]:
    weights = {k: c(v) for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        logits = model(x)
    model.train()
    model.zero_grad()
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()
    grads = {k: c(p.grad) for k, p in model.named_parameters()}
    grads["labels"] = y.to(torch.int64)
    grads["loss"] = loss.detach().reshape(1)
    meta = {
        "model": type(model).__name__,
        "init": "torch.manual_seed(0) then the module's default init",
        "input_source": source,
        "torch_version": torch.__version__,
    }
    notes = f"""
{article}

- `weights.safetensors`: `state_dict()` right after `torch.manual_seed(0); {type(model).__name__}()`.
- `io.safetensors`: `input` and `logits = model(input)` in eval mode under `no_grad`.
- `grads.safetensors`: one gradient per parameter (same key as the weight) of
  `CrossEntropyLoss()(model(input), labels)` (mean over the batch), plus `labels` (int64) and
  the scalar `loss` stored with shape [1].
"""
    files = {
        "weights.safetensors": weights,
        "io.safetensors": {"input": x, "logits": logits},
        "grads.safetensors": grads,
    }
    summary = {"logits[0]": logits[0].tolist(), "labels": y.tolist(), "loss": loss.item()}
    return write_case(case, files, meta, notes), summary


def case_lenet5(data_dir: Path | None):
    setup()
    model = LeNet5()  # init first, so the weights do not depend on the input source
    x, y, src = golden_images(data_dir, "fashion-mnist", None)
    return model_case("lenet5", model, x, y, src, "LeNet5 of seed 000 (`scripts/models.py`), Fashion-MNIST with ToTensor scaling.")


def case_mnist_net(data_dir: Path | None):
    setup()
    model = MnistNet()
    x, y, src = golden_images(data_dir, "mnist", (MNIST_MEAN, MNIST_STD))
    return model_case("mnist_net", model, x, y, src, "MnistNet (`Net`) of seed 004 (`scripts/models.py`), MNIST with Normalize(0.1307, 0.3081).")


def case_conv_example(_data_dir: Path | None):
    setup()
    x = torch.tensor(CONV_INPUT, dtype=torch.float32).view(1, 1, 5, 5)
    w = torch.arange(1, 10, dtype=torch.float32).view(1, 1, 3, 3)
    out_stride2 = F.conv2d(x, w, stride=2)
    out_pad1 = F.conv2d(x, w, stride=1, padding=1)
    expected = torch.tensor(CONV_STRIDE2_EXPECTED).view(1, 1, 2, 2)
    if not torch.equal(out_stride2, expected):
        raise SystemExit(f"conv_example: stride-2 output {out_stride2.view(2, 2).tolist()} != article's {CONV_STRIDE2_EXPECTED}")
    print("conv_example: stride 2, no padding (seed 004 prints [[211, 262], [251, 169]]):")
    print(out_stride2.view(2, 2).to(torch.int64).numpy())
    print("conv_example: stride 1, padding 1:")
    print(out_pad1.view(5, 5).to(torch.int64).numpy())
    notes = f"""
Seed 004's worked convolution: `F.conv2d(input, weight, bias=None, ...)` with input 1x1x5x5
`{CONV_INPUT}` and weight 1x1x3x3 = 1..9 (row-major).

- `out_stride2` (stride 2, no padding) = {out_stride2.view(2, 2).to(torch.int64).tolist()} (the article's numbers;
  the script refuses to write anything else).
- `out_pad1` (stride 1, padding 1) = {out_pad1.view(5, 5).to(torch.int64).tolist()}.
"""
    files = {"conv.safetensors": {"input": x, "weight": w, "out_stride2": out_stride2, "out_pad1": out_pad1}}
    return write_case("conv_example", files, {"torch_version": torch.__version__}, notes), {}


SGD_CONFIGS = {
    # name: torch.optim.SGD keyword arguments
    "plain": dict(lr=0.1, momentum=0.0, weight_decay=0.0),
    "momentum": dict(lr=0.1, momentum=0.9, weight_decay=0.0),
    "momentum_wd": dict(lr=0.1, momentum=0.5, weight_decay=0.01, dampening=0.0),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
}
SGD_STEPS = 3


def case_sgd(_data_dir: Path | None):
    setup()
    i = torch.arange(5, dtype=torch.float32)
    p0 = (0.5 - 0.25 * i).contiguous()  # [0.5, 0.25, 0, -0.25, -0.5]
    # g_t[i] = ((3i + 2t) mod 5 - 2) / 4: the signs change from step to step, so momentum matters.
    grads = [(((3 * i + 2 * t) % 5 - 2) / 4).contiguous() for t in range(SGD_STEPS)]
    tensors: dict[str, torch.Tensor] = {"p0": p0}
    tensors.update({f"grad.{t}": g for t, g in enumerate(grads)})
    summary = {}
    for name, kw in SGD_CONFIGS.items():
        p = nn.Parameter(p0.clone())
        opt = torch.optim.SGD([p], foreach=False, **kw)
        for t, g in enumerate(grads):
            opt.zero_grad()
            p.grad = g.clone()
            opt.step()
            tensors[f"{name}.step{t + 1}"] = p.detach().clone()
        summary[name] = p.detach().tolist()
    rows = "\n".join(f"| `{n}` | {kw} |" for n, kw in SGD_CONFIGS.items())
    notes = f"""
Exact `torch.optim.SGD` updates on one parameter vector `p` (shape [5]), three steps, with the
gradient set by hand before each `step()` (`foreach=False`, the reference implementation).

- `p0` = 0.5 - 0.25 i = [0.5, 0.25, 0, -0.25, -0.5]
- `grad.{{t}}` (t = 0, 1, 2: the gradient used for step t+1) = ((3i + 2t) mod 5 - 2) / 4
- `{{config}}.step{{k}}` = p after k steps (k = 1, 2, 3) with that config:

| config | SGD arguments |
| --- | --- |
{rows}

PyTorch's rule (per step, g = grad): `g += wd * p`; if momentum: `buf = g` on the first step,
else `buf = momentum * buf + (1 - dampening) * g`; `g = g + momentum * buf` if nesterov else
`g = buf`; `p -= lr * g`.
"""
    return write_case("sgd", {"sgd.safetensors": tensors}, {"torch_version": torch.__version__}, notes), summary


def case_cross_entropy(_data_dir: Path | None):
    setup()
    logits = (torch.randn(4, 10, generator=torch.Generator().manual_seed(0)) * 3.0).requires_grad_(True)
    labels = torch.tensor([3, 0, 9, 5], dtype=torch.int64)
    loss = nn.CrossEntropyLoss()(logits, labels)
    loss.backward()
    notes = """
`nn.CrossEntropyLoss()` (mean reduction) of `logits` [4, 10] (3 * randn with seed 0) against
`labels` [4] (int64): `loss` (shape [1]) and `grad` = d loss / d logits
(= (softmax(logits) - onehot(labels)) / 4).
"""
    files = {"cross_entropy.safetensors": {"logits": logits.detach(), "labels": labels, "loss": loss.detach().reshape(1), "grad": logits.grad}}
    return write_case("cross_entropy", files, {"torch_version": torch.__version__}, notes), {"loss": loss.item()}


CASES = {
    "lenet5": case_lenet5,
    "mnist_net": case_mnist_net,
    "conv_example": case_conv_example,
    "sgd": case_sgd,
    "cross_entropy": case_cross_entropy,
}


def write_index() -> None:
    lines = [
        "# Golden fixtures from PyTorch",
        "",
        "Written by `scripts/torch_reference.py` (torch "
        f"{torch.__version__.split('+')[0]}, float32, CPU, one thread, deterministic). Each folder's README",
        "lists its keys, shapes and dtypes. Regenerate all of them from the repo root with:",
        "",
        "```sh",
        REGEN,
        "```",
        "",
        "(`CONVNETS_DATA=/path/to/data` or `--data-dir` picks the MNIST / Fashion-MNIST IDX files for",
        "the model inputs; `--only CASE` regenerates one folder.)",
        "",
        "| case | what |",
        "| --- | --- |",
        "| `lenet5/` | seed 000 LeNet5: seed-0 weights, input, logits, loss, per-parameter gradients |",
        "| `mnist_net/` | seed 004 MnistNet: the same |",
        "| `conv_example/` | seed 004's 5x5 * 3x3 convolution, stride 2 and padding 1 |",
        "| `sgd/` | torch.optim.SGD exact updates (plain, momentum, momentum + weight decay, nesterov) |",
        "| `cross_entropy/` | CrossEntropyLoss value and gradient wrt logits |",
        "",
        "Other scripts write the other folders, each with its own README:",
        "",
        "| folder | script | what |",
        "| --- | --- | --- |",
        "| `optim/` | `scripts/torch_optim_reference.py` | SGD, Adam, AdamW, RMSprop: parameters after 3 steps on fixed gradients; "
        "every schedule's sequence of rates |",
        "| `losses/` | `scripts/torch_loss_reference.py` | cross-entropy (label smoothing, class weights), NLL, MSE, L1, "
        "seed 004's L2 distance: values and gradients per reduction |",
        "| `layers_*/` | `scripts/torch_layers_reference.py` | batch norm, LRN, adaptive pooling |",
        "| `zoo/` | `scripts/torch_zoo_reference.py` | every zoo model: keys, parameter counts, logits |",
        "",
    ]
    (GOLDEN / "README.md").write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", help="data root with mnist/ and fashion-mnist/ (default $CONVNETS_DATA, then <repo>/datasets)")
    ap.add_argument("--only", nargs="+", choices=sorted(CASES), help="regenerate only these cases")
    args = ap.parse_args()
    data_dir = Path(args.data_dir or os.environ.get("CONVNETS_DATA") or REPO / "datasets")

    written: list[Path] = []
    for name in args.only or CASES:
        files, summary = CASES[name](data_dir)
        written += files
        print(f"[{name}]")
        for k, v in summary.items():
            if isinstance(v, list):
                v = np.array2string(np.array(v), precision=6, max_line_width=120, separator=", ")
            print(f"  {k}: {v}")
    write_index()
    written.append(GOLDEN / "README.md")

    total = 0
    print("\nfiles written:")
    for f in written:
        size = f.stat().st_size
        total += size
        print(f"  {size:>9,d}  {f.relative_to(REPO)}")
    print(f"  {total:>9,d}  total bytes")


if __name__ == "__main__":
    main()
