"""Each driver's own parser: a flag that would do nothing there is refused (argparse, exit 2); the
library's render functions take RenderOptions only, and cli/render.py converts the drivers' flags."""
import argparse

import pytest

import landscape
from landscape.cli import hessian, surface, train, trajectory
from landscape.cli.render import render_options
from landscape.errors import GridSpecError
from landscape.plot.options import RenderOptions
from landscape.plot.render import render_hessian, render_page, render_surface

TRAJECTORY = ["--model_folder", "unused"]


def refused(parse, flags, capsys):
    """The argparse refusal of `flags`: exit 2 naming them as unrecognized arguments."""
    with pytest.raises(SystemExit) as stop:
        parse(flags)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "unrecognized arguments: " + " ".join(flags) in err, err


@pytest.mark.parametrize("flags", [["--batch_size", "64"], ["--precision", "fp32"], ["--precision", "bf16"],
                                   ["--vmin", "0.1"], ["--vlevel", "0.5"], ["--log"], ["--test"],
                                   ["--proj_file", "p.h5"], ["--refine", "0.1"], ["--eig_vmax", "0.5"]])
def test_hessian_driver_refuses_flags_it_never_reads(flags, capsys):
    refused(hessian.parser().parse_args, flags, capsys)


@pytest.mark.parametrize("flags", [["--hessian_batch", "20"], ["--tol", "1e-3"], ["--trace"],
                                   ["--hessian_samples", "all"], ["--eig_vmax", "0.5"], ["--zlim", "3"]])
def test_surface_driver_refuses_flags_it_never_reads(flags, capsys):
    refused(surface.parser().parse_args, flags, capsys)


@pytest.mark.parametrize("flags", [["--vmax", "2"], ["--log"], ["--grid_points", "5"], ["--x=-1:1:5"],
                                   ["--batch_size", "8"]])
def test_trajectory_refuses_surface_flags_without_surface(flags, capsys):
    with pytest.raises(SystemExit) as stop:
        trajectory.main(TRAJECTORY + flags)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "unrecognized arguments: " in err and "need --surface" in err, err


@pytest.mark.parametrize("flags", [["--precision", "fp32"], ["--plot"], ["--x=-1:1:5"], ["--hessian_batch", "8"]])
def test_trainer_refuses_grid_flags(flags, capsys):
    refused(train.parse_args, flags, capsys)


def test_the_flags_each_driver_reads_are_still_accepted():
    args = hessian.parser().parse_args(["--vmax", "0.3", "--plot", "--mpi", "--cuda", "--hessian_batch", "8"])
    assert (args.vmax, args.plot, args.hessian_batch) == (0.3, True, 8)
    args = surface.parser().parse_args(["--batch_size", "16", "--precision", "bf16", "--vmin", "0.1", "--log"])
    assert (args.batch_size, args.precision, args.vmin, args.log) == (16, "bf16", 0.1, True)


def test_surface_flags_become_the_same_render_options_as_before():
    args = surface.parser().parse_args(["--vmin", "0.1", "--vmax", "5", "--vlevel", "0.5", "--log",
                                        "--proj_file", "p.h5"])
    assert render_options(args) == RenderOptions(vmin=0.1, vmax=5.0, vlevel=0.5, log=True, proj_file="p.h5")
    assert render_options(surface.parser().parse_args([])) == RenderOptions()


def test_hessian_vmax_becomes_the_ratio_colour_top():
    assert render_options(hessian.parser().parse_args(["--vmax", "0.3"]), vmax_is_ratio=True) == \
        RenderOptions(eig_vmax=0.3)
    assert render_options(hessian.parser().parse_args([]), vmax_is_ratio=True) == RenderOptions()


@pytest.mark.parametrize("render", [render_surface, render_hessian, render_page])
def test_render_functions_refuse_parsed_flags(render):
    with pytest.raises(TypeError, match="RenderOptions"):
        render("unused.h5", argparse.Namespace(vmin=None, vmax=None, vlevel=None, log=False))


@pytest.mark.parametrize("flags, named", [(["--refine_on", "train_acc"], "--refine_on"),
                                          (["--refine_budget", "5"], "--refine_budget")])
def test_refine_flags_without_refine_are_refused(flags, named):
    args = surface.parser().parse_args(flags)
    with pytest.raises(GridSpecError, match=f"{named} needs --refine TOL"):
        surface.refine_of(args)


def test_refine_flags_become_the_apis_refine():
    args = surface.parser().parse_args(["--refine", "0.1", "--refine_budget", "40"])
    assert surface.refine_of(args) == landscape.Refine(0.1, None, 40)  # on=None: the first quantity, train_loss


@pytest.mark.parametrize("flags", [["--momentum", "0.5"], ["--no-nesterov"]])
def test_trainer_refuses_sgd_flags_with_adam(flags, capsys):
    with pytest.raises(SystemExit) as stop:
        train.parse_args(["--optimizer", "adam", *flags])
    assert stop.value.code == 2 and "apply to --optimizer sgd only" in capsys.readouterr().err
    assert train.parse_args(["--optimizer", "sgd", *flags]).optimizer == "sgd"


def test_no_module_outside_cli_takes_parsed_flags():
    """The issue's check: argparse and its Namespace stay in lib/landscape/cli/ (the library takes explicit values)."""
    import os
    import re
    root = os.path.dirname(landscape.__file__)
    found = []
    for folder, _, files in os.walk(root):
        if os.path.relpath(folder, root).split(os.sep)[0] == "cli":
            continue
        for name in files:
            if name.endswith(".py"):
                text = open(os.path.join(folder, name)).read()
                found += [f"{name}: {m}" for m in re.findall(r"argparse|Namespace|\bargs\.\w+", text)]
    assert not found, found
