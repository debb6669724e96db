"""Errors a user can cause. The drivers print them as one clear line and exit with EXIT_BAD_INPUT."""


class LandscapeError(Exception):
    """Base class: bad input or a refused operation, never a bug."""


class GridSpecError(LandscapeError):
    pass


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


class SurfaceFileError(LandscapeError):
    """A results file that is corrupt, locked, or was made with other settings."""
