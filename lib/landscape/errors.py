"""Every error a user can cause, as one family: the drivers print one as a single clear line and exit 2.

A LandscapeError is bad input or a refused operation, never a bug; each subclass names what was wrong.
"""


class LandscapeError(Exception):
    """Base class: bad input or a refused operation, never a bug."""


class GridSpecError(LandscapeError):
    """A grid (x, y, --x/--y, refinement) that cannot be made or drawn."""


class ModelError(LandscapeError):
    pass


class CheckpointError(LandscapeError):
    pass


class DirectionError(LandscapeError):
    pass


class DataError(LandscapeError):
    pass


class LossError(LandscapeError):
    """A user's loss function that is not callable or does not return one number per batch."""


class CurvatureError(LandscapeError):
    """Curvature choices (tol, max_iter, trace, density, layers, parameters, HVP method) out of range."""


class UnreachableTargetError(CurvatureError):
    """PAC-Bayes flatness: no noise scale moves the loss or accuracy by the target (e.g. an accuracy at
    chance cannot drop by ten points). The measure is undefined at that model, not mistaken."""


class SurfaceFileError(LandscapeError):
    """A results file that is corrupt, locked, or was made with other settings."""


class DeviceError(LandscapeError):
    """A device or launch setup that would break or silently spoil a run."""


class PlotOptionError(LandscapeError, ValueError):
    """A plotting option or array that cannot make a figure (bad levels, shapes, formats)."""


class PlotWriteError(LandscapeError):
    """A plot, page or export file that cannot be written (full disk, read-only or missing folder);
    nothing partial is left and an existing file of that name is kept."""


class WatchedJobGone(LandscapeError):
    """The job a live view watches is gone (no writer holds the file's lock) with its grid unfinished."""


class ExportError(LandscapeError):
    """A ParaView export that cannot be written as asked."""


class PathClashError(LandscapeError):
    """An output path that names one of the run's inputs (or another output), however it is spelled."""


class ResultsMovedError(SurfaceFileError):
    """The results file cannot be found after its run: its folder was moved or removed meanwhile. The
    run's points are in the file wherever it went; the drivers exit 3, as after any work."""


class PointError(LandscapeError):
    """The user's model or loss failed at a grid point, after the checks before the work had passed."""


class ChoiceError(LandscapeError, ValueError):
    """A mode that is not one of its choices (a device, a precision, a norm, a loss name, an HVP method)."""


class AlignmentError(LandscapeError):
    """Two models whose hidden units cannot be matched: a layer that depends on their order in a way align
    does not know (attention, layer norm, concatenation, a reshape), weight sharing, an untraceable
    forward, or two models that are not the same architecture."""
