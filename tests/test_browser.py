"""The page in a real browser (Debian's chromium driven by playwright, WebGL by SwiftShader).

Skipped, with the reason, where chromium or playwright is missing (make setup installs both).
"""
import io
import json
import shutil
import time

import numpy as np
import pytest
from matplotlib.image import imread

from landscape.cli import render
from landscape.files.results import read_results

from results_files import surface_file

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make setup adds it)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH "
                                                   "(make setup installs Debian's chromium where apt-get works)")]
# Headless chromium has no GPU here: SwiftShader renders WebGL on the CPU.
BROWSER_ARGS = ["--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    done = np.ones((13, 11), bool)
    done[10:, 8:] = False
    path = surface_file(str(tmp_path_factory.mktemp("page") / "s.h5"), n=11, done=done, test=True)
    out = path[:-3] + ".html"
    assert render.main([path, "--html", out]) == 0
    return path, out


class Opened:
    """A page opened from disk, recording console errors, page errors and any request off the disk."""

    def __init__(self, browser, url):
        self.errors, self.fetched = [], []
        self.page = browser.new_page(viewport={"width": 1300, "height": 700})
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.route("**/*", self.only_local)
        self.page.goto(url)
        self.page.wait_for_function("document.querySelector('#surface3d canvas') && "
                                    "document.getElementById('map2d')._fullLayout")
        self.page.wait_for_timeout(500)  # let the WebGL frame land

    def only_local(self, route):
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            self.fetched.append(url)
            route.abort()

    def picture(self, selector="#surface3d"):
        return imread(io.BytesIO(self.page.locator(selector).screenshot()))[..., :3]


@pytest.fixture(scope="module")
def opened(browser, page_file):
    """One page for all tests (loading 5 MB of plotly.js with software WebGL takes seconds)."""
    view = Opened(browser, "file://" + page_file[1])
    yield view
    view.page.close()


def show(opened, label):
    opened.page.select_option("#quantity", label=label)
    wait_until(opened, f"document.getElementById('map2d').layout.title.text === {json.dumps(label)}")
    opened.page.wait_for_timeout(500)


def coloured_share(pixels):
    """Share of pixels that are clearly coloured (not white, grey or black): the drawn surface."""
    return float(((pixels.max(axis=-1) - pixels.min(axis=-1)) > 0.25).mean())


def test_page_loads_from_disk_without_errors_and_draws_the_webgl_surface(opened):
    assert opened.errors == [] and opened.fetched == []
    assert opened.page.evaluate("!!document.querySelector('#surface3d canvas').getContext('webgl2') || "
                                "!!document.querySelector('#surface3d canvas').getContext('webgl')")
    assert coloured_share(opened.picture()) > 0.05  # a blank or grey canvas has none


def test_switching_the_quantity_changes_the_picture(opened):
    show(opened, "train loss")
    before = opened.picture()
    show(opened, "train accuracy (%)")
    after = opened.picture()
    assert np.abs(after - before).mean() > 0.01
    assert opened.errors == []


def test_hover_at_a_grid_point_shows_the_stored_value(opened, page_file):
    show(opened, "train loss")
    r = read_results(page_file[0])
    i, j = 3, 5
    stored = r["train_loss"][j, i]
    box = opened.page.locator("#map2d").bounding_box()
    px, py = opened.page.evaluate(
        "([x, y]) => { const l = document.getElementById('map2d')._fullLayout;"
        " return [l.xaxis._offset + l.xaxis.d2p(x), l.yaxis._offset + l.yaxis.d2p(y)]; }",
        [float(r["xcoordinates"][i]), float(r["ycoordinates"][j])])
    opened.page.mouse.move(box["x"] + px, box["y"] + py)
    label = opened.page.locator("#map2d .hovertext").first
    label.wait_for(timeout=5000)
    text = label.text_content()
    shown = float(text.split("train loss=")[1].split()[0].rstrip("x"))
    assert shown == pytest.approx(stored, rel=1e-5)
    assert f"x={r['xcoordinates'][i]:.4g}" in text


def test_unfinished_points_hover_as_not_computed(opened, page_file):
    values = opened.page.evaluate("window.landscapeView.data.quantities[0].values")
    done = read_results(page_file[0])["surface_done"].astype(bool)
    assert [len(row) for row in values] == [done.shape[1]] * done.shape[0]  # zip below stops at the shorter
    assert not done.all() and all((v is None) == (not d) for row, drow in zip(values, done) for v, d in zip(row, drow))


def wait_until(opened, expression, timeout_s=60):
    """Poll a page expression from here (page-side wait_for_function stalled under heavy load)."""
    deadline = time.monotonic() + timeout_s
    while not opened.page.evaluate(expression):
        assert time.monotonic() < deadline, f"the page never reached: {expression}"
        opened.page.wait_for_timeout(100)


def set_controls(opened, zmax, log):
    """As a user's entries do, with one change event for both (each redraw of the 3D view takes seconds)."""
    opened.page.evaluate("([zmax, log]) => { document.getElementById('zmax').value = zmax;"
                         " const box = document.getElementById('log'); box.checked = log;"
                         " box.dispatchEvent(new Event('change')); }", [zmax, log])


def test_log_switch_and_z_clip_redraw_from_the_stored_values(opened, page_file):
    show(opened, "train loss")
    stored = read_results(page_file[0])["train_loss"]
    j, i = 0, 0  # a corner, far up the wall, above the default clip at the basin's top
    set_controls(opened, "", True)  # no clip, log scale
    wait_until(opened, "document.getElementById('map2d').data[0].colorbar.title.text.startsWith('log10')")
    z = opened.page.evaluate(f"document.getElementById('map2d').data[0].z[{j}][{i}]")
    assert z == pytest.approx(np.log10(stored[j, i]), rel=1e-5)
    set_controls(opened, "1", False)
    wait_until(opened, "document.getElementById('map2d').data[0].z[0][0] === 1")
    heights = np.array(opened.page.evaluate("document.getElementById('surface3d').data[0].z"), dtype=float)
    assert np.nanmax(heights) <= 1.0 and np.isnan(heights[0, 0])  # cut in 3D: no lid over the corner
    assert opened.errors == []


def test_unconverged_hessian_points_are_marked_on_the_map(browser, tmp_path):
    """A 2D Hessian map whose Lanczos runs were cut at 2 steps: the map draws an '×' trace at exactly
    the points eig_converged flags, and the note counts them."""
    import landscape

    from test_api_hessian import features, mlp
    model = mlp()
    path = str(tmp_path / "h.h5")
    landscape.hessian_map(model, features(), directions=landscape.random_directions(model, n=2, seed=3),
                          x=(-1, 1, 3), y=(0, 1, 2), max_iter=2, path=path, progress_secs=1e9)
    r = read_results(path)
    assert render.main([path, "--html", path[:-3] + ".html"]) == 0
    view = Opened(browser, "file://" + path[:-3] + ".html")
    try:
        show(view, "λmin (Hessian)")
        traces = view.page.evaluate("document.getElementById('map2d').data.filter(t => t.marker && "
                                    "t.marker.symbol === 'x').map(t => [t.x, t.y])")
        flagged = [(float(r["xcoordinates"][i]), float(r["ycoordinates"][j]))
                   for j, i in np.argwhere(~r["eig_converged"])]
        assert len(traces) == 1 and sorted(zip(*traces[0])) == sorted(flagged) and len(flagged) == 6
        assert "6 of 6 points did not converge" in view.page.text_content("#note")
        assert view.errors == []
    finally:
        view.page.close()


def test_the_page_opens_on_the_surf_name_and_a_reload_keeps_the_readers_choice(browser, page_file, tmp_path):
    out = str(tmp_path / "acc.html")
    assert render.main([page_file[0], "--html", out, "--surf_name", "test_acc"]) == 0
    for url, label in (("file://" + out, "test accuracy (%)"), ("file://" + out + "#q=train_loss", "train loss")):
        view = Opened(browser, url)
        try:
            assert view.page.evaluate("document.getElementById('map2d').layout.title.text") == label
            assert view.errors == []
        finally:
            view.page.close()
