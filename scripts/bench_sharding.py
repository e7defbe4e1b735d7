"""Column-sharded sheets (issue 22's proof): halo communication, per-process memory and time
of a training step at P = 2 against one process, and a projection to GPU clusters.

    python scripts/bench_sharding.py --out BENCHMARKS.md          # small sizes (minutes)
    python scripts/bench_sharding.py --full --out BENCHMARKS.md   # the issue's sizes: an
                                        # idle machine (one process alone peaks at 19 GB)
    python scripts/bench_sharding.py communication --scale 0.01 --geometries grid random

Parts (default: all; each writes its own block of BENCHMARKS.md, ``<!-- sharding-PART -->``):

* ``communication``: for each geometry (grid, torus, stack, sphere, cortical mesh, random
  sheet; those of ``scripts/bench_partition.py``), partitioner (``sfc``; ``metis`` when
  pymetis is installed) and ``P``: the edge cut, the halo (``Partition.stats``) and the
  bytes it costs. What :func:`colgraph.parallel.exchange` sends per halo column and sample is
  the keys (``H x D``) and values (``C``) in fp32; the backward sends as much back. No
  training: counted from the partition.
* ``memory``: ONE training step (forward, backward, AdamW) of a bare Columnformer on a grid
  with k-NN wiring, at P = 1 and P = 2, each a real process (``torch.multiprocessing.spawn``,
  gloo): parameters, gradients and AdamW state (sums of tensor sizes), the peak RSS of a
  step above what the process held before building the sheet, the halo per recurrent step
  (from the ``HaloPlan``) and the bytes the collectives were handed (counted).
* ``time``: the same runs' seconds per training step, P = 1 with every core against
  P = 2 with ``cores / 2`` threads each (medians of the steps after a warm-up step).
* ``projection``: ARITHMETIC, NOT MEASUREMENT: parameters, memory, halo, communication and
  compute time per step for N = 10^6 and 10^7 columns at C = 64 on 8 - 256 GPUs of 80 GB,
  and the largest sheet each holds, from exact parameter counts, the memory per column
  measured here at C = 64 (one process, small N), the halos measured by ``communication``
  and the published hardware figures below.

Every measured run is its own process (or processes), one at a time (the projection's two
memory-only runs at once)
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import os
import platform
import resource
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from colgraph import setup_process, tune_allocator

sys.path.insert(0, str(Path(__file__).resolve().parent))

# ------------------------------------------------------------------ projection assumptions
# Published figures (NVIDIA H100 SXM5 80 GB datasheet; InfiniBand NDR 400 Gb/s), and the
# assumptions the projection rests on. Change them here.
GPU_MEMORY = 80e9  # bytes per GPU
GPU_USABLE = 0.90  # of it for the sheet (CUDA context, NCCL buffers, fragmentation)
GPUS_PER_NODE = 8  # a DGX / HGX H100 node
NVLINK_BW = 450e9  # bytes/s per GPU per direction, NVLink 4 (900 GB/s bidirectional)
IB_BW = 50e9  # bytes/s per GPU per direction, InfiniBand NDR (400 Gb/s, one NIC per GPU)
EXCHANGE_LATENCY = 20e-6  # s per all_to_all (assumed: NCCL small-message latency, order)
HBM_BW = 3.35e12  # bytes/s, H100 SXM5 HBM3
SUSTAINED_FLOPS = 300e12  # FLOP/s, assumed sustained bf16 (H100 SXM5 dense peak ~989 T)
PROJECTION_COLUMNS = (10**6, 10**7)  # powers of ten (printed as 10^k)
PROJECTION_GPUS = (8, 16, 32, 64, 128, 256)
# the Columnformer's default model (colgraph.ColumnformerConfig: C = 64, one head, query /
# key 64, MLP x 4) with recompute, trained at B = 16, T = 4 on 12 inputs per column
PROJECTION = dict(channels=64, heads=1, qk=None, hidden=256, steps=4, batch=16, k=12,
                  skip=True, recompute=True, fused=True)
# the halo scenarios: a geometry of `communication` (first word) with the default partitioner
HALO_SCENARIOS = {"grid": "local wiring (grid, k-NN 8)",
                  "random": "long-range wiring (random sheet, k-NN 8 + EDR 4)"}

# ------------------------------------------------------------------ memory / time cases
# the cases: scripts/bench.py's memory configs (its BIG and HUGE) with recompute and
# fused AdamW, the 10^6 sheet with bf16 weights
FULL_CASES = [dict(n=100_000, k=16, batch=8, channels=32, qk=None, hidden=128, steps=4,
                   weight_dtype="float32"),
              dict(n=1_000_000, k=16, batch=4, channels=16, qk=8, hidden=16, steps=4,
                   weight_dtype="bfloat16")]
QUICK_CASE = dict(n=1024, k=16, batch=8, channels=16, qk=None, hidden=64, steps=4,
                  weight_dtype="float32")
FULL_SCALE, QUICK_SCALE = 1.0, 0.05
FULL_PROJECTION_COLUMNS, QUICK_PROJECTION_COLUMNS = 4096, 576
BUSY_LOAD = 0.25  # other work on this share of the CPU time during a timed run: flagged
TARGET = 0.55  # issue 22: state per process at P = 2 within 55% of one process
PARTS = ("communication", "memory", "time", "projection")
GEOMETRY_KEYS = ("grid", "torus", "stack", "sphere", "cortex", "random")


# ------------------------------------------------------------------ helpers
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}: Linux is needed for the memory part")


def _reset_peak() -> None:
    """Start a new peak-RSS window (Linux >= 4.0: writing 5 to clear_refs resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def _cpu_times() -> tuple[float, float, float]:
    """Seconds of CPU time since boot: the machine's total and busy (not idle / iowait)
    (``/proc/stat``), and this process's reaped children's (user + system)."""
    # user nice system idle iowait irq softirq steal (guest time is inside user / nice)
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (sum(fields) / tick, (sum(fields) - fields[3] - fields[4]) / tick,
            children.ru_utime + children.ru_stime)


def _others_share(before: tuple[float, float, float]) -> float:
    """The share of the machine's CPU time since ``before`` (:func:`_cpu_times`) that
    other processes used: busy time minus what this process's children used."""
    total, busy, ours = (b - a for a, b in zip(before, _cpu_times()))
    return max(0.0, busy - ours) / max(total, 1e-9)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gb(b: float) -> str:
    return f"{b / 1e9:,.2f} GB"


def _bytes(b: float) -> str:
    """Bytes in the largest unit that keeps a number >= 1 (decimal units)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= size:
            return f"{b / size:,.2f} {unit}"
    return f"{b:,.0f} B"


def _halo_width(channels: int, heads: int, qk: int | None) -> int:
    """Floats per halo column and sample: keys (H x D) and values (C)."""
    return heads * (qk or channels // heads) + channels


# ------------------------------------------------------------------ part: communication
def part_communication(args, report: dict) -> list[str]:
    from bench_partition import geometries

    from colgraph.parallel import partition

    try:
        import pymetis  # noqa: F401
        methods = ("sfc", "metis")
    except ImportError:
        methods = ("sfc",)
    C, H, B, T = args.comm_channels, args.comm_heads, args.comm_batch, args.comm_steps
    width = _halo_width(C, H, args.comm_qk_dim)
    row_bytes = B * width * 4  # fp32 keys + values of one halo column
    header = ("| geometry | columns | edges | P | method | edge cut | halo / N | max halo / part "
              "| per process: halo / recurrent step (mean / max) | per process: halo / "
              "training step (mean / max) | halo / states per step |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|---|"]
    print(header, flush=True)
    halos = report.setdefault("halo", {})  # (first word, P) -> (columns per part, max ratio)
    for name, build in geometries(args.scale).items():
        key = name.split()[0].rstrip(",")
        if args.geometries and key not in args.geometries:
            continue
        try:
            geo = build()
        except ImportError as e:  # the cortical mesh needs nilearn
            lines.append(f"| {name} | needs {e.name or e}: `pip install "
                         f"'colgraph[surface]'` |" + " |" * 9)
            continue
        if isinstance(geo, tuple):  # (cortex geometry, extra partition options)
            geo = geo[0]
        n = geo.num_columns
        for parts in args.parts:
            if parts > n:
                raise SystemExit(f"--parts {parts} exceeds the {n} columns of '{name}': "
                                 f"raise --scale or lower --parts.")
            for method in methods:
                s = partition(geo, parts, method).stats(geo)
                if method == "sfc":
                    halos[key, parts] = (n / parts, s.max_halo_ratio)
                mean_step = s.halo.sum().item() / parts * row_bytes
                max_step = s.halo.max().item() * row_bytes
                train = 2 * T  # forward + backward of T recurrent steps
                lines.append(
                    f"| {name} | {n:,} | {geo.num_edges:,} | {parts} | {method} | "
                    f"{s.cut_fraction:.2%} | {s.halo_fraction:.3f} | {s.max_halo_ratio:.3f} | "
                    f"{_bytes(mean_step)} / {_bytes(max_step)} | {_bytes(train * mean_step)} / "
                    f"{_bytes(train * max_step)} | {s.halo_fraction * width / C:.3f} |")
                print(lines[-1], flush=True)
        if len(methods) == 1:
            lines.append(f"| {name} | {n:,} | {geo.num_edges:,} | - | metis | pymetis is not "
                         f"installed (`pip install 'colgraph[metis]'`) | | | | | |")
    qk = args.comm_qk_dim or C // H
    return [f"### Halo communication per geometry and partitioner (`--scale {args.scale}`)", "",
            f"Counted from `partition(geometry, P, method).stats(geometry)` (no training). "
            f"Bytes for C = {C}, H = {H} head(s) of query / key width {qk}, batch B = {B}: "
            f"`exchange` sends the keys ({H} x {qk}) and values ({C}) of each halo column and "
            f"sample in fp32, {row_bytes:,} bytes per halo column per recurrent step; the "
            f"backward returns as much (their gradients). *Per process*: mean and busiest "
            f"(max) over the P processes of what one RECEIVES (sends, summed over processes, "
            f"are the same total). *Training step*: forward + backward of T = {T} recurrent "
            f"steps = {2 * T} exchanges (with `recompute` the forward runs again in backward: "
            f"{3 * T}). *Halo / states*: all halo bytes of one recurrent step over the "
            f"sheet's states (N x B x C x 4 bytes): halo / N x ({H * qk} + {C}) / {C}.", "",
            *lines]


# ------------------------------------------------------------------ part: memory + time
class _Counter:
    """Bytes handed to ``all_to_all_single`` (to other processes) and ``all_reduce``."""

    def __init__(self, rank: int) -> None:
        import torch.distributed as dist

        self.rank, self.all_to_all, self.all_reduce = rank, 0, 0
        a2a, reduce = dist.all_to_all_single, dist.all_reduce

        def all_to_all_single(output, input, output_split_sizes=None, input_split_sizes=None,
                              *args, **kwargs):
            rows = input.size(0) if input.dim() else 1
            per_row = input.numel() // max(rows, 1) * input.element_size()
            splits = input_split_sizes or [rows // dist.get_world_size(kwargs.get("group"))] \
                * dist.get_world_size(kwargs.get("group"))
            self.all_to_all += per_row * (sum(splits) - splits[self.rank])
            return a2a(output, input, output_split_sizes, input_split_sizes, *args, **kwargs)

        def all_reduce(tensor, *args, **kwargs):
            self.all_reduce += tensor.numel() * tensor.element_size()
            return reduce(tensor, *args, **kwargs)

        dist.all_to_all_single, dist.all_reduce = all_to_all_single, all_reduce

    def reset(self) -> None:
        self.all_to_all = self.all_reduce = 0


def _step_worker(rank: int, world: int, port: int, spec: dict, out_dir: str) -> None:
    """One process of a P = ``world`` sheet: build, then 1 + ``repeats`` training steps."""
    tune_allocator()  # this process's allocator (spawned: the parent's setting is not ours)
    import torch
    import torch.distributed as dist

    from colgraph import Columnformer
    from colgraph.geometry import grid, knn
    from colgraph.parallel import ColumnShard, partition
    from colgraph.training.optim import param_groups

    torch.set_num_threads(spec["threads"])
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=spec["timeout"]))
    counter = _Counter(rank)
    gc.collect()
    base = _status_kb("VmRSS") * 1024  # the interpreter, torch, colgraph
    geo = grid(math.isqrt(spec["n"]), wiring=knn(k=spec["k"]))
    part = partition(geo, world, spec["partition"])
    stats = part.stats(geo)
    geo = part.renumber(geo)
    shard = ColumnShard(part.bounds, rank)
    torch.manual_seed(0)
    model = Columnformer(geo, shard=shard, channels=spec["channels"], steps=spec["steps"],
                         heads=spec.get("heads", 1), qk_dim=spec["qk"],
                         mlp_ratio=spec["hidden"] / spec["channels"], skip=spec["skip"],
                         recompute=spec["recompute"], weight_dtype=spec["weight_dtype"])
    n, e = geo.num_columns, geo.num_edges
    del geo, part
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3, fused=spec["fused"])
    torch.manual_seed(1)
    tokens = torch.randn(spec["batch"], model.input_index.numel(), spec["channels"])
    gc.collect()

    def step() -> None:  # tests/parallel/test_shard.py's loss: sums over the whole sheet
        model.zero_grad(set_to_none=True)
        out = model(tokens)
        wiring = sum((a.sum(1) * model.edges.length).sum() for a in out.attention)
        loss = shard.sum(out.output.pow(2).mean(-1).sum()) / n + out.activity.l1 \
            + shard.sum(wiring) / e
        shard.loss(loss).backward()
        shard.sync_replicated(model)
        opt.step()

    times, peaks, a2a, reduced = [], [], [], []
    for _ in range(1 + spec["repeats"]):  # the first: warm-up (halo plan, AdamW state)
        if world > 1:
            dist.barrier()  # start together: a step's time is the group's
        _reset_peak()
        counter.reset()
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
        peaks.append(_status_kb("VmHWM") * 1024 - base)
        a2a.append(counter.all_to_all)
        reduced.append(counter.all_reduce)
    params = list(model.parameters())
    plan = model.edges.halo()
    width = _halo_width(spec["channels"], spec.get("heads", 1), spec["qk"])
    result = {
        "rank": rank, "threads": torch.get_num_threads(), "owned": shard.num_owned,
        "edges": model.edges.num_edges, "columns": n, "all_edges": e,
        "params": sum(p.numel() for p in params),
        "param_bytes": sum(p.numel() * p.element_size() for p in params),
        "grad_bytes": sum(p.grad.numel() * p.grad.element_size() for p in params
                          if p.grad is not None),
        "optim_bytes": sum(v.numel() * v.element_size() for s in opt.state.values()
                           for v in s.values() if torch.is_tensor(v) and v.dim() > 0),
        "buffer_bytes": sum(b.numel() * b.element_size() for b in model.buffers()),
        "base_bytes": base, "peak_bytes": max(peaks), "first_peak_bytes": peaks[0],
        "times": times[1:], "halo": plan.num_halo, "sent_rows": sum(plan.send_counts),
        "halo_step_bytes": sum(plan.send_counts) * spec["batch"] * width * 4,
        "all_to_all_bytes": statistics.median(a2a[1:]),
        "all_reduce_bytes": statistics.median(reduced[1:]),
        "cut": stats.cut_fraction, "halo_fraction": stats.halo_fraction}
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    if world > 1:
        dist.destroy_process_group()


def _separate_worker(i: int, specs: list[dict], out_dir: str) -> None:
    """Sheet ``i`` of ``specs``, one process alone (no group): see :func:`run_sheets`."""
    Path(out_dir, str(i)).mkdir()
    _step_worker(0, 1, 0, specs[i], str(Path(out_dir, str(i))))


def _spawn(fn, args: tuple, nprocs: int, out_dir: str, files: list[str]) -> list[dict] | str:
    import torch.multiprocessing as mp

    try:
        mp.spawn(fn, args=args, nprocs=nprocs, join=True)
    except mp.ProcessExitedException as e:
        killed = e.exit_code in (-9, 137) or "SIGKILL" in str(e)
        return "out of memory (killed)" if killed else f"failed: {e}"
    except Exception as e:  # a worker's exception, re-raised here with its traceback
        return f"failed: {str(e).strip().splitlines()[-1][:300]}"
    return [json.loads(Path(out_dir, f).read_text()) for f in files]


def run_sheet(spec: dict, world: int) -> list[dict] | str:
    """``world`` processes of one sheet (``spec``), with ``cores / world`` threads each:
    each rank's result, or why it failed."""
    spec = {**spec, "threads": max(1, (os.cpu_count() or 1) // world)}
    with tempfile.TemporaryDirectory() as tmp:
        return _spawn(_step_worker, (world, _free_port(), spec, tmp), world, tmp,
                      [f"rank{r}.json" for r in range(world)])


def run_sheets(specs: list[dict]) -> list[dict] | str:
    """One-process sheets, all at once, one thread each: for their MEMORY (peak RSS is
    per process); their times compete for the cores and mean nothing."""
    specs = [{**spec, "threads": 1} for spec in specs]
    with tempfile.TemporaryDirectory() as tmp:
        return _spawn(_separate_worker, (specs, tmp), len(specs), tmp,
                      [f"{i}/rank0.json" for i in range(len(specs))])


def _cases(args) -> list[dict]:
    shared = dict(partition=args.partition, repeats=args.repeats, timeout=args.timeout,
                  skip=True, recompute=not args.no_recompute, fused=True)
    chosen = {k: v for k, v in (("n", args.columns), ("channels", args.channels),
                                ("batch", args.batch), ("steps", args.steps),
                                ("weight_dtype", args.weight_dtype), ("k", args.k))
              if v is not None}
    if chosen or not args.full:
        case = {**QUICK_CASE, **chosen}
        if "channels" in chosen:  # MLP x 4 at the chosen width, as QUICK_CASE
            case["hidden"] = 4 * case["channels"]
        return [{**case, **shared}]
    return [{**case, **shared} for case in FULL_CASES]


def _label(case: dict) -> str:
    qk = f", qk {case['qk']}" if case["qk"] else ""
    dtype = ", bf16 weights" if case["weight_dtype"] == "bfloat16" else ""
    return (f"N = {case['n']:,} (grid, k = {case['k']}, B = {case['batch']}, "
            f"C = {case['channels']}{qk}, MLP hidden {case['hidden']}, T = {case['steps']}"
            f"{dtype})")


def measure_sheets(args, report: dict) -> None:
    """P = 1 and P = 2 of every case, once for both the memory and the time part."""
    if "sheets" in report:
        return
    report["sheets"] = []
    for case in _cases(args):
        side = math.isqrt(case["n"])
        case["n"] = side * side  # a square grid
        runs = {}
        for world in (1, 2):
            print(f"  {_label(case)}, P = {world} ...", flush=True)
            before = _cpu_times()  # other work on the machine skews the times
            runs[world] = run_sheet(case, world)
            load = _others_share(before)
            if not isinstance(runs[world], str):
                for r in runs[world]:
                    r["load"] = load
            print(f"    {runs[world] if isinstance(runs[world], str) else 'done'}", flush=True)
        report["sheets"].append((case, runs))


def part_memory(args, report: dict) -> list[str]:
    measure_sheets(args, report)
    lines = ["| case | P | rank | columns | parameters | gradients | AdamW state | state | "
             "state / one process | peak | peak / one process | halo columns | halo / "
             "recurrent step (plan) | all-to-all / training step (counted) | all-reduce / "
             "training step |", "|---" * 15 + "|"]
    cuts = []
    for case, runs in report["sheets"]:
        one = runs[1][0] if not isinstance(runs[1], str) else None
        for world, results in runs.items():
            if isinstance(results, str):
                lines.append(f"| {_label(case)} | {world} | - | {results} |" + " |" * 11)
                continue
            for r in results:
                state = r["param_bytes"] + r["grad_bytes"] + r["optim_bytes"]
                ref = (one["param_bytes"] + one["grad_bytes"] + one["optim_bytes"]) if one \
                    else float("nan")
                peak_ref = one["peak_bytes"] if one else float("nan")
                lines.append(
                    f"| {_label(case)} | {world} | {r['rank']} | {r['owned']:,} | "
                    f"{_bytes(r['param_bytes'])} | {_bytes(r['grad_bytes'])} | "
                    f"{_bytes(r['optim_bytes'])} | {_bytes(state)} | **{state / ref:.1%}** | "
                    f"{_bytes(r['peak_bytes'])} | {r['peak_bytes'] / peak_ref:.1%} | "
                    f"{r['halo']:,} | {_bytes(r['halo_step_bytes'])} | "
                    f"{_bytes(r['all_to_all_bytes'])} | {_bytes(r['all_reduce_bytes'])} |")
            if world > 1 and one:
                worst = max(r["param_bytes"] + r["grad_bytes"] + r["optim_bytes"]
                            for r in results) / ref
                verdict = "met" if worst <= TARGET else "NOT met"
                cuts.append(f"{_label(case)}, P = {world}: state of the largest process "
                            f"{worst:.1%} of one process (target <= {TARGET:.0%}: {verdict}); "
                            f"edge cut {results[0]['cut']:.2%}, halo / N "
                            f"{results[0]['halo_fraction']:.3f}")
    return ["### Memory per process: one training step at P = 2 against one process "
            "(target: parameters, gradients and AdamW state per process within 55% of one "
            "process)", "",
            "Each P is its own set of processes (`torch.multiprocessing.spawn`, gloo), the "
            f"sheet partitioned with `{args.partition}`; one step = forward, backward "
            "(loss / P, replicated gradients summed) and a fused AdamW step, with "
            f"`recompute={not args.no_recompute}`. *State* = parameters + gradients + AdamW "
            "moments (sums of tensor sizes). *Peak* = the largest peak RSS of a step "
            f"(VmHWM, reset before each of the 1 + {args.repeats} steps) above the process's "
            "RSS before it built the sheet (the interpreter and torch). *Halo / recurrent "
            "step*: what this process SENDS each exchange, from its `HaloPlan` "
            "(columns x B x (H x D + C) x 4 bytes); *all-to-all / training step*: the bytes "
            "it handed `all_to_all_single` for other processes in one training step "
            "(median of the steps after the first), i.e. 2 T exchanges, 3 T with recompute "
            "(the forward runs again in backward); *all-reduce*: the payload of the "
            "loss sums and of the replicated parameters' gradient sum. Not in the state: "
            "the sheet's buffers (edges, positions: positions are whole on every process) "
            "and the input tokens `[B, N_in, C]`, whole on every process (a grid's input "
            "area is every column).", "", *lines, "",
            *[f"- {c}" for c in cuts]]


def part_time(args, report: dict) -> list[str]:
    measure_sheets(args, report)
    cores = os.cpu_count() or 1
    lines = ["| case | P | threads each | s / training step (median) | speed-up | "
             "other work during the run |",
             "|---|---|---|---|---|---|"]
    for case, runs in report["sheets"]:
        times = {}
        for world, results in runs.items():
            if isinstance(results, str):
                lines.append(f"| {_label(case)} | {world} | - | {results} | - | - |")
                continue
            # each step ends when its slowest process does
            times[world] = statistics.median(max(ts) for ts in zip(*(r["times"] for r in
                                                                     results)))
            speed = f"**{times[1] / times[world]:.2f}x**" if 1 in times else "-"
            lines.append(f"| {_label(case)} | {world} | {results[0]['threads']} | "
                         f"{times[world]:.3f} | {speed} | {results[0]['load']:.0%} |")
    loads = [r[0]["load"] for _, runs in report["sheets"] for r in runs.values()
             if not isinstance(r, str)]
    busy = (["", f"**Other work used {max(loads):.0%} of the machine's CPU time during a "
             f"run: these times are not reliable. Re-run `time` on an idle machine.**"]
            if loads and max(loads) > BUSY_LOAD else [])
    return [f"### Time per training step at P = 2 against one process ({cores} cores)", "",
            f"The runs of the memory table: one process with {cores} threads against "
            f"{2} processes with {max(1, cores // 2)} each, so both use every core; median "
            f"over {args.repeats} steps after a warm-up step of the slowest process's time "
            f"(the processes start each step together). Column sharding divides the "
            f"per-column work but adds the halo exchange and a synchronisation per "
            f"recurrent step: on one machine it buys memory, not speed; it pays off in time "
            f"only where each process brings its own cores or device. *Other work*: the "
            f"share of the machine's CPU time (`/proc/stat`) during the run that the "
            f"measured processes did not use (above {BUSY_LOAD:.0%} the table is flagged: a "
            f"2-thread process suffers most, its threads waiting for each other).", "",
            *lines, *busy]


# ------------------------------------------------------------------ part: projection
def per_column_bytes(channels: int, heads: int, qk: int | None, hidden: int, k: int) -> dict:
    """Exact: parameters per column of a tiny sheet of the projection's model (every
    registered per-column tensor) and bytes per column of parameters + gradients + AdamW
    moments (each the parameter's dtype), fp32 and bf16 weights; per-edge parameters per
    column (k edges)."""
    from colgraph import Columnformer
    from colgraph.geometry import grid, knn

    out = {}
    for dtype in ("float32", "bfloat16"):
        geo = grid(4, wiring=knn(k=min(k, 15)))
        model = Columnformer(geo, channels=channels, heads=heads, qk_dim=qk,
                             mlp_ratio=hidden / channels, weight_dtype=dtype)
        column = [e.get() for e in model.edges._columns]
        edge = [e.get() for e in model.edges._registry]
        n, e = geo.num_columns, geo.num_edges
        out[dtype] = {
            "params": sum(t.numel() for t in column) / n + sum(t.numel() for t in edge) / e * k,
            "state_bytes": 4 * (sum(t.numel() * t.element_size() for t in column) / n
                                + sum(t.numel() * t.element_size() for t in edge) / e * k)}
    return out


def _halo_ratio(halos: dict, key: str, n: float) -> tuple[float, float]:
    """Halo columns per owned column of the busiest part when parts hold ``n`` columns:
    the ``communication`` part's measurement at its LARGEST P (parts with neighbours on
    most sides, as at the projected P >= 8), scaled by the 2-D boundary law
    sqrt(n_measured / n); and that measurement's columns per part."""
    points = {p: v for (g, p), v in halos.items() if g == key}
    if not points:
        raise SystemExit(f"projection needs the '{key}' geometry of the communication part "
                         f"(--geometries must include it).")
    n0, r0 = points[max(points)]
    return r0 * math.sqrt(n0 / n), n0


def part_projection(args, report: dict) -> list[str]:
    from bench import step_bytes, step_flops

    spec = dict(PROJECTION)
    C, H, B, T, k = spec["channels"], spec["heads"], spec["batch"], spec["steps"], spec["k"]
    qk = spec["qk"] or C // H
    width = _halo_width(C, H, spec["qk"])
    exact = per_column_bytes(C, H, spec["qk"], spec["hidden"], k)
    # measured: everything one process holds per column during a step (state, activations,
    # workspace, edges), at small N, fp32 and bf16 weights
    n_measure = args.projection_columns
    dtypes = ("float32", "bfloat16")
    print(f"  per-column memory at C = {C}, N = {n_measure}, {' and '.join(dtypes)} weights "
          f"(one process each, at once) ...", flush=True)
    runs = run_sheets([{**spec, "n": n_measure, "weight_dtype": dtype, "partition": "sfc",
                        "repeats": 1, "timeout": args.timeout} for dtype in dtypes])
    if isinstance(runs, str):
        raise SystemExit(f"the projection's memory measurement failed: {runs}")
    measured = {dtype: {"peak": r["peak_bytes"] / r["columns"], "columns": r["columns"],
                        "state": (r["param_bytes"] + r["grad_bytes"] + r["optim_bytes"])
                        / r["columns"]} for dtype, r in zip(dtypes, runs)}
    params = exact["float32"]["params"]
    recompute_factor = 4 / 3 if spec["recompute"] else 1.0  # the forward runs twice
    exchanges = (3 if spec["recompute"] else 2) * T
    halos = report["halo"]
    lines = ["| columns N | GPUs | columns / GPU | parameters / GPU | parameters + gradients + "
             "AdamW / GPU: fp32, bf16 weights | memory / GPU: fp32, bf16 weights | halo "
             "scenario | halo / GPU (ratio) | halo / recurrent step / GPU | communication / "
             "training step | compute / training step | communication / compute |",
             "|---" * 12 + "|"]
    for N in PROJECTION_COLUMNS:
        for gpus in PROJECTION_GPUS:
            n = N / gpus
            for key, scenario in HALO_SCENARIOS.items():
                ratio, n0 = _halo_ratio(halos, key, n)
                halo_bytes = ratio * n * B * width * 4
                bw = NVLINK_BW if gpus <= GPUS_PER_NODE else IB_BW
                comm = exchanges * (halo_bytes / bw + EXCHANGE_LATENCY)
                flops = step_flops(n, n * k, {**spec, "qk": qk}) * recompute_factor
                traffic = step_bytes(n, n * k, {**spec, "qk": qk}, int(n * params))
                compute = max(flops / SUSTAINED_FLOPS, traffic / HBM_BW)
                halo_mem = ratio * B * width * 4 * 2  # one step's halo and its gradient
                mem = [n * (measured[d]["peak"] + halo_mem) for d in ("float32", "bfloat16")]
                fits = ["" if m <= GPU_USABLE * GPU_MEMORY else " (does not fit)" for m in mem]
                lines.append(
                    f"| 10^{round(math.log10(N))} | {gpus} | {n:,.0f} | "
                    f"{n * params / 1e9:,.2f} G | {_gb(n * exact['float32']['state_bytes'])}, "
                    f"{_gb(n * exact['bfloat16']['state_bytes'])} | "
                    f"{_gb(mem[0])}{fits[0]}, {_gb(mem[1])}{fits[1]} | "
                    f"{scenario} | {ratio:.4f} | {_bytes(halo_bytes)} | {comm * 1e3:,.2f} ms"
                    f" | {compute * 1e3:,.1f} ms | {comm / compute:.1%} |")
    names = [HALO_SCENARIOS[key].split(" (")[0] for key in HALO_SCENARIOS]
    cap = ["| GPUs | " + " | ".join(f"{d} weights, {name}" for d in ("fp32", "bf16")
                                     for name in names) + " |", "|---" * 5 + "|"]
    for gpus in (1, *PROJECTION_GPUS):
        largest = []
        for d in ("float32", "bfloat16"):
            for key in HALO_SCENARIOS:
                n = GPU_USABLE * GPU_MEMORY / measured[d]["peak"]
                for _ in range(20):  # the halo per column grows as parts shrink
                    ratio = 0.0 if gpus == 1 else _halo_ratio(halos, key, n)[0]
                    n = GPU_USABLE * GPU_MEMORY / (measured[d]["peak"] + ratio * B * width * 8)
                largest.append(f"{gpus * n:,.3g}")
        cap.append(f"| {gpus}{' (no halo)' if gpus == 1 else ''} | " + " | ".join(largest)
                   + " |")
    f32, b16 = measured["float32"], measured["bfloat16"]
    grad_bytes = exact["float32"]["state_bytes"] / 4  # the gradient is a copy of each param
    grad_bf16 = exact["bfloat16"]["state_bytes"] / 4
    n_ref = PROJECTION_COLUMNS[0] / PROJECTION_GPUS[-1]  # the smallest parts projected
    halo_local, halo_edr = (_halo_ratio(halos, key, n_ref)[0] * B * width * 4 * exchanges
                            for key in HALO_SCENARIOS)
    measured_halo = ", ".join(f"{HALO_SCENARIOS[g].split(' (')[0]} P = {p}: {r:.3f} at "
                              f"{n0:,.0f} columns / part" for (g, p), (n0, r) in halos.items()
                              if g in HALO_SCENARIOS)
    return ["### Projection to GPU clusters (ARITHMETIC, NOT MEASUREMENT)", "",
            f"**On paper**: no GPU was used. Model: the default Columnformer (C = {C}, {H} "
            f"head, query / key {qk}, MLP hidden {spec['hidden']}, T = {T}, recompute) with "
            f"{k} inputs per column, batch B = {B}. Inputs:", "",
            f"- *Parameters*: {params:,.0f} per column (exact, counted on a tiny sheet: every "
            f"per-column tensor plus {k} edge biases); parameters + gradients + AdamW = "
            f"{exact['float32']['state_bytes']:,.0f} B per column in fp32 (16 B/param), "
            f"{exact['bfloat16']['state_bytes']:,.0f} B with bf16 matmul weights.",
            f"- *Memory per column* (measured here, one process, N = {f32['columns']:,}, "
            f"this config on CPU): the step's peak above the process's start, "
            f"{f32['peak']:,.0f} B (fp32 weights; of which state {f32['state']:,.0f} B) and "
            f"{b16['peak']:,.0f} B (bf16 weights; state {b16['state']:,.0f} B), taken as "
            f"linear in N (every per-column tensor is); plus one step's halo keys / values "
            f"and their gradients. Usable: {GPU_USABLE:.0%} of {GPU_MEMORY / 1e9:.0f} GB.",
            f"- *Halo* (measured by the communication part, `sfc`): halo columns per owned "
            f"column of the busiest part ({measured_halo}); a part of n columns takes the "
            f"measurement at the largest P, scaled by sqrt(n_measured / n) (a 2-D part's "
            f"boundary over its area; checked on BENCHMARKS.md's partition tables: it "
            f"predicts P = 16 of the 300 x 300 grid from P = 8 within 12%, and the 2,500-"
            f"column random sheet at P = 8 from the 50,000-column one within 8%). Bytes: keys + values fp32, {width * 4 * B:,} "
            f"B per halo column per exchange; {exchanges} exchanges per training step "
            f"(forward, recomputed forward, backward).",
            f"- *Communication*: halo bytes / bandwidth + {EXCHANGE_LATENCY * 1e6:.0f} us "
            f"(assumed) per exchange; NVLink 4 at {NVLINK_BW / 1e9:.0f} GB/s per GPU per "
            f"direction within a node (<= {GPUS_PER_NODE} GPUs), InfiniBand NDR at "
            f"{IB_BW / 1e9:.0f} GB/s per GPU beyond (all halo counted as crossing nodes); "
            f"not overlapped with compute.",
            f"- *Compute*: the longer of FLOPs / {SUSTAINED_FLOPS / 1e12:.0f} TFLOP/s "
            f"(assumed sustained bf16 on an H100; `scripts/bench.py`'s step FLOP count of "
            f"the per-column matmuls and per-edge products, x 4/3 for the recomputed "
            f"forward) and the step's minimal memory traffic (`bench.py`'s lower bound, "
            f"fp32) / {HBM_BW / 1e12:.2f} TB/s HBM3. With B = {B} each weight is used "
            f"for {B} multiply-adds per pass: the step is bound by memory traffic, not "
            f"FLOPs.",
            f"- *Data parallelism instead* (for comparison): every GPU holds the whole sheet "
            f"and all-reduces every gradient each step, {grad_bytes:,.0f} B per column "
            f"(4 B/param; bf16 weights: {grad_bf16:,.0f} B): a ring all-reduce sends "
            f"~2x that per GPU per training step, against "
            f"{halo_local:,.0f} - {halo_edr:,.0f} B per owned column of halo (the two "
            f"scenarios at {n_ref:,.0f} columns / GPU) with column sharding.", "", *lines, "",
            f"Largest sheet (columns) each configuration holds ({GPU_USABLE:.0%} of "
            f"{GPU_MEMORY / 1e9:.0f} GB per GPU, B = {B}, recompute; the measured memory per "
            f"column plus one step's halo and its gradient):", "", *cap]


# ------------------------------------------------------------------ main
SECTIONS = {"communication": part_communication, "memory": part_memory, "time": part_time,
            "projection": part_projection}


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {value})")
    return n


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("sections", nargs="*", default=[], metavar="part",
                   help=f"what to run: any of {', '.join(PARTS)} (default: all)")
    p.add_argument("--full", action="store_true",
                   help="the issue's sizes: geometries at --scale 1, memory / time at "
                        "N = 10^5 (C = 32) and N = 10^6 (C = 16, bf16 weights), projection "
                        f"measured at N = {FULL_PROJECTION_COLUMNS}")
    p.add_argument("--out", type=Path, default=None, help="BENCHMARKS.md to update")
    p.add_argument("--repeats", type=_positive, default=3, help="timed steps after a warm-up")
    p.add_argument("--timeout", type=_positive, default=3600,
                   help="seconds a process waits at a collective before failing")
    g = p.add_argument_group("communication (and the projection's halo)")
    g.add_argument("--scale", type=float, default=None,
                   help=f"geometry sizes x scale (bench_partition.py's; default {QUICK_SCALE},"
                        f" --full {FULL_SCALE})")
    g.add_argument("--geometries", nargs="+", default=None, choices=GEOMETRY_KEYS,
                   help="which geometries (default: all; cortex needs nilearn)")
    g.add_argument("--parts", type=_positive, nargs="+", default=[2, 4, 8], metavar="P",
                   help="numbers of processes P (default 2 4 8)")
    g.add_argument("--comm-channels", type=_positive, default=64, help="C of the byte counts")
    g.add_argument("--comm-heads", type=_positive, default=1)
    g.add_argument("--comm-qk-dim", type=_positive, default=None,
                   help="query / key width per head (default C / heads)")
    g.add_argument("--comm-batch", type=_positive, default=16)
    g.add_argument("--comm-steps", type=_positive, default=4, help="recurrent steps T")
    g = p.add_argument_group("memory and time (default: one small sheet; --full: the issue's "
                             "two; any of --columns, --channels, --batch, --steps, --k, "
                             "--weight-dtype: one sheet, the small one changed)")
    g.add_argument("--columns", type=_positive, default=None,
                   help=f"N (rounded down to a square grid; default {QUICK_CASE['n']})")
    g.add_argument("--channels", type=_positive, default=None,
                   help=f"C (default {QUICK_CASE['channels']}; MLP hidden 4 C)")
    g.add_argument("--batch", type=_positive, default=None)
    g.add_argument("--steps", type=_positive, default=None, help="recurrent steps T")
    g.add_argument("--k", type=_positive, default=None, help="k-NN inputs per column")
    g.add_argument("--weight-dtype", choices=("float32", "bfloat16"), default=None)
    g.add_argument("--partition", choices=("sfc", "metis"), default="sfc")
    g.add_argument("--no-recompute", action="store_true",
                   help="keep every step's activations (default: recompute, as the issue's "
                        "memory figures)")
    p.add_argument("--projection-columns", type=_positive, default=None,
                   help=f"N of the projection's per-column memory measurement (default "
                        f"{QUICK_PROJECTION_COLUMNS}, --full {FULL_PROJECTION_COLUMNS})")
    args = p.parse_args(argv)
    unknown = sorted(set(args.sections) - set(PARTS))
    if unknown:
        p.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if args.scale is None:
        args.scale = FULL_SCALE if args.full else QUICK_SCALE
    if not (math.isfinite(args.scale) and args.scale > 0):
        p.error(f"--scale must be a finite number > 0 (got {args.scale})")
    if args.projection_columns is None:
        args.projection_columns = FULL_PROJECTION_COLUMNS if args.full else \
            QUICK_PROJECTION_COLUMNS
    if args.columns is not None and args.columns < 4:
        p.error(f"--columns must be >= 4 (a 2 x 2 grid, split over 2 processes; got "
                f"{args.columns})")
    k, n = args.k or QUICK_CASE["k"], args.columns or QUICK_CASE["n"]
    if k >= math.isqrt(n) ** 2:  # the small sheet (--full's own have k = 16 of 10^5, 10^6)
        p.error(f"--k {k} needs more than {k} columns (the sheet has {math.isqrt(n) ** 2})")
    if args.projection_columns < 16:
        p.error(f"--projection-columns must be >= 16 (got {args.projection_columns})")
    qk, heads = args.comm_qk_dim, args.comm_heads
    if qk is None and args.comm_channels % heads:
        p.error(f"--comm-channels {args.comm_channels} is not divisible by --comm-heads "
                f"{heads}: give --comm-qk-dim")
    sections = list(dict.fromkeys(args.sections or PARTS))
    if "projection" in sections and "communication" not in sections:
        sections.insert(0, "communication")  # the projection's halos come from it
    if "projection" in sections and args.geometries:
        missing = sorted(set(HALO_SCENARIOS) - set(args.geometries))
        if missing:
            p.error(f"projection needs the geometries {', '.join(missing)} too "
                    f"(--geometries ... {' '.join(missing)})")
    args.sections = sections
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    import torch

    if not Path("/proc/self/clear_refs").exists() and {"memory", "time", "projection"} & \
            set(args.sections):
        raise SystemExit("The memory, time and projection parts read peak RSS from "
                         "/proc/self (Linux); run only 'communication' here.")
    report: dict = {}
    command = " ".join(["python scripts/bench_sharding.py", *(sys.argv[1:] if argv is None
                                                              else argv)])
    stamp = (f"_`{command}` on {datetime.date.today()}: {platform.machine()}, "
             f"{os.cpu_count()} cores, torch {torch.__version__}, gloo._")
    for name in args.sections:
        print(f"[{name}]", flush=True)
        text = "\n".join([stamp, "", *SECTIONS[name](args, report)])
        print(text, flush=True)
        if args.out:
            from _report import write_section

            write_section(args.out, f"sharding-{name}", text)
            print(f"wrote the {name} part to {args.out}", flush=True)


if __name__ == "__main__":
    setup_process()  # threads' wait, tcmalloc where installed (re-executes once): first
    main()
