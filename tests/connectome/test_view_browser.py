"""The connectome explorer in a real browser (headless chromium driven by selenium): the
page renders without JavaScript errors and draws every column; hovering a column shows
its text, clicking it shows only its inputs and outputs, the area filter and the snapshot
slider change what is shown. Screenshots go to the pytest tmp dir.

Skipped, with the reason, when chromium / chromedriver or selenium are missing (.ci/run
installs them: apt-get install chromium chromium-driver; pip install -e ".[test,view]")."""
import shutil
import time

import pytest

pytest.importorskip("plotly", reason="the explorer draws with plotly: pip install 'colgraph[view]'")
webdriver = pytest.importorskip("selenium.webdriver",
                                reason="selenium drives the browser: pip install selenium")

from colgraph import Columnformer  # noqa: E402
from colgraph.connectome import to_networkx, view, write_connectome  # noqa: E402
from colgraph.geometry import knn, sphere, stack  # noqa: E402

from test_view import snapshots  # noqa: E402  (tests/connectome is on sys.path)

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,800",
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader")  # WebGL without a GPU


def _find(names):
    return next((p for p in map(shutil.which, names) if p), None)


@pytest.fixture(scope="module")
def browser():
    binary, driver = _find(BROWSERS), _find(DRIVERS)
    if binary is None or driver is None:
        pytest.skip(f"no browser to test the explorer in (chromium: {binary}, chromedriver: "
                    f"{driver}): apt-get install chromium chromium-driver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=options)
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": (
        "window.__errors = []; window.addEventListener('error', e => "
        "window.__errors.push(String(e.message)));")})
    yield d
    d.quit()


def open_page(d, path, timeout=30.0):
    """Open ``path``; wait for the page's script to have drawn it; return the load time."""
    start = time.perf_counter()
    d.get(path.as_uri())
    while not d.execute_script("var g = document.getElementById('colgraph-view');"
                               "return g && g.dataset.ready === '1';"):
        assert time.perf_counter() - start < timeout, "the page did not draw"
        time.sleep(0.05)
    return time.perf_counter() - start


def errors(d):
    logged = [e["message"] for e in d.get_log("browser") if e["level"] == "SEVERE"]
    return d.execute_script("return window.__errors;") + logged


STATE = """var g = document.getElementById('colgraph-view'), s = {columns: 0, edges: 0,
  focus: 0, focused: 0, changes: 0, frames: []};
var o = g.querySelector('.colgraph-focus');  // 3-D: the focus overlay's traces
if (o && o.style.display !== 'none' && o._fullData) o._fullData.forEach(function (t) {
  s.focus += 1; s.focused += t._length; });
g._fullData.forEach(function (t) {
  var r = (t.meta || {}).role;
  if (t.visible !== true) return;
  if (r === 'points') { s.columns += t._length; s.frames.push(t.meta.frame); }
  if (r === 'edges' && t.opacity > 0) s.edges += 1;  // faded out: opacity 0
  if (r === 'changes' && t.opacity > 0) s.changes += 1;
});
s.frame = +g.dataset.frame; s.area = g.dataset.area; s.clicked = +g.dataset.focus;
s.inputs = +g.dataset.inputs; s.outputs = +g.dataset.outputs;
s.canvas = g.querySelectorAll('canvas').length;
(g._fullLayout.shapes || []).forEach(function (h) {  // 2-D focus: a veil, lines, rings
  s[{rect: 'veil', line: 'lines', circle: 'rings'}[h.type]] = (s[{rect: 'veil', line: 'lines',
    circle: 'rings'}[h.type]] || 0) + 1;
});
return s;"""

WHERE = """var g = document.getElementById('colgraph-view'), L = g._fullLayout;
var t = g._fullData.filter(function (t) { return t.visible === true && t.meta
  && t.meta.role === 'points' && t.meta.areas.indexOf(arguments[0]) >= 0; })[0];
var i = arguments[1], r = g.getBoundingClientRect();
return {column: t.customdata[i][0], text: t.text[i],
        x: r.left + L._size.l + L.xaxis.l2p(t.x[i]),
        y: r.top + L._size.t + L.yaxis.l2p(t.y[i])};""".replace("arguments[0]", "AREA")


def column_at(d, area, i):
    return d.execute_script(WHERE.replace("AREA", repr(area)), None, i)


def move(d, x, y, click=False):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    actions = ActionBuilder(d)
    actions.pointer_action.move_to_location(int(x), int(y))
    if click:
        actions.pointer_action.click()
    actions.perform()


def wait(d, condition, timeout=10.0):
    start = time.perf_counter()
    while True:
        s = d.execute_script(STATE)
        if condition(s) or time.perf_counter() - start > timeout:
            return s
        time.sleep(0.05)


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    G = to_networkx(Columnformer(stack([6, 4], wiring=knn(6)), channels=8, steps=4))
    run = tmp_path_factory.mktemp("run")
    for label, g in snapshots(G):
        write_connectome(g, run / "connectome" / f"epoch{int(label.split()[1]):04d}.graphml")
    return G, view(G, snapshots=run, color="in_strength", top_k=2).save(run / "c.html")


def test_renders_every_column_without_errors(browser, page_file, tmp_path):
    G, path = page_file
    seconds = open_page(browser, path)
    s = browser.execute_script(STATE)
    assert errors(browser) == []
    assert s["columns"] == G.number_of_nodes() == 52 and s["frames"] == [3, 3]
    assert s["edges"] > 0 and s["canvas"] >= 1 and s["focus"] == 0
    assert seconds < 20
    browser.save_screenshot(str(tmp_path / "explorer.png"))


def test_hover_shows_the_column_and_click_shows_only_its_wiring(browser, page_file, tmp_path):
    G, path = page_file
    open_page(browser, path)
    c = column_at(browser, "area1", 5)
    move(browser, c["x"], c["y"])
    label = browser.execute_script(
        "var h = document.querySelector('.hoverlayer .hovertext'); return h && h.textContent;")
    assert label is not None and f"column {c['text']}" in label and "in_degree" in label
    move(browser, c["x"], c["y"], click=True)
    s = wait(browser, lambda s: s["clicked"] >= 0)
    node = list(G.nodes)[int(c["column"])]
    assert s["clicked"] == c["column"] and s["focus"] == 0  # 2-D: shapes, not traces
    assert s["inputs"] == min(2, G.in_degree(node)) and s["outputs"] >= 0
    # a veil over the rest, a line per drawn input and output, a ring on each column
    assert s.get("veil") == 1 and s.get("lines") == s["inputs"] + s["outputs"]
    assert s.get("rings") == 1 + s["inputs"] + s["outputs"]
    assert s["columns"] == 52 and s["edges"] > 0  # under the veil: the traces are untouched
    browser.save_screenshot(str(tmp_path / "focus.png"))
    move(browser, c["x"], c["y"], click=True)  # clicked again: everything again
    s = wait(browser, lambda s: s["clicked"] < 0)
    assert s["clicked"] == -1 and s["edges"] > 0 and "veil" not in s and "lines" not in s
    time.sleep(0.4)  # (two clicks within 0.3 s are a double click)
    move(browser, c["x"], c["y"], click=True)
    assert wait(browser, lambda s: s["clicked"] >= 0)["clicked"] == c["column"]
    browser.execute_script("document.getElementById('colgraph-view').dispatchEvent("
                           "new MouseEvent('dblclick', {bubbles: true}));")
    s = wait(browser, lambda s: s["clicked"] < 0)  # a double click: everything again
    assert s["clicked"] == -1 and "veil" not in s
    assert errors(browser) == []


def test_area_filter_and_snapshot_slider(browser, page_file, tmp_path):
    G, path = page_file
    open_page(browser, path)
    browser.find_element("css selector", ".updatemenu-header-group").click()
    start = time.perf_counter()
    while not (buttons := [b for b in browser.find_elements(
            "css selector", ".updatemenu-dropdown-button") if b.text == "area1"]):
        assert time.perf_counter() - start < 10, "the area dropdown did not open"
        time.sleep(0.05)
    buttons[0].click()
    s = wait(browser, lambda s: s["area"] == "area1")
    in_area = sum("area1" in d["area"].split(",") for _, d in G.nodes(data=True))
    assert s["area"] == "area1" and s["columns"] == in_area == 16
    rail = browser.find_element("css selector", ".slider-rail-rect")
    box = browser.execute_script("var r = arguments[0].getBoundingClientRect();"
                                 "return [r.left, r.top, r.width, r.height];", rail)
    move(browser, box[0] + 2, box[1] + box[3] / 2, click=True)  # the rail's left end: epoch 1
    s = wait(browser, lambda s: s["frame"] == 0)
    assert s["frame"] == 0 and s["frames"] == [0] and s["columns"] == 16 and s["changes"] == 0
    move(browser, box[0] + box[2] * 0.36, box[1] + box[3] / 2, click=True)  # epoch 2
    s = wait(browser, lambda s: s["frame"] == 1)
    assert s["frame"] == 1 and s["frames"] == [1] and s["changes"] > 0  # grown / pruned
    shown = browser.execute_script("""return document.getElementById('colgraph-view')._fullData
      .filter(function (t) { return t.meta && t.meta.role === 'changes' && t.visible === true
        && t.opacity > 0; }).map(function (t) { return t.meta.areas; });""")
    assert shown and all("area1" in areas for areas in shown)  # the filter holds for them
    browser.save_screenshot(str(tmp_path / "slider.png"))
    assert errors(browser) == []


COLOURS = """var g = document.getElementById('colgraph-view'), j = arguments[0], out = [];
g.data.forEach(function (t) {  // every frame's columns: their colour, customdata column j
  if (!(t.meta && t.meta.role === 'points')) return;
  var cd = t.customdata, a = null, cols = 0;
  if (cd.bdata) {
    var b = atob(cd.bdata), u = new Uint8Array(b.length);
    for (var i = 0; i < b.length; i++) u[i] = b.charCodeAt(i);
    a = new Float32Array(u.buffer); cols = +String(cd.shape).split(',')[1];
  }
  var n = a ? a.length / cols : cd.length;
  for (var k = 0; k < n; k++) out.push([t.marker.color[k], a ? a[k * cols + j] : cd[k][j]]);
});
var bar = g._fullData.filter(function (t) { return / scale$/.test(t.name); })[0];
return {pairs: out, title: bar.marker.colorbar.title.text, cmax: bar.marker.cmax,
        colour: g.dataset.colour};"""


def pick(d, menu: int, label: str):
    """Open dropdown ``menu`` (0: areas, 1: colour) and click its button ``label``."""
    d.find_elements("css selector", ".updatemenu-header-group")[menu].click()
    start = time.perf_counter()
    while not (buttons := [b for b in d.find_elements(
            "css selector", ".updatemenu-dropdown-button") if b.text == label]):
        assert time.perf_counter() - start < 10, f"the dropdown has no {label!r}"
        time.sleep(0.05)
    buttons[0].click()


def test_colour_menu_recolours_the_columns(browser, page_file):
    G, path = page_file  # coloured by in_strength; the menu offers the hover metrics
    open_page(browser, path)
    pick(browser, 1, "colour: out_degree")
    start = time.perf_counter()
    while browser.execute_script(COLOURS, 2)["colour"] != "out_degree":
        assert time.perf_counter() - start < 10, "the page did not recolour"
        time.sleep(0.05)
    c = browser.execute_script(COLOURS, 2)  # customdata: id, in_degree, out_degree, ...
    assert c["title"] == "out_degree" and len(c["pairs"]) == 4 * 52  # every frame's columns
    assert all(abs(a - b) < 1e-6 for a, b in c["pairs"])
    assert c["cmax"] == max(d for _, d in G.out_degree())  # the learned one's, at least
    pick(browser, 1, "colour: in_strength")  # back: the page's own metric
    while browser.execute_script(COLOURS, 6)["colour"] != "in_strength":
        time.sleep(0.05)
    c = browser.execute_script(COLOURS, 6)
    assert c["title"] == "in_strength" and all(abs(a - b) < 1e-6 for a, b in c["pairs"])
    assert errors(browser) == []


def test_a_sphere_in_3d(browser, tmp_path):
    G = to_networkx(Columnformer(sphere(80, wiring=knn(6)), channels=8, steps=12))
    open_page(browser, view(G, color="degree").save(tmp_path / "sphere.html"))
    s = browser.execute_script(STATE)
    assert errors(browser) == [] and s["columns"] == 80 and s["canvas"] >= 1
    # a click on column 7 (plotly's click event, as a click on its marker sends it): in 3-D
    # the focus is drawn by three traces of an overlay over the scene, the scene untouched
    browser.execute_script("""var g = document.getElementById('colgraph-view');
      var t = g._fullData.filter(function (t) { return t.visible === true && t.meta
        && t.meta.role === 'points'; })[0];
      g.emit('plotly_click', {points: [{data: t, customdata: t.customdata[7]}]});""")
    s = wait(browser, lambda s: s["clicked"] >= 0)
    column = int(browser.execute_script("""var g = document.getElementById('colgraph-view');
      return g._fullData.filter(function (t) { return t.visible === true && t.meta
        && t.meta.role === 'points'; })[0].customdata[7][0];"""))
    assert s["clicked"] == column and s["focus"] == 3 and s["edges"] > 0
    assert s["inputs"] == min(3, G.in_degree(list(G.nodes)[column]))
    assert s["focused"] == 3 * (s["inputs"] + s["outputs"]) + 1 + s["inputs"] + s["outputs"]
    browser.save_screenshot(str(tmp_path / "sphere.png"))
    # the overlay turns with the scene: a drag across the scene, then a camera set in code
    scene = browser.find_element("css selector", ".gl-container canvas")
    box = browser.execute_script("var r = arguments[0].getBoundingClientRect();"
                                 "return [r.left + r.width / 2, r.top + r.height / 2];", scene)
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    drag = ActionBuilder(browser)
    drag.pointer_action.move_to_location(int(box[0]), int(box[1])).pointer_down()
    for step in range(1, 7):
        drag.pointer_action.move_to_location(int(box[0]) + 20 * step, int(box[1]) + 7 * step)
    drag.pointer_action.pointer_up()
    drag.perform()
    for _ in range(2):
        eyes = wait_for(browser, CAMERAS, lambda e: e[0] == e[1])
        assert eyes[0] == eyes[1] and eyes[0] != [1.25, 1.25, 1.25]  # turned, followed
        browser.execute_script("Plotly.relayout(document.getElementById('colgraph-view'), "
                               "{'scene.camera.eye': {x: 0.1, y: 2.0, z: 0.3}});")
    assert eyes[1] == [0.1, 2.0, 0.3] or wait_for(browser, CAMERAS, lambda e: e[0] == e[1])
    pick(browser, 1, "colour: in_degree")  # the surface recolours with the columns
    mesh = wait_for(browser, """var g = document.getElementById('colgraph-view');
      var m = g.data.filter(function (t) { return t.meta && t.meta.role === 'mesh'; })[0];
      return g.dataset.colour === 'in_degree' ? Array.from(m.intensity) : null;""",
                    lambda v: v is not None)
    assert mesh is not None and len(mesh) == 80
    assert sorted(set(mesh)) == sorted({float(d) for _, d in G.in_degree()})
    assert errors(browser) == []


CAMERAS = """var g = document.getElementById('colgraph-view'),
  o = g.querySelector('.colgraph-focus');
return [g, o].map(function (p) { var e = p._fullLayout.scene.camera.eye;
  return [e.x, e.y, e.z].map(function (v) { return Math.round(v * 1000) / 1000; }); });"""


def wait_for(d, script, condition, timeout=10.0):
    start = time.perf_counter()
    while not condition(value := d.execute_script(script)):
        if time.perf_counter() - start > timeout:
            break
        time.sleep(0.05)
    return value
