"""What a re-plot may change (render.py draws with it); apart, so the drivers read their flags into it
without importing matplotlib until they plot."""
from dataclasses import dataclass


@dataclass
class RenderOptions:
    """What a re-plot may change; bounds are in the quantity's units, also with log."""
    surf_name: str = None     # the map drawn (quantities.chosen); None: the file's first, train_loss if any
    vmin: float = None
    vmax: float = None
    vlevel: float = None
    zlim: float = None        # top of the 3D surface (plot_2D.py's --zlim, h52vtp.py's --zmax)
    log: bool = False
    loss_max: float = None    # top of the 1D loss axis (plot_1D.py's --loss_max)
    acc_max: float = None     # top of the 1D accuracy axis
    eig_vmax: float = None    # top of the |λmin/λmax| colours (default 0.5, the paper's)
    proj_file: str = None     # projected optimizer path drawn on the HTML page
