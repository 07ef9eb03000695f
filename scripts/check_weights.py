"""Load weights written by convnets (Rust) into the PyTorch twin and check its logits.

    .venv/bin/python scripts/check_weights.py WEIGHTS --model lenet5|mnist-net|simple-cnn|resnet20 \
        [--io tests/golden/lenet5/io.safetensors] [--expect-logits FILE] [--tol 1e-4]

1. `load_state_dict(strict=True)`: every key the PyTorch module has must be in WEIGHTS with the
   same shape, and nothing else (so the Rust parameter names are PyTorch's state_dict keys).
2. Runs the model in eval mode under no_grad on `input` from --io (default: the golden input
   of that model, tests/golden/<case>/io.safetensors) and prints the logits.
3. With --expect-logits FILE (safetensors with key `logits`, e.g. what the Rust side computed
   on the same input), compares them: max |diff| must be <= --tol (default 1e-4).

Exit status: 0 ok, 1 logits mismatch, 2 weights do not load (missing / unexpected keys,
wrong shapes or dtypes) or bad arguments. A Rust test runs this only when Python + torch exist.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import INPUT_SHAPES, MODELS  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DEFAULT_IO = {"lenet5": "tests/golden/lenet5/io.safetensors", "mnist-net": "tests/golden/mnist_net/io.safetensors"}


def fail(code: int, msg: str) -> None:
    print(f"check_weights: {msg}", file=sys.stderr)
    sys.exit(code)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", type=Path, help="safetensors file with the model's state_dict")
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--io", type=Path, help="safetensors with key `input` (default: the model's golden io file)")
    ap.add_argument("--expect-logits", type=Path, help="safetensors with key `logits` to compare against")
    ap.add_argument("--tol", type=float, default=1e-4, help="max allowed |logit difference| (default 1e-4)")
    args = ap.parse_args()

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    try:
        state = load_file(str(args.weights))
    except Exception as e:  # noqa: BLE001 - report any unreadable file the same way
        fail(2, f"cannot read {args.weights}: {e}")
    model = MODELS[args.model]()
    expected = model.state_dict()
    bad_dtype = [f"{k}: {v.dtype} (expected {expected[k].dtype})" for k, v in state.items()
                 if k in expected and v.dtype != expected[k].dtype]
    if bad_dtype:
        fail(2, f"{args.weights}: wrong dtypes: " + "; ".join(bad_dtype))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        fail(2, f"{args.weights} does not load into {type(model).__name__} (strict): {e}")
    model.eval()
    print(f"loaded {len(state)} tensors from {args.weights} into {type(model).__name__} (strict)")

    io_path = args.io or (REPO / DEFAULT_IO[args.model] if args.model in DEFAULT_IO else None)
    if io_path is None:
        shape = INPUT_SHAPES[args.model]
        x = torch.linspace(-1.0, 1.0, 2 * shape[0] * shape[1] * shape[2]).reshape(2, *shape)
        print(f"no --io given: using input linspace(-1, 1) of shape {list(x.shape)}")
    else:
        io = load_file(str(io_path))
        if "input" not in io:
            fail(2, f"{io_path}: no key `input` (found {sorted(io)})")
        x = io["input"]
    with torch.no_grad():
        logits = model(x)
    torch.set_printoptions(precision=6, linewidth=140)
    print(f"logits {list(logits.shape)}:\n{logits}")

    if args.expect_logits is not None:
        exp = load_file(str(args.expect_logits))
        if "logits" not in exp:
            fail(2, f"{args.expect_logits}: no key `logits` (found {sorted(exp)})")
        want = exp["logits"].to(torch.float32)
        if want.shape != logits.shape:
            fail(1, f"logits shape {list(logits.shape)} but {args.expect_logits} has {list(want.shape)}")
        diff = (logits - want).abs().max().item()
        if not diff <= args.tol:  # also catches NaN
            fail(1, f"logits differ from {args.expect_logits}: max |diff| = {diff:.3e} > {args.tol:.0e}")
        print(f"ok: logits match {args.expect_logits} (max |diff| = {diff:.3e} <= {args.tol:.0e})")


if __name__ == "__main__":
    main()
