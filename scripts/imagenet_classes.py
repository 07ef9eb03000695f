"""Write crates/data/src/imagenet/classes.txt: the 1000 ImageNet-1k class names, one per
line in class-index order, as torchvision lists them in its weights' metadata
(`ResNet18_Weights.IMAGENET1K_V1.meta["categories"]`; no download: the list ships in
torchvision's source).

    /work/main/.venv/bin/python scripts/imagenet_classes.py
"""

from pathlib import Path

from torchvision.models import ResNet18_Weights

names = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]
assert len(names) == 1000 and all(n and "\n" not in n for n in names)
out = Path(__file__).resolve().parent.parent / "crates/data/src/imagenet/classes.txt"
out.write_text("".join(n + "\n" for n in names))
print(f"{out}: {len(names)} names")
