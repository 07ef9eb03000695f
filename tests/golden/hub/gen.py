"""Write the fake hub's weights and their golden logits (tests/golden/hub/; STYLE.md, Code 7).

    /work/main/.venv/bin/python tests/golden/hub/gen.py      (from the repository root)

`crates/zoo/tests/hub.rs` and `crates/cli/tests/hub.rs` serve `model.safetensors` from a fake
Hugging Face hub on 127.0.0.1 and check that the file convnets downloads (and later reads from
the offline cache) gives PyTorch's logits.

- `model.safetensors`: seed 004's MnistNet (`scripts/models.py`) right after
  `torch.manual_seed(0)`, its `state_dict()` saved by `safetensors.torch.save_file`, with the
  metadata a convnets run writes (`convnets.model`, `convnets.dataset`, `convnets.normalize`),
  so `convnets predict --weights hub:...` needs no --model / --dataset.
- `io.safetensors`: `input`, a [4, 1, 28, 28] batch from `torch.manual_seed(1)` (`torch.randn`,
  roughly the scale of normalised MNIST), and `logits = model(input)` in eval mode under
  `no_grad`, computed in float64 from the float32 weights and input (the exact answer the Rust
  float32 forward pass is judged against), stored as float32.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent.parent / "scripts"))
from models import MnistNet  # noqa: E402


def main() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    model = MnistNet().eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(
        state,
        HERE / "model.safetensors",
        metadata={
            "format": "pt",
            "convnets.model": "mnist-net",
            "convnets.dataset": "mnist",
            "convnets.normalize": "0.1307,0.3081",
            "init": "torch.manual_seed(0) then MnistNet()'s default init",
            "torch_version": torch.__version__,
        },
    )
    torch.manual_seed(1)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        logits64 = model.double()(x.double())
        logits32 = model.float()(x)
    print("float32 vs float64 logits, max |diff|:", (logits32.double() - logits64).abs().max().item())
    save_file(
        {"input": x.contiguous(), "logits": logits64.float().contiguous()},
        HERE / "io.safetensors",
        metadata={"torch_version": torch.__version__},
    )
    print("logits:", logits64.float().tolist())
    print("argmax:", logits64.argmax(1).tolist())


if __name__ == "__main__":
    main()
