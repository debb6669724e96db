"""The interactive page, without a browser: self-contained, every map in it, gaps as null, small enough."""
import json
import os
import re

import numpy as np
import pytest

from landscape.cli import render

from results_files import surface_file, write_results

pytest.importorskip("plotly", reason="plotly is not installed (make setup adds it)")


def page_data(path):
    text = open(path, encoding="utf-8").read()
    data = re.search(r'<script id="landscape-data" type="application/json">(.*?)</script>', text, re.S).group(1)
    return text, json.loads(data.replace("<\\/", "</"))


def with_hessian(path, n, m):
    x, y = np.linspace(-1, 1, n), np.linspace(-1, 1, m)
    xx, yy = np.meshgrid(x, y)
    return write_results(path, x, y, {"max_eig": 10 + 50 * (xx ** 2 + yy ** 2), "min_eig": -0.5 * xx - 0.1},
                         kind="hessian")


def test_page_is_self_contained_with_every_map_and_gaps_as_null(tmp_path, capsys):
    done = np.ones((7, 5), bool)
    done[0, 0] = False
    path = with_hessian(surface_file(str(tmp_path / "s.h5"), n=5, done=done, test=True), 5, 7)
    out = str(tmp_path / "page.html")
    assert render.main([path, "--html", out]) == 0
    assert capsys.readouterr().out.split() == [out]  # no PNGs with --html alone
    text, data = page_data(out)
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"(?!data:)", text)  # nothing fetched from anywhere
    inline = re.findall(r"<script>(.*?)</script>", text, re.S)  # ...and what it draws with is carried inline
    assert any(re.match(r"\s*/\*\*?\s*\*?\s*plotly\.js v\d+\.\d+", script) for script in inline)
    names = [q["name"] for q in data["quantities"]]
    assert names == ["train_loss", "test_loss", "train_acc", "test_acc", "min_eig", "max_eig", "eig_ratio"]
    loss = data["quantities"][0]["values"]
    assert loss[0][0] is None and loss[0][1] is not None
    assert data["x"] == pytest.approx(list(np.linspace(-1, 1, 5)))
    assert "1 of 35 points not drawn" in data["quantities"][0]["note"]


def test_a_101_by_101_page_stays_under_6_mb(tmp_path):
    path = with_hessian(surface_file(str(tmp_path / "big.h5"), n=101, test=True), 101, 103)
    out = str(tmp_path / "big.html")
    assert render.main([path, "--html", out]) == 0
    assert os.path.getsize(out) < 6e6


def test_1d_page_holds_the_curves(tmp_path):
    x = np.linspace(-1, 1, 11)
    path = write_results(str(tmp_path / "one.h5"), x, None, {"train_loss": 1 + x ** 2, "train_acc": 50 - x})
    out = str(tmp_path / "one.html")
    assert render.main([path, "--html", out]) == 0
    _, data = page_data(out)
    assert data["y"] is None and data["quantities"][0]["values"] == pytest.approx(list(1 + x ** 2))
