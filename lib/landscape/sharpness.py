"""`python -m landscape.sharpness`: the sharpness table's command line (it lives in landscape/cli/sharpness.py).

`landscape.sharpness` is also the API function. Importing this module by name (`import landscape.sharpness`)
binds the module over the function on the package, so the module is made callable as that function:
`landscape.sharpness(model, data, rho=...)` works whichever of the two the name holds.
"""
import sys
import types

from .cli.sharpness import main


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from .api import sharpness
        return sharpness(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
