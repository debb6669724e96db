"""plot_surface.py whose process sends itself SIGTERM as its first plot file is about to be written
(a stop that comes while --plot draws): `python tests/stop_in_plots.py DRIVER_FLAGS...`."""
import os
import signal
import sys

from landscape.job.stops import install_stop_signals

if __name__ == "__main__":
    install_stop_signals()
    from landscape.files import atomic
    write = atomic.atomic_write

    def stopped_while_plotting(path, *args, **kwargs):
        if path.endswith((".png", ".pdf", ".html")):
            os.kill(os.getpid(), signal.SIGTERM)
        return write(path, *args, **kwargs)
    atomic.atomic_write = stopped_while_plotting
    from landscape.cli.surface import main
    sys.exit(main())
