"""PyTorch twin of the convnets speed benchmark: training and inference images per second.

    .venv/bin/python benches/torch/bench.py --threads 2 --data-dir DIR --json out.json \
        [--cases lenet5,mnist-net,inception-net,residual-net,simple-cnn,resnet20] [--seconds 10]
        [--device cpu]

Cases (the recipes the Rust benches run; models from scripts/models.py):

  lenet5      seed 000 recipe A: LeNet5, Fashion-MNIST (x/255), batch 256, SGD lr 0.01
  mnist-net   seed 004 recipe B: MnistNet, MNIST Normalize(0.1307, 0.3081), batch 64,
              SGD lr 0.01 momentum 0.5
  inception-net  seed 001 InceptionNet, MNIST Normalize(0.1307, 0.3081), batch 64,
              SGD lr 0.01 momentum 0.9 (the recipe's cosine schedule is left out: it does
              not change a step's time)
  residual-net   seed 001 ResidualNet, same recipe
  simple-cnn  seed 003 SimpleCNN on CIFAR-10 shapes, batch 128, SGD lr 0.01 momentum 0.9
  resnet20    He et al. 2016 ResNet-20 (option B), CIFAR-10 shapes, batch 128,
              SGD lr 0.1 momentum 0.9 weight decay 1e-4

CIFAR-10 is not needed: the CIFAR-shaped cases use a fixed pool of CIFAR_POOL random
images (standard normal, seed 0) with random labels; speed does not depend on the values.

Per case, in a fresh subprocess (so peak RSS is the case's own):
  train  -- the whole training set preloaded as float32 tensors; each epoch a new random
            permutation is cut into whole batches (the last partial batch is dropped);
            per batch: gather, model.train(), zero_grad, forward, CrossEntropyLoss, backward,
            step. WARMUP_STEPS untimed steps, then whole batches until 2/3 of --seconds pass.
  infer  -- eval mode, no_grad, batch INFER_BATCH from the test set (the pool for CIFAR
            shapes), forward only, for the remaining 1/3 of --seconds after one warm-up batch.
  peak_rss_mb -- resource.getrusage(RUSAGE_SELF).ru_maxrss of that subprocess (importing the
            CUDA build of torch alone is ~0.5 GB of it); train_peak_rss_mb the same read when
            training ended, before inference.
  *_median -- batch size / median step time, next to the totals-based rates: on a machine
            shared with other work (cargo builds) OpenMP threads that wait for a descheduled
            sibling can slow whole steps tenfold, and the median shows it.

Output: one JSON object on stdout (and in --json FILE)
  {"torch_version", "threads", "device", "seconds", "cases": {name: {"train_images_per_s",
   "infer_images_per_s", "batch_size", "infer_batch_size", "peak_rss_mb", ...}}}
and a readable table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CASES = ("lenet5", "mnist-net", "inception-net", "residual-net", "simple-cnn", "resnet20")
INFER_BATCH = 1000
WARMUP_STEPS = 5
CIFAR_POOL = 10_000

# name: (dataset, normalize, batch, SGD kwargs)
RECIPES = {
    "lenet5": ("fashion-mnist", None, 256, dict(lr=0.01)),
    "mnist-net": ("mnist", (0.1307, 0.3081), 64, dict(lr=0.01, momentum=0.5)),
    "inception-net": ("mnist", (0.1307, 0.3081), 64, dict(lr=0.01, momentum=0.9)),
    "residual-net": ("mnist", (0.1307, 0.3081), 64, dict(lr=0.01, momentum=0.9)),
    "simple-cnn": ("cifar-random", None, 128, dict(lr=0.01, momentum=0.9)),
    "resnet20": ("cifar-random", None, 128, dict(lr=0.1, momentum=0.9, weight_decay=1e-4)),
}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (torch.set_num_threads, OMP/MKL env)")
    ap.add_argument("--data-dir", help="data root with mnist/ and fashion-mnist/ IDX .gz files (default $CONVNETS_DATA)")
    ap.add_argument("--json", type=Path, help="also write the JSON result here")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--seconds", type=float, default=10.0, help="time budget per case (2/3 train, 1/3 inference)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one case, print its JSON
    args = ap.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in args.cases if c not in RECIPES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; expected some of {list(CASES)}")
    args.data_dir = args.data_dir or os.environ.get("CONVNETS_DATA")
    if args.data_dir is None and any(RECIPES[c][0] != "cifar-random" for c in args.cases):
        ap.error("the MNIST cases need the data: pass --data-dir DIR or set CONVNETS_DATA")
    return args


def run_case(args: argparse.Namespace, name: str) -> dict:
    """Runs in the worker process; torch is imported here, after the thread env is set."""
    import resource
    import statistics
    import time

    import torch
    import torch.nn as nn

    sys.path.insert(0, str(REPO / "scripts"))
    from idx import load_split
    from models import MODELS

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    dataset, normalize, batch, sgd_kw = RECIPES[name]
    if dataset == "cifar-random":
        g = torch.Generator().manual_seed(0)
        x_train = torch.randn(CIFAR_POOL, 3, 32, 32, generator=g)
        y_train = torch.randint(0, 10, (CIFAR_POOL,), generator=g)
        x_test = x_train[:INFER_BATCH]
    else:
        x_train, y_train = load_split(Path(args.data_dir), dataset, "train", normalize=normalize)
        x_test, _ = load_split(Path(args.data_dir), dataset, "t10k", normalize=normalize, limit=INFER_BATCH)
    x_train, y_train, x_test = x_train.to(device), y_train.to(device), x_test.to(device)

    model = MODELS[name]().to(device)
    opt = torch.optim.SGD(model.parameters(), **sgd_kw)
    loss_fn = nn.CrossEntropyLoss()
    n_batches = x_train.shape[0] // batch

    def batches():
        while True:
            perm = torch.randperm(x_train.shape[0], device=device)
            for i in range(n_batches):
                idx = perm[i * batch : (i + 1) * batch]
                yield x_train[idx], y_train[idx]

    def train_step(xb, yb):
        model.train()
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    it = batches()
    for _ in range(WARMUP_STEPS):
        train_step(*next(it))
    sync()
    train_budget = args.seconds * 2 / 3
    # Each step is timed on its own (synchronised on CUDA) for the median rates below.
    step_times, t0 = [], time.perf_counter()
    while True:
        ts = time.perf_counter()
        loss = train_step(*next(it))
        sync()
        step_times.append(time.perf_counter() - ts)
        if time.perf_counter() - t0 >= train_budget:
            break
    train_s = time.perf_counter() - t0
    final_loss = loss.item()
    train_peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    model.eval()
    with torch.no_grad():
        model(x_test)  # warm-up
        sync()
        infer_budget = args.seconds / 3
        infer_times, t0 = [], time.perf_counter()
        while True:
            ts = time.perf_counter()
            model(x_test)
            sync()
            infer_times.append(time.perf_counter() - ts)
            if time.perf_counter() - t0 >= infer_budget:
                break
        infer_s = time.perf_counter() - t0

    n_test = int(x_test.shape[0])
    return {
        "train_images_per_s": len(step_times) * batch / train_s,
        "infer_images_per_s": len(infer_times) * n_test / infer_s,
        "batch_size": batch,
        "infer_batch_size": n_test,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # the peak when training ended, before inference at INFER_BATCH
        "train_peak_rss_mb": train_peak_rss_mb,
        # batch / median step time: less sensitive to other processes than the mean above
        "train_images_per_s_median": batch / statistics.median(step_times),
        "infer_images_per_s_median": n_test / statistics.median(infer_times),
        "train_steps": len(step_times),
        "train_seconds": train_s,
        "infer_batches": len(infer_times),
        "infer_seconds": infer_s,
        "last_loss": final_loss,
        "data": dataset,
        "optimizer": {"sgd": sgd_kw},
        "params": sum(p.numel() for p in model.parameters()),
    }


def main() -> None:
    args = parse_args()
    if args.worker:
        print(json.dumps(run_case(args, args.worker)))
        return

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if args.data_dir:
        env["CONVNETS_DATA"] = args.data_dir
    result_cases = {}
    for name in args.cases:
        cmd = [sys.executable, __file__, "--worker", name, "--threads", str(args.threads),
               "--seconds", str(args.seconds), "--device", args.device]
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            raise SystemExit(f"bench: case {name} failed (exit {out.returncode})")
        result_cases[name] = json.loads(out.stdout.strip().splitlines()[-1])
    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    import torch

    torch_version = torch.__version__

    result = {
        "torch_version": torch_version,
        "threads": args.threads,
        "device": args.device,
        "seconds": args.seconds,
        "cases": result_cases,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")

    hdr = (f"{'case':<14} {'batch':>5} {'train img/s':>12} {'(median)':>9} {'infer img/s':>12} {'(median)':>9}"
           f" {'peak RSS MB':>12}")
    print(f"\ntorch {torch_version}, {args.threads} thread(s), {args.device}, {args.seconds:g} s per case", file=sys.stderr)
    print(hdr + "\n" + "-" * len(hdr), file=sys.stderr)
    for name, r in result_cases.items():
        print(f"{name:<14} {r['batch_size']:>5} {r['train_images_per_s']:>12,.0f} {r['train_images_per_s_median']:>9,.0f}"
              f" {r['infer_images_per_s']:>12,.0f} {r['infer_images_per_s_median']:>9,.0f} {r['peak_rss_mb']:>12,.0f}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
