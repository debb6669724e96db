"""ParaView export: files read back with VTK's own XML readers hold the points and arrays of the file."""
import numpy as np
import pytest

from landscape.cli import render
from landscape.files.results import read_results

from results_files import surface_file

vtk_xml = pytest.importorskip("vtkmodules.vtkIOXML", reason="the vtk package is not installed (make setup adds it)")
from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: E402


def read_back(path):
    reader = vtk_xml.vtkXMLStructuredGridReader() if path.endswith(".vts") else vtk_xml.vtkXMLPolyDataReader()
    reader.SetFileName(path)
    reader.Update()
    data = reader.GetOutput()
    points = vtk_to_numpy(data.GetPoints().GetData())
    pd = data.GetPointData()
    arrays = {pd.GetArrayName(i): vtk_to_numpy(pd.GetArray(i)) for i in range(pd.GetNumberOfArrays())}
    return data, points, arrays


@pytest.fixture
def partial(tmp_path):
    done = np.ones((7, 5), bool)
    done[5:, 3:] = False
    return surface_file(str(tmp_path / "s.h5"), n=5, done=done, test=True), done


def test_structured_grid_points_sit_at_x_y_value_with_every_map_as_an_array(partial, tmp_path):
    path, done = partial
    out = str(tmp_path / "s.vts")
    assert render.main([path, "--vtk", out]) == 0
    data, points, arrays = read_back(out)
    r = read_results(path)
    xx, yy = np.meshgrid(r["xcoordinates"], r["ycoordinates"])
    assert data.GetExtent() == (0, 4, 0, 6, 0, 0)
    np.testing.assert_array_equal(points[:, 0], xx.ravel())
    np.testing.assert_array_equal(points[:, 1], yy.ravel())
    finished = done.ravel()
    np.testing.assert_array_equal(points[finished, 2], r["train_loss"].ravel()[finished])
    for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
        np.testing.assert_array_equal(arrays[name][finished], r[name].ravel()[finished])
        assert np.isnan(arrays[name][~finished]).all()
    np.testing.assert_array_equal(arrays["vtkGhostType"] != 0, ~finished)  # unfinished points hidden


def test_polydata_has_points_and_quads_only_where_finished(partial, tmp_path):
    path, done = partial
    out = str(tmp_path / "s.vtp")
    assert render.main([path, "--vtk", out, "--surf_name", "test_acc"]) == 0
    data, points, arrays = read_back(out)
    r = read_results(path)
    assert len(points) == done.sum()
    np.testing.assert_array_equal(points[:, 2], r["test_acc"][done])
    np.testing.assert_array_equal(arrays["train_loss"], r["train_loss"][done])
    complete = done[:-1, :-1] & done[:-1, 1:] & done[1:, 1:] & done[1:, :-1]
    assert data.GetNumberOfPolys() == complete.sum()


def test_zmax_log_and_interpolation_factor_as_h52vtp(partial, tmp_path):
    path, done = partial
    out = str(tmp_path / "s.vts")
    assert render.main([path, "--vtk", out, "--zmax", "2.0", "--log", "--interp", "2"]) == 0
    data, points, arrays = read_back(out)
    r = read_results(path)
    assert data.GetExtent() == (0, 8, 0, 12, 0, 0)
    nodes = arrays["train_loss"].reshape(13, 9)[::2, ::2]  # the original points sit on every other one
    np.testing.assert_allclose(nodes[done], r["train_loss"][done])
    heights = points[:, 2].reshape(13, 9)[::2, ::2]
    np.testing.assert_allclose(heights[done], np.log10(np.minimum(r["train_loss"][done], 2.0)))
    between = arrays["train_loss"].reshape(13, 9)[0, 1]  # halfway between two grid points: their mean
    assert between == pytest.approx(r["train_loss"][0, :2].mean())
