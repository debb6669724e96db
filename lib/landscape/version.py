"""The version of landscape, recorded in every file it writes (a leaf: low modules import it, not the package)."""
__version__ = "0.1.0"
