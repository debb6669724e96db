"""'package.module:attribute' specs (custom models, data factories, losses) resolved to Python objects."""
import contextlib
import importlib
import importlib.util
import os
import sys


def import_callable(spec, error, what, form="function"):
    """The callable named by 'package.module:attr[.attr]'; `error(message)` names what went wrong.
    The current directory is importable, as it is for `python script.py`."""
    module_name, _, attr_path = str(spec).partition(":")
    if not module_name or not attr_path:
        raise error(f"{what} {spec!r} must look like 'package.module:{form}'")
    try:
        with _cwd_importable():
            target = importlib.import_module(module_name)
    except Exception as err:  # any failure inside the user's module is an import failure to report
        raise error(f"{what} {spec!r}: cannot import module {module_name!r} ({type(err).__name__}: {err}); "
                    f"is it on PYTHONPATH?") from err
    for attr in attr_path.split("."):
        if not hasattr(target, attr):
            raise error(f"{what} {spec!r}: module {module_name!r} has no attribute {attr_path!r}")
        target = getattr(target, attr)
    if not callable(target):
        raise error(f"{what} {spec!r}: {attr_path!r} is a {type(target).__name__}, not callable")
    return target


def spec_files(specs):
    """(flag, source file) of each ('--flag', 'module:attr') spec given: inputs a run must not write over."""
    return [(flag, module_file(spec)) for flag, spec in specs if spec and ":" in str(spec)]


def module_file(spec):
    """The source file of the module a 'module:attr' spec names (an input the run must not write over),
    or None where there is none to find (no such module, a built-in one, a namespace package)."""
    module_name = str(spec).partition(":")[0]
    try:
        with _cwd_importable():
            found = importlib.util.find_spec(module_name)
    except Exception:  # a parent package that fails to import: import_callable reports it later
        return None
    return found.origin if found is not None and found.has_location else None


@contextlib.contextmanager
def _cwd_importable():
    """The current directory is importable meanwhile, as it is for `python script.py`."""
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        yield
    finally:
        if added:
            sys.path.remove(os.getcwd())
