"""'package.module:attribute' specs (custom models, data factories, losses) resolved to Python objects."""
import importlib
import os
import sys


def import_callable(spec, error, what, form="function"):
    """The callable named by 'package.module:attr[.attr]'; `error(message)` names what went wrong.
    The current directory is importable, as it is for `python script.py`."""
    module_name, _, attr_path = str(spec).partition(":")
    if not module_name or not attr_path:
        raise error(f"{what} {spec!r} must look like 'package.module:{form}'")
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        target = importlib.import_module(module_name)
    except Exception as err:  # any failure inside the user's module is an import failure to report
        raise error(f"{what} {spec!r}: cannot import module {module_name!r} ({type(err).__name__}: {err}); "
                    f"is it on PYTHONPATH?") from err
    finally:
        if added:
            sys.path.remove(os.getcwd())
    for attr in attr_path.split("."):
        if not hasattr(target, attr):
            raise error(f"{what} {spec!r}: module {module_name!r} has no attribute {attr_path!r}")
        target = getattr(target, attr)
    if not callable(target):
        raise error(f"{what} {spec!r}: {attr_path!r} is a {type(target).__name__}, not callable")
    return target
