"""Write the PyTorch golden fixture of the losses (crates/train/src/loss.rs, STYLE.md, Code 7).

    scripts/setup-torch.sh && .venv/bin/python scripts/torch_loss_reference.py

One folder, tests/golden/losses/, with losses.safetensors and a README.md (written by this
script) listing every key, shape and dtype; crates/train/tests/losses_golden.rs reads it.

Inputs (float32, from a torch.Generator seeded with 0, in this order):

  logits     [6, 5]      2 * randn                   (cross_entropy, the one-hot regression cases)
  log_probs  [6, 5]      log_softmax(randn, dim=1)   (nll_loss)
  labels     [6]         int64 [3, 0, 4, 3, 1, 2]
  weight     [5]         [0.5, 1.0, 2.0, 0.25, 1.5]  (class weights)
  pred       [6, 4]      randn
  target     [6, 4]      randn, then target[2] = pred[2] (a zero distance) and
                         target[0, 1] = pred[0, 1] (a zero difference)
  pred4      [3, 2, 3, 2], target4 (same shape)  randn   (L2 over all non-batch dims)

For each case `<case>`: `<case>.mean`, `<case>.sum` (shape [1]) and `<case>.none` (per sample or
per element), and `<case>.grad`: d `<case>.mean` / d input (the logits, log_probs, pred or pred4).

  ce.plain, ce.smooth (label_smoothing 0.1), ce.weight, ce.smooth_weight (0.2 + weight),
  ce.smooth_full (label_smoothing 1.0): F.cross_entropy(logits, labels, ...)
  nll.plain, nll.weight: F.nll_loss(log_probs, labels, ...)
  mse, l1: F.mse_loss / F.l1_loss(pred, target); mse4, l14 on pred4 / target4
  l2, l24: seed 004's L2 loss, torch.linalg.vector_norm(pred - target) over every dim but the
           first, reduced over the batch (mean / sum / none)
  onehot.mse, onehot.l1, onehot.l2: the same between logits and F.one_hot(labels, 5).float(),
           what convnets_train::loss::Loss::{Mse, L1, L2}.compute do for a classifier

Float32, CPU, one thread, deterministic: reruns are byte-identical on the same torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_reference import c, describe, save_file, setup  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "golden" / "losses"
REGEN = "scripts/setup-torch.sh && .venv/bin/python scripts/torch_loss_reference.py"

LABELS = [3, 0, 4, 3, 1, 2]
WEIGHT = [0.5, 1.0, 2.0, 0.25, 1.5]


def l2_distance(pred: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """Seed 004's L2 loss: the Euclidean distance per sample (all dims but the first), reduced."""
    d = torch.linalg.vector_norm((pred - target).flatten(1), dim=1)
    return {"mean": d.mean(), "sum": d.sum(), "none": d}[reduction]


def add_case(out: dict[str, torch.Tensor], name: str, x: torch.Tensor, f: Callable[[torch.Tensor, str], torch.Tensor]) -> None:
    """Values of f(x, reduction) for each reduction, and the gradient of the mean wrt x."""
    for red in ("mean", "sum", "none"):
        v = f(x, red).detach()
        out[f"{name}.{red}"] = v.reshape(1) if v.dim() == 0 else v
    xg = x.detach().clone().requires_grad_(True)
    f(xg, "mean").backward()
    out[f"{name}.grad"] = xg.grad


def main() -> None:
    setup()
    g = torch.Generator().manual_seed(0)
    logits = 2.0 * torch.randn(6, 5, generator=g)
    log_probs = F.log_softmax(torch.randn(6, 5, generator=g), dim=1)
    pred = torch.randn(6, 4, generator=g)
    target = torch.randn(6, 4, generator=g)
    target[2] = pred[2]
    target[0, 1] = pred[0, 1]
    pred4 = torch.randn(3, 2, 3, 2, generator=g)
    target4 = torch.randn(3, 2, 3, 2, generator=g)
    labels = torch.tensor(LABELS, dtype=torch.int64)
    weight = torch.tensor(WEIGHT, dtype=torch.float32)
    onehot = F.one_hot(labels, 5).to(torch.float32)

    t: dict[str, torch.Tensor] = {
        "logits": logits, "log_probs": log_probs, "labels": labels, "weight": weight,
        "pred": pred, "target": target, "pred4": pred4, "target4": target4,
    }
    ce = {
        "ce.plain": dict(),
        "ce.smooth": dict(label_smoothing=0.1),
        "ce.weight": dict(weight=weight),
        "ce.smooth_weight": dict(label_smoothing=0.2, weight=weight),
        "ce.smooth_full": dict(label_smoothing=1.0),
    }
    for name, kw in ce.items():
        add_case(t, name, logits, lambda x, r, kw=kw: F.cross_entropy(x, labels, reduction=r, **kw))
    add_case(t, "nll.plain", log_probs, lambda x, r: F.nll_loss(x, labels, reduction=r))
    add_case(t, "nll.weight", log_probs, lambda x, r: F.nll_loss(x, labels, weight=weight, reduction=r))
    add_case(t, "mse", pred, lambda x, r: F.mse_loss(x, target, reduction=r))
    add_case(t, "l1", pred, lambda x, r: F.l1_loss(x, target, reduction=r))
    add_case(t, "l2", pred, lambda x, r: l2_distance(x, target, r))
    add_case(t, "mse4", pred4, lambda x, r: F.mse_loss(x, target4, reduction=r))
    add_case(t, "l14", pred4, lambda x, r: F.l1_loss(x, target4, reduction=r))
    add_case(t, "l24", pred4, lambda x, r: l2_distance(x, target4, r))
    add_case(t, "onehot.mse", logits, lambda x, r: F.mse_loss(x, onehot, reduction=r))
    add_case(t, "onehot.l1", logits, lambda x, r: F.l1_loss(x, onehot, reduction=r))
    add_case(t, "onehot.l2", logits, lambda x, r: l2_distance(x, onehot, r))

    # Sanity checks of the formulas the Rust code follows (PyTorch's weighted mean and smoothing).
    lsm = F.log_softmax(logits, dim=1)
    w_t = weight[labels]
    nll_w = -(w_t * lsm[torch.arange(6), labels]).sum() / w_t.sum()
    smooth_w = -(lsm * weight).sum(1).sum() / w_t.sum()
    expect = 0.8 * nll_w + 0.2 / 5 * smooth_w
    assert torch.allclose(expect, t["ce.smooth_weight.mean"][0], rtol=1e-6), (expect, t["ce.smooth_weight.mean"])
    assert t["l2.none"][2] == 0 and torch.all(t["l2.grad"][2] == 0), "zero distance must have zero gradient"
    assert t["l1.grad"][0, 1] == 0, "zero difference must have zero L1 gradient"

    meta = {"torch_version": torch.__version__}
    OUT.mkdir(parents=True, exist_ok=True)
    tensors = {k: c(v) for k, v in t.items()}
    save_file(tensors, str(OUT / "losses.safetensors"), metadata=meta)
    doc = __doc__.split("Inputs", 1)[1].split("Float32, CPU", 1)[0].rstrip()
    lines = [
        "# Golden fixture: losses",
        "",
        "PyTorch's losses with every reduction, and the gradient of the mean wrt the input, for",
        "`crates/train/tests/losses_golden.rs`. Written by `scripts/torch_loss_reference.py`.",
        "",
        "Inputs" + doc,
        "",
        "Regenerate (from the repo root):",
        "",
        "```sh",
        REGEN,
        "```",
        "",
        "Metadata (also stored in the safetensors header):",
        "",
        *[f"- `{k}`: {v}" for k, v in meta.items()],
        "",
        "## `losses.safetensors`",
        "",
        "| key | shape | dtype |",
        "| --- | --- | --- |",
        *describe(tensors),
        "",
    ]
    (OUT / "README.md").write_text("\n".join(lines))
    for k in ("ce.plain.mean", "ce.smooth_weight.mean", "nll.weight.mean", "mse.mean", "l1.mean", "l2.mean", "onehot.l2.mean"):
        print(f"{k}: {t[k].item():.7f}")
    for f in sorted(OUT.iterdir()):
        print(f"  {f.stat().st_size:>9,d}  {f.relative_to(REPO)}")


if __name__ == "__main__":
    main()
