"""File size and load time of the connectome explorer (:func:`colgraph.connectome.view`).

    python scripts/bench_view.py --columns 10000 100000 --out BENCHMARKS.md

A random sheet of each size (``random_sheet(n, wiring=knn(k))``, input / output areas of
n / 10 columns) as a networkx connectome (positions, areas, random weights in (0, 1],
lengths), built directly (no model); the page (``top_k`` strongest inputs per column) is
built and saved, then opened in headless chromium (selenium; the system's chromium and
chromedriver): load time = from the request until the page's script has drawn everything
(HTML parsed, plotly.js run, WebGL traces drawn), and the response to a click on a column
(until its inputs and outputs are drawn). Single-threaded (``OMP_NUM_THREADS=1``).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def connectome(n: int, k: int, seed: int = 0):
    """A random sheet's connectome: ``n`` columns, ``k`` inputs each."""
    import networkx as nx
    import numpy as np

    from colgraph.geometry import knn, random_sheet

    geo = random_sheet(n, wiring=knn(k), input_size=n // 10, output_size=n // 10, seed=seed)
    areas, pos = geo.column_areas(), geo.pos.tolist()
    G = nx.DiGraph(name=f"random_sheet({n}, knn({k}))", weight="random")
    G.add_nodes_from((i, {"pos": tuple(pos[i]), "area": areas[i]}) for i in range(n))
    src, dst = geo.edge_index.tolist()
    w = np.random.default_rng(seed).random(len(src)) + 1e-3
    G.add_edges_from((s, t, {"weight": float(x), "length": float(d)})
                     for s, t, x, d in zip(src, dst, w.tolist(), geo.edge_length.tolist()))
    return G


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1200,800", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


READY = ("var g = document.getElementById('colgraph-view'); return g && g.dataset.ready === '1'"
         " && g.dataset.focus;")
WHERE = """var g = document.getElementById('colgraph-view'), L = g._fullLayout;
var t = g._fullData.filter(function (t) { return t.visible === true && t.meta
  && t.meta.role === 'points'; })[0], r = g.getBoundingClientRect(), i = Math.floor(t._length / 2);
return [r.left + L._size.l + L.xaxis.l2p(t.x[i]), r.top + L._size.t + L.yaxis.l2p(t.y[i]),
        g._fullData.reduce(function (s, t) { return s + (t.visible === true && t.meta
          && t.meta.role === 'points' ? t._length : 0); }, 0)];"""


def wait(d, script, until, timeout=120.0):
    start = time.perf_counter()
    while True:
        value = d.execute_script(script)
        if until(value):
            return value
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"the page did not answer within {timeout} s")
        time.sleep(0.02)


def measure(n: int, k: int, top_k: int, d, folder: Path) -> dict:
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    from colgraph.connectome import view

    t = time.perf_counter()
    G = connectome(n, k)
    graph = time.perf_counter() - t
    t = time.perf_counter()
    page = view(G, top_k=top_k)
    path = page.save(folder / f"view_{n}.html")
    build = time.perf_counter() - t
    t = time.perf_counter()
    d.get(path.as_uri())
    wait(d, READY, lambda v: v == "-1")
    load = time.perf_counter() - t
    x, y, drawn = d.execute_script(WHERE)
    t = time.perf_counter()
    actions = ActionBuilder(d)
    actions.pointer_action.move_to_location(int(x), int(y))
    actions.pointer_action.click()
    actions.perform()
    focused = wait(d, READY, lambda v: v not in (None, "-1"), timeout=60.0)
    click = time.perf_counter() - t
    return {"n": n, "edges": G.number_of_edges(), "graph": graph, "build": build,
            "size": path.stat().st_size, "load": load, "click": click, "drawn": drawn,
            "focus": focused}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--columns", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    import plotly

    d = browser()
    version = d.capabilities.get("browserVersion", "?")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for n in args.columns:
                r = measure(n, args.k, args.top_k, d, Path(folder))
                print(r, flush=True)
                rows.append(r)
    finally:
        d.quit()
    lines = ["## Connectome explorer at scale (`scripts/bench_view.py`)\n",
             f"`colgraph.connectome.view` on a random sheet (`random_sheet(n, wiring=knn("
             f"{args.k}))`, random weights), the strongest {args.top_k} inputs per column "
             f"drawn; plotly {plotly.__version__} (WebGL `scattergl` traces, arrays as "
             f"base64), headless chromium {version} with software WebGL (SwiftShader), "
             f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')}, on a shared 2-core "
             f"machine (another job running): times are upper bounds. Load: from the request "
             f"until every trace is drawn; click: until a column's inputs and outputs are "
             f"drawn (one restyle: plotly redraws every WebGL trace, so a click costs about "
             f"one full draw; software WebGL on a busy CPU makes it seconds at 10^5).\n",
             "Why plotly: WebGL traces for points and lines in 2-D (`scattergl`) and 3-D "
             "(`scatter3d`, `mesh3d` for surfaces, as nilearn's `view_surf` draws them), "
             "colour bars, dropdowns and sliders built in, numpy arrays written as base64 "
             "(4 bytes per float32 value, not JSON text), one self-contained file with "
             "plotly.js inlined (4.8 MB). Only plotly was measured; bokeh's WebGL backend has "
             "no 3-D traces, so spheres and surfaces would need a second library.\n",
             "| columns | edges | drawn edges | graph built | page built + saved | file | "
             "load | click |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['edges']:,} | {r['n'] * args.top_k:,} | "
                     f"{r['graph']:.1f} s | {r['build']:.1f} s | {r['size'] / 1e6:.1f} MB | "
                     f"{r['load']:.1f} s | {r['click']:.2f} s |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        sys.path.insert(0, str(Path(__file__).parent))
        from _report import write_section

        write_section(args.out, "bench-view", text)


if __name__ == "__main__":
    main()
