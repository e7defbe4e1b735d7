"""Performance and scale of one training step, measured: writes the ``bench-model`` section
of BENCHMARKS.md.

    python scripts/bench.py --out BENCHMARKS.md          # every part below (~25 minutes)
    python scripts/bench.py dense edges --quick          # some parts, small sizes (a smoke run)
    python scripts/bench.py edges --device cuda          # on a GPU (peak = device memory)

Parts (the seed-style config unless said: C = 64, query/key 16, MLP hidden 16, T = 4 steps,
no attention skip, B = 16, a square grid with k = 32 nearest-neighbour wiring, AdamW):

* ``machine``: this machine's plain matmul FLOP/s and copy GB/s (the limits a step is
  compared with).
* ``dense``: the sparse step against the SAME model with the ``dense`` backend (masked
  ``N x N`` attention: the original, dense Columnformer).
* ``edges``: time per edge x sample x step from N = 1024 to 10^5.
* ``memory``: peak memory split into parameters, gradients, optimizer state and the rest
  (activations + workspace) for N = 10^5 (k = 16, B = 8, C = 32, MLP x 4) and a full
  training step at N = 10^6 (k = 16, B = 4, C = 16, query/key 8, MLP hidden 16).
* ``gat``: ``ColumnAttention`` (untied query / key projections, per-edge bias) against
  PyG's ``GATConv`` (shared weights) at equal N, E, B, C and one head, forward + backward.
* ``allocator``: the step under glibc's malloc, tcmalloc and jemalloc (those installed).
* ``contention``: the step alone and as two processes at once on the same cores, per
  thread wait policy.
* ``breakdown``: where the step's time goes at N = 4096 (attention kernel, per-column
  matmuls, optimizer, the rest).

Every measurement runs in its own subprocess, so peak memory is per measurement and an
out-of-memory kill cannot take the benchmark down; measurements run one after another
(never two at once: 2 cores). Times are medians over ``--repeats`` steps after a warm-up.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from colgraph import setup_process

if __name__ == "__main__":  # before the first tensor (the import below makes one), here and
    setup_process()  # in every measurement's subprocess (they inherit the preload)

from colgraph.geometry.wiring import FULL_MAX_COLUMNS  # noqa: E402

SEED = dict(k=32, batch=16, channels=64, qk=16, hidden=16, steps=4, skip=False)
BIG = dict(k=16, batch=8, channels=32, qk=None, hidden=128, steps=4, skip=True)  # MLP x 4
HUGE = dict(k=16, batch=4, channels=16, qk=8, hidden=16, steps=4, skip=True)


# ------------------------------------------------------------------ child measurements
def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KB


def _median_time(fn, repeats: int, device: str = "cpu") -> float:
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    fn()  # warm-up: allocations, caches, CSR blocks
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()  # a GPU runs asynchronously: the step is done when its kernels are
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _peak_mb(device: str, base: float) -> float:
    """Peak memory of the measurement: the process's peak RSS above ``base`` on the CPU,
    the device's peak allocation on a GPU."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _rss_mb() - base


def step_flops(n: int, e: int, spec: dict) -> float:
    """Multiply-adds x 2 of one training step (forward + backward = 3x forward) of the
    per-column layers and the attention's per-edge products; elementwise work not counted."""
    c, qk, hidden, b, t = spec["channels"], spec["qk"] or spec["channels"], spec["hidden"], \
        spec["batch"], spec["steps"]
    per_column = 2 * c * qk + 2 * c * hidden  # query + key, fc1 + fc2 (multiply-adds)
    per_edge = qk + c  # q . k and alpha * v
    return 3 * 2 * b * t * (n * per_column + e * per_edge)


def step_bytes(n: int, e: int, spec: dict, param_count: int) -> float:
    """A lower bound on memory traffic of one step (fp32): every step reads the weights in
    forward and backward and accumulates their gradients (read + write), AdamW reads and
    writes weights, gradients and two moments once; states [N, B, C] are written in forward
    and read in backward per layer."""
    c, hidden, b, t = spec["channels"], spec["hidden"], spec["batch"], spec["steps"]
    weights = 4 * param_count * (4 * t + 7)
    states = 4 * 2 * n * b * t * (4 * c + hidden) + 4 * 2 * e * b * t * 2
    return weights + states


def _step_setup(spec: dict):
    """The measured model on a grid, its optimizer (or ``None``) and one training step
    (forward, backward, optimizer) on random tokens, as a function."""
    import torch

    from colgraph import Columnformer
    from colgraph.geometry import full, grid, knn
    from colgraph.training.optim import param_groups

    device = spec.get("device", "cpu")
    torch.manual_seed(0)
    side = math.isqrt(spec["n"])
    geo = grid(side, wiring=full() if spec.get("wiring") == "full" else knn(k=spec["k"]))
    model = Columnformer(geo, channels=spec["channels"], steps=spec["steps"], heads=1,
                         qk_dim=spec["qk"], mlp_ratio=spec["hidden"] / spec["channels"],
                         skip=spec["skip"], backend=spec["backend"],
                         recompute=spec.get("recompute", False),
                         weight_dtype=spec.get("weight_dtype", "float32")).to(device)
    adamw = spec.get("adamw", "foreach")  # foreach (torch's default) | fused: no temporaries
    opt = (torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3, fused=adamw == "fused")
           if spec.get("optimizer", True) else None)
    tokens = torch.randn(spec["batch"], geo.area("input").numel(), spec["channels"],
                         device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        out = model(tokens)
        loss = out.output.pow(2).mean() + sum(a.pow(2).mean() for a in out.attention)
        loss.backward()
        if opt is not None:
            opt.step()

    return model, opt, step


def measure_step(spec: dict) -> dict:
    """One training step (forward, backward, optimizer) of a Columnformer on a grid."""
    import torch

    base = _rss_mb()
    device = spec.get("device", "cpu")
    model, opt, step = _step_setup(spec)
    n, e = model.num_columns, model.edge_index.size(1)
    t = _median_time(step, spec["repeats"], device)
    kernel = {}
    if spec.get("faults"):  # one more step: the page faults and kernel time it costs
        before = resource.getrusage(resource.RUSAGE_SELF)
        step()
        after = resource.getrusage(resource.RUSAGE_SELF)
        kernel = {"faults": after.ru_minflt - before.ru_minflt,
                  "sys_s": after.ru_stime - before.ru_stime}
    params = sum(p.numel() for p in model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters()
                if p.grad is not None)
    state = sum(v.numel() * v.element_size() for s in (opt.state.values() if opt else ())
                for v in s.values() if torch.is_tensor(v) and v.dim() > 0)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    from colgraph.allocator import active_allocator

    return {"n": n, "edges": e, "time_s": t, "params": params, "allocator": active_allocator(),
            "param_mb": param_bytes / 2**20, "grad_mb": grads / 2**20, "optim_mb": state / 2**20,
            "buffer_mb": buffers / 2**20, "peak_mb": _peak_mb(device, base),
            "flops": step_flops(n, e, spec), "bytes": step_bytes(n, e, spec, params), **kernel}


def measure_breakdown(spec: dict) -> dict:
    """Where a training step's time goes: the step, then each part of it alone at the
    step's shapes (the attention kernel and the per-column matmuls, forward + backward, T
    times; the optimizer update once); the rest (norms, activation, residuals, embedding,
    autograd) is the step minus these."""
    import torch

    from colgraph.nn import ColumnDropout

    device = spec.get("device", "cpu")
    model, opt, step = _step_setup(spec)
    T, B, block = spec["steps"], spec["batch"], model.blocks[0]
    total = _median_time(step, spec["repeats"], device)
    optimizer = _median_time(opt.step, spec["repeats"], device)  # the step left gradients
    attn, N = block.attn, model.num_columns
    rand = lambda *shape: torch.randn(*shape, device=device, requires_grad=True)  # noqa: E731
    q, k = rand(N, B, 1, attn.qk_dim), rand(N, B, 1, attn.qk_dim)
    v, bias = rand(N, B, 1, attn.channels), attn.edge_bias
    no_dropout = ColumnDropout(0.0)

    def kernel() -> None:
        for _ in range(T):
            out, weights = attn.kernel(q, k, v, model.edges, bias, no_dropout, True)
            torch.autograd.backward([out, weights], [torch.ones_like(out),
                                                     torch.ones_like(weights)])

    layers = [(lin, rand(N, B, lin.in_features))
              for lin in (attn.query, attn.key, block.mlp.fc1, block.mlp.fc2)]

    def matmuls() -> None:
        model.zero_grad(set_to_none=True)  # then T uses accumulate, as in the step
        for _ in range(T):
            for lin, x in layers:
                lin(x).backward(torch.ones(N, B, lin.out_features, device=device))

    parts = {"attention kernel": _median_time(kernel, spec["repeats"], device),
             "per-column matmuls": _median_time(matmuls, spec["repeats"], device),
             "optimizer": optimizer}
    return {"n": N, "edges": model.edge_index.size(1), "time_s": total, "parts": parts}


def measure_attention(spec: dict) -> dict:
    """Forward + backward of one attention layer: colgraph's or PyG's GATConv."""
    import torch

    from colgraph.geometry import grid, knn
    from colgraph.nn import ColumnAttention, SheetEdges

    device = spec.get("device", "cpu")
    torch.manual_seed(0)
    geo = grid(math.isqrt(spec["n"]), wiring=knn(k=spec["k"]))
    n, b, c = geo.num_columns, spec["batch"], spec["channels"]
    if spec["layer"] == "gat":
        from torch_geometric.nn import GATConv

        layer = GATConv(c, c, heads=1, add_self_loops=False).to(device)
        r = torch.arange(b).repeat_interleave(geo.num_edges) * n  # B disjoint copies
        edge_index = (geo.edge_index.repeat(1, b) + r).to(device)
        x = torch.randn(b * n, c, device=device, requires_grad=True)
        run = lambda: layer(x, edge_index)  # noqa: E731
    else:
        edges = SheetEdges(geo).to(device)
        layer = ColumnAttention(edges, c, heads=1,
                                value_proj=spec["layer"] == "colgraph+value").to(device)
        x = torch.randn(n, b, c, device=device, requires_grad=True)
        run = lambda: layer(x)[0]  # noqa: E731

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        run().pow(2).mean().backward()

    return {"n": n, "edges": geo.num_edges,
            "time_s": _median_time(step, spec["repeats"], device),
            "params": sum(p.numel() for p in layer.parameters())}


def measure_machine(spec: dict) -> dict:
    """Plain fp32 matmul FLOP/s and memory copy GB/s (read + write) of this machine."""
    import torch

    import colgraph  # noqa: F401  (its allocator setting: huge pages, as a step has)

    m, device = (512 if spec["quick"] else 2048), spec.get("device", "cpu")
    a, b = torch.randn(m, m, device=device), torch.randn(m, m, device=device)
    t_mm = _median_time(lambda: a @ b, spec["repeats"], device)
    src = torch.randn(2**22 if spec["quick"] else 2**27, device=device)  # 512 MB: beyond caches
    dst = torch.empty_like(src)
    t_copy = _median_time(lambda: dst.copy_(src), spec["repeats"], device)
    return {"flops": 2 * m**3 / t_mm, "copy_bytes": 2 * src.numel() * 4 / t_copy,
            "threads": torch.get_num_threads(), "size": m, "copy_mb": src.numel() * 4 / 2**20}


CHILDREN = {"step": measure_step, "attention": measure_attention, "machine": measure_machine,
            "breakdown": measure_breakdown}


# ------------------------------------------------------------------ parent
def available_memory(device: str = "cpu") -> int:
    """Bytes of memory available to a new process (MemAvailable on Linux), or free on the
    GPU."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(device)[0]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


INLINE = False  # --inline: measure in this process (a smoke test: peak memory accumulates)
DEVICE = "cpu"  # --device


def child(kind: str, repeats: int, env: dict | None = None, copies: int = 1,
          **spec) -> dict:
    """One measurement in its own process (``env``: settings for it, a value of ``None``
    removes the variable). ``copies`` > 1 runs that many identical processes at once (a
    machine shared by several jobs) and returns the first's result, with ``times`` the
    median step of each."""
    spec = {"kind": kind, "repeats": repeats, "device": DEVICE, **spec}
    if INLINE:  # a smoke run: one measurement in this process stands for every copy
        out = json.loads(json.dumps(CHILDREN[kind](spec)))
        if copies > 1:
            out["times"] = [out["time_s"]] * copies
    else:
        env = {**os.environ, **(env or {})}
        env = {k: v for k, v in env.items() if v is not None}
        procs = [subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env) for _ in range(copies)]
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate()
            if proc.returncode != 0:
                reason = ("out of memory (killed)" if proc.returncode in (-9, 137)
                          else f"failed: {stderr.strip()[-300:]}")
                return {**spec, "error": reason}
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        out = results[0]
        if copies > 1:
            out["times"] = [r["time_s"] for r in results]
    print(f"  {kind} {spec}{' x' + str(copies) if copies > 1 else ''}"
          f"{' ' + str(env_note(env)) if env else ''}: "
          + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                      for k, v in out.items()), flush=True)
    return {**spec, **out}


def env_note(env: dict) -> dict:
    """The settings of ``env`` a measurement varies (for the console)."""
    return {k: env.get(k) for k in ("COLGRAPH_ALLOCATOR", "LD_PRELOAD", "OMP_WAIT_POLICY",
                                    "GOMP_SPINCOUNT")
            if env.get(k)}


def dense_fits(n: int, batch: int, steps: int, avail: int) -> bool:
    # ~3 [B, N, N] tensors are kept per step (measured: 12.7 GB at N = 4096, B = 16, T = 4,
    # all-to-all wiring)
    return 3 * steps * batch * n * n * 4 < 0.7 * avail


def part_machine(args, report: dict) -> list[str]:
    m = child("machine", args.repeats, quick=args.quick)
    report["machine"] = m
    return [f"Machine: {m['flops'] / 1e9:.0f} GFLOP/s fp32 matmul ({m['size']}^2), "
            f"{m['copy_bytes'] / 1e9:.1f} GB/s copy (read + write, {m['copy_mb']:.0f} MB), "
            f"threads: {m['threads']}."]


def part_dense(args, report: dict) -> list[str]:
    sizes = [64, 144] if args.quick else [4096, 16384]
    avail = args.memory_gb * 2**30 if args.memory_gb else available_memory(args.device)
    lines = ["| N | E | sparse s/step | dense s/step | dense / sparse |", "|---|---|---|---|---|"]
    measured = []  # (N, dense s, sparse s) of sizes run with both
    for n in sizes:
        s = child("step", args.repeats, n=n, backend="sparse", **SEED)
        note = ""
        if n <= FULL_MAX_COLUMNS and dense_fits(n, SEED["batch"], SEED["steps"], avail):
            d = child("step", args.repeats, n=n, backend="dense", wiring="full", **SEED)
            if "error" not in s and "error" not in d:
                measured.append((s["n"], d["time_s"], s["time_s"]))
        elif measured:
            # too large to run (or all-to-all wiring refused past FULL_MAX_COLUMNS): scale the
            # largest measured size, its attention (dense - sparse step) by N^2 and the rest
            # (at most the sparse step: the per-column layers both share) by N
            (m, dm, sm), grow = measured[-1], s.get("n", n) / measured[-1][0]
            d = {"time_s": (dm - sm) * grow**2 + sm * grow}
            note = (f" (estimated from N = {m}: (dense - sparse) x {grow:.2f}^2 + sparse x "
                    f"{grow:.2f})")
        else:
            d = {"error": "does not fit in memory"}
        if "error" in s or "error" in d:
            lines.append(f"| {n} | - | {s.get('error', '')} | {d.get('error', '')} | - |")
            continue
        lines.append(f"| {s['n']} | {s['edges']} | {s['time_s']:.3f} | {d['time_s']:.3f}{note} "
                     f"| **{d['time_s'] / s['time_s']:.1f}x** |")
    return ["### Against the dense Columnformer (target: 30x at N = 4096, 100x at 16384)", "",
            "Dense = the same model with all-to-all wiring and the `dense` backend (masked "
            "N x N attention: the original Columnformer); sparse = k = 32 nearest "
            "neighbours.", "", *lines]


def part_edges(args, report: dict) -> list[str]:
    sizes = [64, 256] if args.quick else [1024, 4096, 16384, 65536, 100_000]
    machine = report.get("machine")
    lines = ["| N | E | s/step | ns per edge x sample x step | GFLOP/s | GB/s (lower bound) "
             "| fraction of the machine | peak MB |", "|---|---|---|---|---|---|---|---|"]
    per_edge = {}
    for n in sizes:
        s = child("step", args.repeats, n=n, backend="sparse", **SEED)
        if "error" in s:
            lines.append(f"| {n} | - | {s['error']} | - | - | - | - | - |")
            continue
        ns = s["time_s"] / (s["edges"] * SEED["batch"] * SEED["steps"]) * 1e9
        per_edge[s["n"]] = ns
        flops, bw = s["flops"] / s["time_s"], s["bytes"] / s["time_s"]
        frac = (max(flops / machine["flops"], bw / machine["copy_bytes"])
                if machine else float("nan"))
        lines.append(f"| {s['n']} | {s['edges']} | {s['time_s']:.3f} | {ns:.1f} | "
                     f"{flops / 1e9:.1f} | {bw / 1e9:.2f} | {100 * frac:.0f}% | "
                     f"{s['peak_mb']:.0f} |")
    text = ["### Cost per edge (target: within 1.3x from N = 1024 to 10^5)", "", *lines]
    if len(per_edge) > 1:
        ratio = max(per_edge.values()) / min(per_edge.values())
        text += ["", f"Largest / smallest time per edge: **{ratio:.2f}x**. Fraction of the "
                 f"machine: the step's lower-bound time (its FLOPs at the matmul rate or its "
                 f"minimal memory traffic at the copy rate, whichever is longer) over its "
                 f"measured time (target: 30%)."]
    return text


def part_memory(args, report: dict) -> list[str]:
    # options per case: without recompute the 10^5 sheet's activations exceed the machine
    # (the issue measured 21.4 GB for forward + backward alone), which the first row shows
    lean = {"recompute": True, "adamw": "fused"}
    bf16 = {**lean, "weight_dtype": "bfloat16"}
    cases = ([("N = 256 (k = 16, B = 8, C = 32, MLP x 4)", 256, BIG, ({}, lean, bf16))]
             if args.quick
             else [("N = 10^5 (k = 16, B = 8, C = 32, MLP x 4)", 100_000, BIG,
                    ({"adamw": "fused"}, lean, bf16)),
                   ("N = 10^6 (k = 16, B = 4, C = 16, qk 8, MLP hidden 16)", 1_000_000, HUGE,
                    (lean, bf16))])
    names = {"recompute": "recompute", "adamw": "AdamW fused", "weight_dtype": "bf16 weights"}
    lines = ["| case | options | s/step | parameters | gradients | AdamW state | other state "
             "| activations + workspace | peak | rest / state |", "|---|---|---|---|---|---|---|"
             "---|---|---|"]
    for label, n, cfg, variants in cases:
        for options in variants:
            s = child("step", max(1, args.repeats // 2), n=n, backend="sparse", **cfg, **options)
            opt = ", ".join(names[k] for k in options) or "-"
            if "error" in s:
                lines.append(f"| {label} | {opt} | {s['error']} | | | | | | | |")
                continue
            state = s["param_mb"] + s["grad_mb"] + s["optim_mb"]
            rest = s["peak_mb"] - state - s["buffer_mb"]
            gb = lambda mb: f"{mb / 1024:.2f} GB"  # noqa: E731
            lines.append(f"| {label} | {opt} | {s['time_s']:.1f} | {gb(s['param_mb'])} | "
                         f"{gb(s['grad_mb'])} | {gb(s['optim_mb'])} | {gb(s['buffer_mb'])} | "
                         f"{gb(rest)} | {gb(s['peak_mb'])} | **{100 * rest / state:.0f}%** |")
    return ["### Memory (target: activations + workspace <= 25% of parameters + gradients + "
            "optimizer state at N = 10^5; N = 10^6 within 20 GB)", "",
            "Peak is the process's peak RSS above what it held before building the sheet; "
            "other state = the sheet's buffers (edges, lengths, positions). recompute = "
            "`model.recompute=true` (activation checkpointing per step); AdamW fused = "
            "`optim.fused=true` (no optimizer temporaries; torch's default foreach AdamW "
            "allocates one more copy of the parameters); bf16 weights = "
            "`model.weight_dtype=bfloat16` (the per-column matmul weights, their gradients "
            "and AdamW state in bf16; those matmuls in bf16, everything else in fp32).", "",
            *lines]


def part_gat(args, report: dict) -> list[str]:
    n = 64 if args.quick else 4096
    lines = ["| layer | parameters | s (forward + backward) | / GATConv |", "|---|---|---|---|"]
    rows = [(label, child("attention", args.repeats, n=n, k=32, batch=16, channels=64,
                          layer=layer))
            for label, layer in (("PyG GATConv (shared W)", "gat"),
                                 ("ColumnAttention (untied q, k)", "colgraph"),
                                 ("ColumnAttention + untied value / output", "colgraph+value"))]
    gat = rows[0][1].get("time_s")
    for label, r in rows:
        if "error" in r:
            lines.append(f"| {label} | - | {r['error']} | - |")
            continue
        ratio = f"{r['time_s'] / gat:.2f}x" if gat else "-"
        lines.append(f"| {label} | {r['params']:,} | {r['time_s']:.3f} | {ratio} |")
    return [f"### Against PyG's GATConv (N = {rows[0][1].get('n', n)}, k = 32, B = 16, C = 64, "
            f"one head; target: no slower)", "", *lines]


def part_breakdown(args, report: dict) -> list[str]:
    n = 64 if args.quick else 4096
    b = child("breakdown", args.repeats, n=n, backend="sparse", **SEED)
    if "error" in b:
        return ["### Where a step's time goes", "", f"N = {n}: {b['error']}"]
    total, parts = b["time_s"], b["parts"]
    rest = total - sum(parts.values())
    lines = ["| part | s/step | share |", "|---|---|---|"]
    lines += [f"| {name} | {t:.3f} | {100 * t / total:.0f}% |"
              for name, t in [*parts.items(), ("the rest (step minus the above)", rest)]]
    lines.append(f"| the step | {total:.3f} | 100% |")
    return [f"### Where a step's time goes (N = {b['n']}, E = {b['edges']})", "",
            "The step, then each part alone at the step's shapes: the attention kernel "
            "(SDDMM, edge softmax, SpMM) and the four per-column matmuls (query, key, MLP in "
            "and out) forward + backward T times, the optimizer update once. The rest is "
            "LayerNorm, GELU, residuals, the step embedding and autograd's bookkeeping. A "
            "part's share bounds what making it free could gain.", "", *lines]


def allocator_envs() -> list[tuple[str, dict]]:
    """The allocators to compare: glibc (with colgraph's tuning) and each one installed."""
    from colgraph.allocator import find_allocator

    envs = [("glibc malloc (tuned: `COLGRAPH_ALLOCATOR=system`)",
             {"COLGRAPH_ALLOCATOR": "system", "LD_PRELOAD": None})]
    for name in ("tcmalloc", "jemalloc"):
        if find_allocator(name) is not None:
            envs.append((name + (" (the default)" if name == "tcmalloc" else
                                 " (pages retained)"),
                         {"COLGRAPH_ALLOCATOR": name, "LD_PRELOAD": None}))
    return envs


def part_allocator(args, report: dict) -> list[str]:
    sizes = [64, 256] if args.quick else [4096, 65536]
    lines = ["| N | allocator | s/step | ns per edge x sample x step | page faults / step | "
             "kernel s / step | peak MB | / glibc |", "|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        base = None
        for label, env in allocator_envs():
            s = child("step", args.repeats, env=env, n=n, backend="sparse", faults=True,
                      **SEED)
            if "error" in s:
                lines.append(f"| {n} | {label} | {s['error']} | - | - | - | - | - |")
                continue
            if not INLINE and s["allocator"] != env["COLGRAPH_ALLOCATOR"]:  # what ran
                lines.append(f"| {n} | {label} | ran under {s['allocator']} | - | - | - | - "
                             f"| - |")
                continue
            base = base or s["time_s"]
            ns = s["time_s"] / (s["edges"] * SEED["batch"] * SEED["steps"]) * 1e9
            lines.append(f"| {s['n']} | {label} | {s['time_s']:.3f} | {ns:.1f} | "
                         f"{s['faults']:,} | {s['sys_s']:.2f} | {s['peak_mb']:.0f} | "
                         f"**{base / s['time_s']:.2f}x** |")
    return ["### The CPU allocator (colgraph's commands run under tcmalloc where installed)", "",
            "The seed-style step under each allocator installed here, each in its own "
            "process (`COLGRAPH_ALLOCATOR`; see README, Large sheets). Page faults and kernel "
            "(system) time of one more step, from `getrusage`: counts, not timings, so they "
            "do not depend on what else the machine runs. / glibc: how many times faster than "
            "glibc's malloc.", "", *lines]


# how idle OpenMP threads wait (libgomp, torch's OpenMP on Linux), for two jobs on one
# machine's cores; unset, colgraph's commands set GOMP_SPINCOUNT (colgraph.tune_threads)
POLICIES = [("libgomp default (`GOMP_SPINCOUNT=300000`)",
             {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": "300000"}),
            ("`OMP_WAIT_POLICY=PASSIVE` (no spinning)",
             {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": None}),
            ("colgraph's commands (`GOMP_SPINCOUNT=1000`)",
             {"OMP_WAIT_POLICY": None, "GOMP_SPINCOUNT": None})]


def part_contention(args, report: dict) -> list[str]:
    sizes = [64] if args.quick else [1024, 4096]
    repeats = max(args.repeats, 2 if args.quick else 10)
    lines = ["| N | threads wait | alone s/step | two at once s/step (each) | slowdown |",
             "|---|---|---|---|---|"]
    for n in sizes:
        for label, env in POLICIES:
            alone = child("step", repeats, env=env, n=n, backend="sparse", **SEED)
            pair = child("step", repeats, env=env, copies=2, n=n, backend="sparse", **SEED)
            if "error" in alone or "error" in pair:
                lines.append(f"| {n} | {label} | {alone.get('error', '')} | "
                             f"{pair.get('error', '')} | - |")
                continue
            worst = max(pair["times"])
            lines.append(f"| {alone['n']} | {label} | {alone['time_s']:.3f} | "
                         f"{', '.join(f'{t:.3f}' for t in pair['times'])} | "
                         f"**{worst / alone['time_s']:.1f}x** |")
    return ["### Two jobs on one machine's cores (target: each within 2.5x of running alone)",
            "", "The seed-style step alone, then two identical processes at once on the same "
            "cores (each with torch's default thread count); slowdown = the slower of the "
            "two over the step alone.", "", *lines]


PARTS = {"machine": part_machine, "dense": part_dense, "edges": part_edges,
         "memory": part_memory, "gat": part_gat, "allocator": part_allocator,
         "contention": part_contention, "breakdown": part_breakdown}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("parts", nargs="*", default=[],
                   help=f"what to measure: any of {', '.join(PARTS)} (default: all)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    p.add_argument("--memory-gb", type=float, default=None,
                   help="memory dense runs may use (default: what is available)")
    p.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md to update")
    p.add_argument("--inline", action="store_true",
                   help="measure in this process, not one process each (peak memory then "
                        "accumulates: for smoke tests)")
    p.add_argument("--device", default="cpu",
                   help="where to measure: cpu (default) or cuda / cuda:N (peak memory is then "
                        "the device's peak allocation)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    global INLINE, DEVICE
    INLINE, DEVICE = args.inline, args.device
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(CHILDREN[spec["kind"]](spec)))
        return
    import torch

    if args.device != "cpu" and not (args.device.startswith("cuda")
                                     and torch.cuda.is_available()):
        p.error(f"--device {args.device}: expected cpu, or cuda / cuda:N on a machine with a "
                f"CUDA device (torch.cuda.is_available() is {torch.cuda.is_available()})")
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        p.error(f"unknown part(s) {unknown}; choose from {', '.join(PARTS)}")
    parts = args.parts or list(PARTS)
    if "edges" in parts and "machine" not in parts:
        parts.insert(0, "machine")  # the edges table compares with the machine's limits
    report: dict = {}
    intro = ["## Performance and scale: one training step (`scripts/bench.py`)", "",
             "A step = forward + backward + AdamW update of the seed-style config (C = 64, "
             "query/key 16, MLP hidden 16, T = 4, no attention skip, B = 16, grid, k = 32) "
             "unless a table says otherwise; medians of the repeats after a warm-up, each "
             "measurement in its own process, one at a time. Each part says when and how it "
             "was last measured (`python scripts/bench.py PART --out BENCHMARKS.md` re-measures "
             "one and keeps the others)."]
    ran = {}
    for name in parts:
        print(f"[{name}]", flush=True)
        ran[name] = [f"_`python scripts/bench.py {name}{' --quick' if args.quick else ''}` on "
                     f"{date.today()}: {platform.machine()}, device: "
                     f"{args.device if args.device == 'cpu' else torch.cuda.get_device_name(args.device)}"
                     f", threads: "
                     f"{torch.get_num_threads()}, torch {torch.__version__}, "
                     f"{available_memory() / 2**30:.0f} GB available, repeats: "
                     f"{args.repeats}._", "", *PARTS[name](args, report)]
    text = merge_parts(args.out, intro, ran)
    print(text)
    if args.out:
        sys.path.insert(0, str(Path(__file__).parent))
        from _report import write_section

        write_section(args.out, SECTION, text)
        print(f"wrote {args.out}")


SECTION = "bench-model"


def merge_parts(path: Path | None, intro: list[str], ran: dict[str, list[str]]) -> str:
    """The section's text: the intro, then every part in PARTS order, freshly measured or,
    if this run skipped it, as the file last had it (between ``<!-- part NAME -->``
    markers)."""
    old = path.read_text() if path is not None and path.exists() else ""
    blocks = []
    for name in PARTS:
        start, end = f"<!-- part {name} -->", f"<!-- /part {name} -->"
        if name in ran:
            body = "\n".join(ran[name])
        elif start in old and end in old:
            body = old.split(start, 1)[1].split(end, 1)[0].strip("\n")
        else:
            continue
        blocks.append(f"{start}\n{body}\n{end}")
    return "\n\n".join(["\n".join(intro), *blocks])


if __name__ == "__main__":
    main()
