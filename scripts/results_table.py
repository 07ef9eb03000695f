"""Markdown tables of the reproduced accuracies, from models/<model>/results/*.csv.

    python3 scripts/results_table.py

The CSVs are the `metrics.csv` files of the runs (`runs/<run>/metrics.csv`, copied with their
`config.json`); `pytorch-seed<N>.csv` come from `scripts/torch_recipes.py` on the same machine.
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

MODELS = Path(__file__).resolve().parent.parent / "models"


def runs(model: str, prefix: str = "seed") -> dict[int, list[dict]]:
    out = {}
    for p in sorted((MODELS / model / "results").glob(f"{prefix}*.csv")):
        seed = p.stem[len(prefix):]
        if seed.isdigit():
            out[int(seed)] = list(csv.DictReader(p.open()))
    return out


def acc(row: dict, torch: bool = False) -> float:
    return float(row["test_accuracy"]) * (100.0 if torch else 1.0)


def main() -> None:
    for model, article in [("lenet5", 77.9), ("mnist-net", 98.0)]:
        ours = runs(model)
        torch = runs(model, "pytorch-seed")
        finals = {s: acc(r[-1]) for s, r in ours.items()}
        first3 = [finals[s] for s in (0, 1, 2) if s in finals]
        print(f"### {model} (article: {article} %)\n")
        print("| seeds | final test accuracy (%) | median |")
        print("| --- | --- | ---: |")
        print(f"| 0, 1, 2 | {', '.join(f'{a:.2f}' for a in first3)} | {statistics.median(first3):.2f} |")
        if len(finals) > 3:
            alls = [finals[s] for s in sorted(finals)]
            print(f"| 0–{max(finals)} | {', '.join(f'{a:.2f}' for a in alls)} | {statistics.median(alls):.2f} |")
        if torch:
            t = [acc(r[-1], True) for _, r in sorted(torch.items())]
            print(f"| PyTorch 0, 1, 2 | {', '.join(f'{a:.2f}' for a in t)} | {statistics.median(t):.2f} |")
        print()
        cols = [f"seed {s}" for s in (0, 1, 2) if s in ours] + [f"PyTorch seed {s}" for s in sorted(torch)]
        print("| epoch | " + " | ".join(cols) + " |")
        print("| ---: |" + " ---: |" * len(cols))
        for e in range(len(ours[0])):
            vals = [f"{acc(ours[s][e]):.2f}" for s in (0, 1, 2) if s in ours]
            vals += [f"{acc(torch[s][e], True):.2f}" for s in sorted(torch)]
            print(f"| {e + 1} | " + " | ".join(vals) + " |")
        print()


if __name__ == "__main__":
    main()
