"""ParaView export of a results file: a VTK XML structured grid (.vts) or polydata (.vtp).

Replaces the reference's h52vtp.py. Points sit at (x, y, value of the chosen quantity); every map
of the file is a point array named after its dataset (the derived one: eig_ratio). Options as
h52vtp.py's: zmax clips the height (not the arrays), log puts log10(value) in the height, and an
interpolation factor k refines the grid k-fold along each axis (linear, so a gap stays a gap).

Unfinished points are NaN in the arrays. In a .vts they are hidden through VTK's vtkGhostType
(HIDDENPOINT); a .vtp simply has no point and no cell for them.
"""
import base64
import os

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from ..errors import ExportError
from .output import write_text
from .quantities import chosen, quantities

HIDDEN_POINT = 2  # vtkDataSetAttributes::HIDDENPOINT
FORMATS = (".vts", ".vtp")


def refine(x, y, maps, factor):
    """x, y and each (ny, nx) map on a grid `factor` times finer (linear interpolation; NaN spreads)."""
    if factor == 1:
        return x, y, maps
    fine_x = np.linspace(x[0], x[-1], (len(x) - 1) * factor + 1)
    fine_y = np.linspace(y[0], y[-1], (len(y) - 1) * factor + 1)
    yy, xx = np.meshgrid(fine_y, fine_x, indexing="ij")
    at = np.column_stack([yy.ravel(), xx.ravel()])
    return fine_x, fine_y, {name: on_finer_grid(x, y, v, at, factor) for name, v in maps.items()}


def on_finer_grid(x, y, values, at, factor):
    fine = RegularGridInterpolator((y, x), values)(at).reshape((len(y) - 1) * factor + 1, -1)
    fine[::factor, ::factor] = values  # the grid's own points exactly, also those beside a gap (0 * NaN = NaN)
    return fine


def heights(values, zmax=None, log=False):
    """The z coordinate: log10 of the value (NaN where <= 0) with log, clipped at zmax (in value units)."""
    z = np.array(values, dtype=float)
    if zmax is not None:
        z = np.minimum(z, zmax)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(z > 0, np.log10(z), np.nan)
    return z


NUMPY_TYPES = {"Float64": "<f8", "Int64": "<i8", "UInt8": "u1"}


def data_array(name, values, components=1, vtk_type="Float64"):
    """An inline binary DataArray: base64 of a UInt64 byte count and the little-endian values.
    Binary because VTK's ASCII parser cannot read NaN, and it is exact and smaller."""
    raw = np.ascontiguousarray(np.ravel(values), dtype=NUMPY_TYPES[vtk_type]).tobytes()
    text = base64.b64encode(np.uint64(len(raw)).astype("<u8").tobytes() + raw).decode("ascii")
    name_attr = f' Name="{name}"' if name else ""
    return (f'<DataArray type="{vtk_type}"{name_attr} NumberOfComponents="{components}" format="binary">'
            f"{text}</DataArray>\n")


def file_start(kind):
    return (f'<?xml version="1.0"?>\n<VTKFile type="{kind}" version="1.0" byte_order="LittleEndian" '
            'header_type="UInt64">\n')


def vts_text(x, y, z, arrays):
    """StructuredGrid XML; point order is x fastest, as the (ny, nx) arrays are stored."""
    xx, yy = np.meshgrid(x, y)
    hidden = np.where(np.isfinite(z), 0, HIDDEN_POINT).astype(np.uint8)
    extent = f"0 {len(x) - 1} 0 {len(y) - 1} 0 0"
    point_data = "".join(data_array(name, v) for name, v in arrays.items())
    point_data += data_array("vtkGhostType", hidden, vtk_type="UInt8")
    points = np.column_stack([xx.ravel(), yy.ravel(), z.ravel()])
    return (file_start("StructuredGrid") +
            f'<StructuredGrid WholeExtent="{extent}">\n<Piece Extent="{extent}">\n'
            f"<PointData>\n{point_data}</PointData>\n<Points>\n{data_array(None, points, 3)}</Points>\n"
            "</Piece>\n</StructuredGrid>\n</VTKFile>\n")


def vtp_text(x, y, z, arrays):
    """PolyData XML: one point per finite height, one quad per grid cell whose four corners exist."""
    xx, yy = np.meshgrid(x, y)
    keep = np.isfinite(z)
    index = np.full(z.shape, -1)
    index[keep] = np.arange(int(keep.sum()))
    corners = np.stack([index[:-1, :-1], index[:-1, 1:], index[1:, 1:], index[1:, :-1]], axis=-1).reshape(-1, 4)
    quads = corners[(corners >= 0).all(axis=1)]
    points = np.column_stack([xx[keep], yy[keep], z[keep]])
    point_data = "".join(data_array(name, v[keep]) for name, v in arrays.items())
    offsets = 4 * np.arange(1, len(quads) + 1)
    return (file_start("PolyData") +
            f'<PolyData>\n<Piece NumberOfPoints="{len(points)}" NumberOfPolys="{len(quads)}">\n'
            f"<PointData>\n{point_data}</PointData>\n<Points>\n{data_array(None, points, 3)}</Points>\n"
            f'<Polys>\n{data_array("connectivity", quads, vtk_type="Int64")}'
            f'{data_array("offsets", offsets, vtk_type="Int64")}</Polys>\n'
            "</Piece>\n</PolyData>\n</VTKFile>\n")


def export_vtk(results, out, surf_name=None, zmax=None, log=False, factor=1):
    """Write read_results' dict to `out` (.vts or .vtp by its suffix); returns out. The height is the map
    surf_name (quantities.chosen: None is the file's first map, train_loss where there is one)."""
    suffix = os.path.splitext(out)[1].lower()
    if suffix not in FORMATS:
        raise ExportError(f"{out}: the VTK file must end in .vts (structured grid) or .vtp (polydata)")
    grid = results["grid"]
    if not grid.is_2d:
        raise ExportError("a VTK surface needs a 2D grid; this file holds a 1D one (plot it with --html)")
    if not (isinstance(factor, int) and factor >= 1):
        raise ExportError(f"the interpolation factor must be an integer >= 1, got {factor}")
    height = chosen(results, surf_name).name
    maps = {q.name: q.values for q in quantities(results)}
    x, y, maps = refine(grid.x, grid.y, maps, factor)
    z = heights(maps[height], zmax, log)
    return write_text(out, (vts_text if suffix == ".vts" else vtp_text)(x, y, z, maps), encoding="ascii")
