"""Write the PyTorch fixtures for our optimizers and learning-rate schedules (tests/golden/optim/).

    .venv/bin/python scripts/torch_optim_reference.py

Writes, under tests/golden/optim/:

  params.safetensors     three seeded parameters `p0` [2, 3], `p1` [4], `p2` [3] and the gradients
                         of three steps, `grad{t}.p{j}` (t = 0, 1, 2); `p2` has no gradient at
                         step t = 1 (`p.grad = None`, so PyTorch skips it and its step counter
                         stays behind).
  {config}.safetensors   for every optimizer configuration: `p{j}.step{k}`, the parameters after
                         k = 1, 2, 3 steps, and `state.{j}.{buffer}`, the optimizer's state after
                         the third step (`optimizer.state_dict()["state"]`, PyTorch's names).
  optimizers.json        each configuration: the torch class and keyword arguments, and the same
                         configuration as our `OptimizerConfig` JSON.
  schedules.json         for every schedule: our `ScheduleConfig` JSON, the PyTorch construction,
                         the losses fed to ReduceLROnPlateau, and `lrs`, the sequence of
                         `optimizer.param_groups[0]["lr"]`: after construction, then after each
                         `scheduler.step()` (one per epoch; one per batch for OneCycleLR).
  README.md              what is in each file.

Everything runs on the CPU in float32 (the optimizers with `foreach=False`, the reference
single-tensor implementations), so reruns are bit-identical on the same torch version.
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import torch
from torch.optim import SGD, Adam, AdamW, RMSprop
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_reference import c, describe, save_file, setup  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "tests" / "golden" / "optim"
REGEN = "scripts/setup-torch.sh && .venv/bin/python scripts/torch_optim_reference.py"
STEPS = 3
SHAPES = [(2, 3), (4,), (3,)]

# name: (torch class, keyword arguments, our OptimizerConfig JSON)
OPTIMIZERS = {
    "sgd_nesterov_wd": (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
                        dict(name="sgd", lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "sgd_dampening": (SGD, dict(lr=0.1, momentum=0.5, dampening=0.2, weight_decay=0.001),
                      dict(name="sgd", lr=0.1, momentum=0.5, dampening=0.2, weight_decay=0.001)),
    "adam": (Adam, dict(lr=1e-3), dict(name="adam")),
    "adam_amsgrad_wd": (Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, amsgrad=True),
                        dict(name="adam", lr=0.01, betas=[0.8, 0.99], eps=1e-6, weight_decay=0.05, amsgrad=True)),
    "adamw": (AdamW, dict(lr=0.02), dict(name="adamw", lr=0.02)),
    "adamw_amsgrad": (AdamW, dict(lr=0.005, weight_decay=0.1, amsgrad=True),
                      dict(name="adamw", lr=0.005, weight_decay=0.1, amsgrad=True)),
    "rmsprop": (RMSprop, dict(lr=0.01), dict(name="rmsprop")),
    "rmsprop_momentum": (RMSprop, dict(lr=0.01, momentum=0.9), dict(name="rmsprop", momentum=0.9)),
    "rmsprop_centered_momentum": (
        RMSprop, dict(lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.01, momentum=0.8, centered=True),
        dict(name="rmsprop", lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.01, momentum=0.8, centered=True)),
}


def make_params_and_grads() -> tuple[list[torch.Tensor], list[list[torch.Tensor | None]]]:
    g = torch.Generator().manual_seed(2024)
    params = [torch.randn(s, generator=g) for s in SHAPES]
    grads: list[list[torch.Tensor | None]] = []
    for t in range(STEPS):
        # Magnitudes from 1e-3 to ~3: Adam's and RMSprop's normalisation matter.
        step = [torch.randn(s, generator=g) * (0.5 + t) for s in SHAPES]
        step[0][0, 0] = 0.0  # a zero gradient (Adam: 0 / eps)
        step[1][1] = 1e-3 * (t + 1)  # a small one, against larger ones
        if t == 1:
            step[2] = None  # p2 gets no gradient at the second step
        grads.append(step)
    return params, grads


def optimizer_case(name: str, params0, grads) -> tuple[dict[str, torch.Tensor], dict]:
    cls, kwargs, ours = OPTIMIZERS[name]
    ps = [torch.nn.Parameter(p.clone()) for p in params0]
    opt = cls(ps, foreach=False, **kwargs)
    out: dict[str, torch.Tensor] = {}
    for t in range(STEPS):
        opt.zero_grad(set_to_none=True)
        for p, gr in zip(ps, grads[t]):
            p.grad = None if gr is None else gr.clone()
        opt.step()
        for j, p in enumerate(ps):
            out[f"p{j}.step{t + 1}"] = p.detach().clone()
    for j, st in opt.state_dict()["state"].items():
        for buf, v in st.items():
            if v is not None:
                out[f"state.{j}.{buf}"] = v.detach().clone()
    meta = {"torch": f"torch.optim.{cls.__name__}(params, foreach=False, **{kwargs})", "ours": ours}
    return out, meta


# Schedules. `per`: "epoch" (step() once per epoch) or "batch" (OneCycleLR: once per batch).
BASE_LR = 0.1


def sched_constant_warmup(opt, _epochs, _spe):
    warm = LinearLR(opt, start_factor=0.25, end_factor=1.0, total_iters=3)
    main = LambdaLR(opt, lambda _e: 1.0)
    return SequentialLR(opt, [warm, main], milestones=[3])


SCHEDULES = {
    # name: (our ScheduleConfig JSON, epochs, steps_per_epoch, per, constructor, PyTorch text, losses)
    "constant": (
        dict(kind=dict(name="constant"), warmup_epochs=0, warmup_start_factor=1.0), 6, 1, "epoch",
        lambda opt, e, s: LambdaLR(opt, lambda _e: 1.0), "LambdaLR(opt, lambda _: 1.0)", None),
    "constant_warmup": (
        dict(kind=dict(name="constant"), warmup_epochs=3, warmup_start_factor=0.25), 8, 1, "epoch",
        sched_constant_warmup,
        "SequentialLR(opt, [LinearLR(opt, 0.25, 1.0, total_iters=3), LambdaLR(opt, lambda _: 1.0)], milestones=[3])",
        None),
    "step": (
        dict(kind=dict(name="step", step_size=3, gamma=0.5), warmup_epochs=0, warmup_start_factor=1.0), 12, 1,
        "epoch", lambda opt, e, s: StepLR(opt, step_size=3, gamma=0.5), "StepLR(opt, step_size=3, gamma=0.5)", None),
    "step_warmup": (
        dict(kind=dict(name="step", step_size=3), warmup_epochs=2, warmup_start_factor=0.1), 12, 1, "epoch",
        lambda opt, e, s: SequentialLR(opt, [LinearLR(opt, start_factor=0.1, total_iters=2),
                                             StepLR(opt, step_size=3)], milestones=[2]),
        "SequentialLR(opt, [LinearLR(opt, 0.1, 1.0, total_iters=2), StepLR(opt, step_size=3, gamma=0.1)], milestones=[2])",
        None),
    "multi_step": (
        dict(kind=dict(name="multi_step", milestones=[3, 6, 6, 9], gamma=0.5), warmup_epochs=0,
             warmup_start_factor=1.0), 12, 1, "epoch",
        lambda opt, e, s: MultiStepLR(opt, milestones=[3, 6, 6, 9], gamma=0.5),
        "MultiStepLR(opt, milestones=[3, 6, 6, 9], gamma=0.5)", None),
    "multi_step_warmup": (
        dict(kind=dict(name="multi_step", milestones=[4, 8]), warmup_epochs=3, warmup_start_factor=0.5), 12, 1,
        "epoch",
        lambda opt, e, s: SequentialLR(opt, [LinearLR(opt, start_factor=0.5, total_iters=3),
                                             MultiStepLR(opt, milestones=[4, 8])], milestones=[3]),
        "SequentialLR(opt, [LinearLR(opt, 0.5, 1.0, total_iters=3), MultiStepLR(opt, [4, 8], gamma=0.1)], milestones=[3])",
        None),
    "cosine": (
        dict(kind=dict(name="cosine", T_max=10), warmup_epochs=0, warmup_start_factor=1.0), 25, 1, "epoch",
        lambda opt, e, s: CosineAnnealingLR(opt, T_max=10), "CosineAnnealingLR(opt, T_max=10, eta_min=0.0)", None),
    "cosine_eta_min": (
        dict(kind=dict(name="cosine", T_max=7, eta_min=0.001), warmup_epochs=0, warmup_start_factor=1.0), 12, 1,
        "epoch", lambda opt, e, s: CosineAnnealingLR(opt, T_max=7, eta_min=0.001),
        "CosineAnnealingLR(opt, T_max=7, eta_min=0.001)", None),
    "warmup_cosine": (
        # T_max left out: it defaults to epochs - warmup_epochs = 15.
        dict(kind=dict(name="cosine"), warmup_epochs=5, warmup_start_factor=0.01), 20, 1, "epoch",
        lambda opt, e, s: SequentialLR(opt, [LinearLR(opt, start_factor=0.01, total_iters=5),
                                             CosineAnnealingLR(opt, T_max=e - 5)], milestones=[5]),
        "SequentialLR(opt, [LinearLR(opt, 0.01, 1.0, total_iters=5), CosineAnnealingLR(opt, T_max=15)], milestones=[5])",
        None),
    "one_cycle": (
        dict(kind=dict(name="one_cycle", max_lr=0.4), warmup_epochs=0, warmup_start_factor=1.0), 4, 7, "batch",
        lambda opt, e, s: OneCycleLR(opt, max_lr=0.4, epochs=e, steps_per_epoch=s),
        "OneCycleLR(opt, max_lr=0.4, epochs=4, steps_per_epoch=7)", None),
    "one_cycle_default_max_lr": (
        dict(kind=dict(name="one_cycle"), warmup_epochs=0, warmup_start_factor=1.0), 3, 5, "batch",
        lambda opt, e, s: OneCycleLR(opt, max_lr=BASE_LR, epochs=e, steps_per_epoch=s),
        "OneCycleLR(opt, max_lr=0.1 (the optimizer's lr), epochs=3, steps_per_epoch=5)", None),
    "one_cycle_three_phase_linear": (
        dict(kind=dict(name="one_cycle", max_lr=0.2, pct_start=0.25, anneal_strategy="linear", div_factor=10.0,
                       final_div_factor=100.0, three_phase=True), warmup_epochs=0, warmup_start_factor=1.0),
        3, 10, "batch",
        lambda opt, e, s: OneCycleLR(opt, max_lr=0.2, epochs=e, steps_per_epoch=s, pct_start=0.25,
                                     anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0,
                                     three_phase=True),
        "OneCycleLR(opt, max_lr=0.2, epochs=3, steps_per_epoch=10, pct_start=0.25, anneal_strategy='linear', "
        "div_factor=10, final_div_factor=100, three_phase=True)", None),
    "plateau_default": (
        dict(kind=dict(name="plateau"), warmup_epochs=0, warmup_start_factor=1.0), 30, 1, "epoch",
        lambda opt, e, s: ReduceLROnPlateau(opt), "ReduceLROnPlateau(opt) (mode='min', factor=0.1, patience=10, "
        "threshold=1e-4 rel, cooldown=0, min_lr=0, eps=1e-8)",
        [1.0, 0.9, 0.8, 0.79995] + [0.8] * 12 + [0.7] + [0.75] * 13),
    "plateau": (
        dict(kind=dict(name="plateau", factor=0.5, patience=2, cooldown=1, min_lr=0.01), warmup_epochs=0,
             warmup_start_factor=1.0), 20, 1, "epoch",
        lambda opt, e, s: ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.01),
        "ReduceLROnPlateau(opt, factor=0.5, patience=2, cooldown=1, min_lr=0.01)",
        [2.0, 1.5, 1.6, None, 1.6, 1.7, 1.4, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 1.2, 1.3, 1.3]),
    "plateau_max_abs": (
        dict(kind=dict(name="plateau", mode="max", threshold_mode="abs", threshold=0.01, factor=0.3, patience=1,
                       eps=1e-3), warmup_epochs=0, warmup_start_factor=1.0), 16, 1, "epoch",
        lambda opt, e, s: ReduceLROnPlateau(opt, mode="max", threshold_mode="abs", threshold=0.01, factor=0.3,
                                            patience=1, eps=1e-3),
        "ReduceLROnPlateau(opt, mode='max', factor=0.3, patience=1, threshold=0.01, threshold_mode='abs', eps=1e-3)",
        [0.5, 0.6, 0.605, 0.61, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]),
}


def schedule_case(name: str) -> dict:
    cfg, epochs, spe, per, make, text, losses = SCHEDULES[name]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = SGD([p], lr=BASE_LR)
    sched = make(opt, epochs, spe)
    lrs = [opt.param_groups[0]["lr"]]
    n = epochs * spe if per == "batch" else epochs
    for k in range(n):
        p.grad = torch.zeros(1)
        opt.step()
        if losses is not None:
            if losses[k] is not None:
                sched.step(losses[k])
        else:
            sched.step()
        lrs.append(float(opt.param_groups[0]["lr"]))
    # JSON numbers may be read back one unit in the last place off; the bits are exact.
    bits = [struct.unpack("<Q", struct.pack("<d", x))[0] for x in lrs]
    return dict(name=name, config=cfg, base_lr=BASE_LR, epochs=epochs, steps_per_epoch=spe, per=per,
                torch=text, metrics=losses, lrs=lrs, lrs_bits=bits)


def main() -> None:
    setup()
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"torch_version": torch.__version__}
    params0, grads = make_params_and_grads()
    tensors: dict[str, torch.Tensor] = {f"p{j}": p for j, p in enumerate(params0)}
    for t, step in enumerate(grads):
        for j, gr in enumerate(step):
            if gr is not None:
                tensors[f"grad{t}.p{j}"] = gr
    save_file({k: c(v) for k, v in tensors.items()}, str(OUT / "params.safetensors"), metadata=meta)
    lines = [
        "# Golden fixtures: optim", "",
        "PyTorch's optimizers (`torch.optim.SGD`, `Adam`, `AdamW`, `RMSprop`, all with `foreach=False`)",
        "step by step, and the learning rates of `torch.optim.lr_scheduler` schedules, for",
        "`crates/train/tests/optim_parity.rs` and `crates/train/tests/schedule_parity.rs`.", "",
        "Regenerate (from the repo root):", "", "```sh", REGEN, "```", "",
        f"Written with torch {torch.__version__} (also in each safetensors header), float32 on the CPU.", "",
        "## `params.safetensors`", "",
        "Parameters `p0` [2, 3], `p1` [4], `p2` [3] (`torch.randn` from a generator seeded 2024) and the",
        "gradients `grad{t}.p{j}` set as `p.grad` before step t + 1 (t = 0, 1, 2): `torch.randn * (0.5 + t)`",
        "with `p0[0, 0]` = 0 and `p1[1]` = 1e-3 (t + 1). `p2` has no gradient at t = 1 (`p.grad = None`:",
        "PyTorch skips it, and its step counter stays one behind).", "",
        "| key | shape | dtype |", "| --- | --- | --- |", *describe(tensors), "",
        "## `{config}.safetensors` and `optimizers.json`", "",
        "`p{j}.step{k}`: the parameters after k = 1, 2, 3 steps; `state.{j}.{buffer}`: the optimizer state",
        "after the third step (`optimizer.state_dict()[\"state\"]`; `step` is a 0-dim float32 tensor).",
        "`optimizers.json` maps each config to its PyTorch construction and to our `OptimizerConfig` JSON.", "",
        "| config | PyTorch |", "| --- | --- |",
    ]
    configs = {}
    for name in OPTIMIZERS:
        out, info = optimizer_case(name, params0, grads)
        save_file({k: c(v) for k, v in out.items()}, str(OUT / f"{name}.safetensors"), metadata=meta)
        configs[name] = info
        lines.append(f"| `{name}` | `{info['torch']}` |")
        print(name, {k: v.tolist() for k, v in out.items() if k.endswith("step3")})
    (OUT / "optimizers.json").write_text(json.dumps(dict(torch_version=torch.__version__, configs=configs),
                                                    indent=1) + "\n")
    cases = [schedule_case(n) for n in SCHEDULES]
    (OUT / "schedules.json").write_text(json.dumps(dict(torch_version=torch.__version__, base_lr=BASE_LR,
                                                        cases=cases), indent=1) + "\n")
    lines += [
        "", "## `schedules.json`", "",
        f"An SGD optimizer with lr {BASE_LR} and one schedule; `lrs` = `optimizer.param_groups[0][\"lr\"]`",
        "after construction, then after each `scheduler.step()` (called after `optimizer.step()`, once per",
        "epoch, or once per batch for OneCycleLR: `per`). ReduceLROnPlateau is stepped with `metrics[k]`;",
        "a `null` there means no call that epoch (our `step_epoch(None)`). `lrs_bits` holds the same rates as",
        "the bits of the float64 (exact, where a JSON reader may round the decimal `lrs`). `config` is the same schedule as",
        "our `ScheduleConfig` JSON; a warm-up is `SequentialLR([LinearLR(start_factor, 1.0,",
        "total_iters=warmup_epochs), main], milestones=[warmup_epochs])`.", "",
        "| case | per | PyTorch |", "| --- | --- | --- |",
        *[f"| `{cs['name']}` | {cs['per']} | `{cs['torch']}` |" for cs in cases], "",
    ]
    (OUT / "README.md").write_text("\n".join(lines))
    for cs in cases:
        print(cs["name"], cs["lrs"][:8], "...")


if __name__ == "__main__":
    main()
