"""Tasks, weight sharing, augmentation and the objectives, measured: writes BENCHMARKS.md
sections that the README quotes.

    python scripts/experiment_tasks.py waves     # 1-D set: sheet vs a small 1-D CNN and an MLP
    python scripts/experiment_tasks.py mim       # digits: MIM pre-training + probe vs random probe
    python scripts/experiment_tasks.py knobs-digits   # sharing x augmentation, smoothness, sparsity
    python scripts/experiment_tasks.py knobs-waves    # the same on the 1-D set
    python scripts/experiment_tasks.py seeds     # the main job over seeds 0, 1, 2
    python scripts/experiment_tasks.py mim seeds --out BENCHMARKS.md   # several sections
    python scripts/experiment_tasks.py all --out BENCHMARKS.md

Runs one after the other (never in parallel: 2 cores). The baselines train on exactly the
data the sheet sees (``colgraph.data.load_data``: same split, same standardisation, same
augmentation) with the same epochs, batch size and optimizer.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from colgraph import setup_process

sys.path.insert(0, str(Path(__file__).parent))
from _report import compose, write_section  # noqa: E402
COMMON = ["train.progress=false", "train.tensorboard=false"]
WAVES = ["+experiment=waves"]
WAVES60 = WAVES + ["train.epochs=60"]  # the knobs table's budget


def run(overrides: list[str], run_dir: str | None = None) -> dict:
    """Train one configuration; return its final metrics plus parameters and seconds."""
    from colgraph.restore import load_model
    from colgraph.training import train
    from colgraph.training.sources import PRETRAINED

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        m = train(compose(overrides + COMMON), run_dir or tmp)
        m["seconds"] = time.perf_counter() - t0
        model, _, cfg, _ = load_model(m["checkpoint"], with_data=False)
        m["parameters"] = sum(p.numel() for p in model.parameters())
        m["trainable"] = sum(p.numel() for n, p in model.named_parameters()
                             if cfg.train.freeze != "sheet" or not n.startswith(PRETRAINED))
    print(f"  {' '.join(overrides) or '(main job)'}: "
          + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)), flush=True)
    return m


# ------------------------------------------------------------------ baselines on the 1-D set
def baseline(kind: str, cfg, epochs: int, seed: int = 0) -> dict:
    """A small 1-D CNN or an MLP trained like the sheet (AdamW, warmup + cosine, same data,
    epochs, batch size, augmentation)."""
    import math

    import torch
    from torch import nn

    from colgraph.data import Augment, iterate_batches, load_data
    from colgraph.training.optim import lr_lambda

    torch.manual_seed(seed)
    data = load_data(cfg.data, "sequence")
    c, length = data.sample_shape
    k = data.num_classes
    if kind == "cnn":  # two conv layers (kernel 5, 32 channels) + global max pool
        net = nn.Sequential(nn.Conv1d(c, 32, 5, padding=2), nn.ReLU(),
                            nn.Conv1d(32, 32, 5, padding=2), nn.ReLU(),
                            nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(32, k))
    else:  # one hidden layer of 256
        net = nn.Sequential(nn.Flatten(), nn.Linear(c * length, 256), nn.ReLU(),
                            nn.Linear(256, k))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.optim.lr,
                            weight_decay=cfg.optim.weight_decay, betas=tuple(cfg.optim.betas))
    steps = math.ceil(len(data.x_train) / cfg.train.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(
        steps * epochs, max(1, int(cfg.optim.warmup_epochs * steps)), cfg.optim.min_lr_ratio))
    augment = Augment(**cfg.data.augment)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        for xb, yb in iterate_batches(data.x_train, data.y_train, cfg.train.batch_size, True,
                                      gen):
            xb = augment(xb) if augment.enabled else xb
            loss = nn.functional.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        acc = float((net(data.x_test).argmax(1) == data.y_test).float().mean())
    params = sum(p.numel() for p in net.parameters())
    print(f"  {kind}: test acc {acc:.4f}, {params} parameters", flush=True)
    return {"test_acc": acc, "parameters": params, "seconds": time.perf_counter() - t0}


def waves(args) -> str:
    cfg = compose(WAVES)
    epochs = cfg.train.epochs
    rows = [("sheet: `+experiment=waves` (lowrank r=4)", run(WAVES)),
            ("sheet, untied columns (`model.sharing=none`)", run(WAVES + ["model.sharing=none"]))]
    for kind, label in (("cnn", "1-D CNN (2 conv layers k=5, 32 ch, max pool)"),
                        ("mlp", "MLP (one hidden layer of 256)")):
        rows.append((label + ", same augmentation", baseline(kind, cfg, epochs)))
    plain = compose(WAVES + ["data.augment.shift=0", "data.augment.scale=0"])
    for kind, label in (("cnn", "1-D CNN"), ("mlp", "MLP")):
        rows.append((label + ", no augmentation", baseline(kind, plain, epochs)))
    lines = ["| model | test acc | parameters | time |", "|---|---|---|---|"]
    lines += [f"| {n} | {100 * m['test_acc']:.1f}% | {m['parameters']:,} | {m['seconds']:.0f} s |"
              for n, m in rows]
    return ("## Sequence classification on the built-in 1-D set (`scripts/experiment_tasks.py "
            "waves`)\n\n"
            f"`data=waves` ({cfg.data.samples} signals of {cfg.data.length} samples, "
            f"{cfg.data.classes} templates at random shifts, 80/20 split), {epochs} epochs each, "
            f"the sheet's optimizer settings for every model, seed 0.\n\n" + "\n".join(lines))


def mim(args) -> str:
    with tempfile.TemporaryDirectory() as pre:
        m_pre = run(["+experiment=mim"], pre)
        rows = [("masked image modelling (pre-training)", m_pre),
                ("linear probe, pre-trained sheet", run(["+experiment=probe",
                                                         f"train.init_from={pre}"])),
                ("linear probe, random sheet", run(["+experiment=probe"])),
                ("fine-tune, pre-trained sheet", run(["+experiment=finetune",
                                                      f"train.init_from={pre}"])),
                ("supervised from scratch (same sheet)", run(["+experiment=finetune"]))]
    lines = ["| run | test acc | masked-patch MSE | trainable parameters | time |",
             "|---|---|---|---|---|"]
    for name, m in rows:
        acc = f"{100 * m['test_acc']:.1f}%" if "test_acc" in m else "-"
        mse = f"{m['test_mse']:.3f}" if "test_mse" in m else "-"
        lines.append(f"| {name} | {acc} | {mse} | {m['trainable']:,} | {m['seconds']:.0f} s |")
    return ("## Masked image modelling on digits (`scripts/experiment_tasks.py mim`)\n\n"
            "8x8 grid sheet (every column input and output), k = 16, 20 epochs per run, "
            "half of the pixels masked during pre-training; the probe trains only LayerNorm + "
            "linear readout of the mean column state (`train.freeze=sheet`), seed 0.\n\n"
            + "\n".join(lines))


SHARING_RUNS = {  # row label -> overrides, on top of each data set's base
    "untied (none)": ["model.sharing=none"], "lowrank (r=4)": ["model.sharing=lowrank"],
    "full sharing": ["model.sharing=full"],
}
KNOB_SETS = {  # data set -> (title, base overrides, the other augmentation, labels: base, other)
    "digits": ("digits (main job)", [], ["data.augment.shift=1"], ("off", "on (shift 1)")),
    "waves": ("waves (`+experiment=waves train.epochs=60`)", WAVES60, ["data.augment.shift=0"],
              ("on", "off")),
}


def knobs(which: str) -> str:
    """Every sharing mode with and without augmentation and smoothness; sparsity untied."""
    title, base, other_aug, (aug, other) = KNOB_SETS[which]
    runs = []
    for name, ov in SHARING_RUNS.items():
        runs += [(name, aug, "-", base + ov), (name, other, "-", base + ov + other_aug),
                 (name, aug, "smoothness 0.1", base + ov + ["smoothness.weight=0.1"])]
    runs.append(("untied (none)", aug, "sparsity 0.1",
                 base + SHARING_RUNS["untied (none)"] + ["sparsity.weight=0.1"]))
    lines = ["| sharing | augmentation | extra loss | test acc | parameters | wiring length "
             "| smoothness | silent | active columns |", "|---|---|---|---|---|---|---|---|---|"]
    for name, augment, extra, ov in runs:
        m = run(ov)
        lines.append(f"| {name} | {augment} | {extra} | {100 * m['test_acc']:.1f}% | "
                     f"{m['parameters']:,} | {m['wiring_length']:.3f} | {m['smoothness']:.3f} "
                     f"| {m['silent']:.3f} | {m['active_columns']:.1f} |")
    return (f"## Weight sharing, augmentation, smoothness and sparsity: {title} "
            f"(`scripts/experiment_tasks.py knobs-{which}`)\n\nSeed 0; smoothness = response "
            "correlation of wired neighbours minus random pairs on the test set; silent = "
            "fraction of state units below 0.1 x the step's RMS; active = columns above it "
            "(mean over steps and samples).\n\n" + "\n".join(lines))


def seeds(args) -> str:
    accs = [run([f"train.seed={s}"])["test_acc"] for s in (0, 1, 2)]
    mean, sd = statistics.mean(accs), statistics.stdev(accs)
    return ("## Main job over seeds (`scripts/experiment_tasks.py seeds`)\n\n"
            "`python scripts/train.py train.seed=S`: test accuracy "
            + ", ".join(f"{100 * a:.2f}%" for a in accs)
            + f" for seeds 0, 1, 2; mean {100 * mean:.2f}%, s.d. {100 * sd:.2f} points.")


SECTIONS = {"waves": waves, "mim": mim, "knobs-digits": lambda args: knobs("digits"),
            "knobs-waves": lambda args: knobs("waves"), "seeds": seeds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="+", choices=[*SECTIONS, "all"])
    p.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md to update")
    args = p.parse_args()
    for name in (SECTIONS if "all" in args.what else args.what):
        text = SECTIONS[name](args)
        print(text)
        if args.out:
            write_section(args.out, f"tasks-{name}", text)


if __name__ == "__main__":
    setup_process()  # threads' wait, tcmalloc where installed (re-executes once): first
    main()
