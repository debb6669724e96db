"""plot_surface.py --eig_directions [CURVATURE] and --eig_samples: read into an EigenFlags, refused beside
the flags that shape random or target directions (they would do nothing), and checked against an existing
direction file.

Why a flag of its own, not --dir_type eig: --dir_type says which entries a direction covers (weights or
states), and eigen directions cover the weights; nor --xdir/--ydir: the two eigenvectors come from one
Lanczos run, so they are chosen together. --params, plot_surface.py's group of parameters, keeps its
meaning: eigen directions are zero outside it, where the Hessian is not taken.
"""
from dataclasses import dataclass

from ..errors import DirectionError

# what shapes random or target directions: an eigen direction has no norm, ignore or target
NOT_FOR_EIGEN = ("xnorm", "ynorm", "xignore", "yignore", "same_dir", "model_file2", "model_file3")


@dataclass(frozen=True)
class EigenFlags:
    curvature: str        # --eig_directions CURVATURE (alone: hessian)
    samples: int          # --eig_samples N; None: every training sample ('all')
    samples_given: bool   # typed, so checked against an existing file

    @property
    def recorded_samples(self):
        """The samples as the direction file records them (eigen_directions' attrs)."""
        return "all" if self.samples is None else self.samples


def eigen_flags(args):
    """The eigen-direction flags as an EigenFlags, or None without --eig_directions (where --eig_samples is
    refused: it would do nothing); flags that only random or target directions take are refused beside it."""
    given = getattr(args, "given", frozenset())
    curvature = getattr(args, "eig_directions", None)
    if curvature is None:
        if "eig_samples" in given:
            raise DirectionError("--eig_samples chooses the samples of --eig_directions' Hessian; give "
                                 "--eig_directions too, or drop --eig_samples")
        return None
    extra = [f"--{flag}" for flag in NOT_FOR_EIGEN if getattr(args, flag) not in (None, False)]
    if args.dir_type != "weights":
        extra.append(f"--dir_type {args.dir_type}")
    if extra:
        raise DirectionError(f"--eig_directions draws unit eigenvectors of the Hessian over the weights, which "
                             f"take no {', '.join(extra)}; drop {'it' if len(extra) == 1 else 'them'}")
    return EigenFlags(curvature, args.eig_samples, "eig_samples" in given)


def eigen_mismatches(eig, attrs):
    """What --eig_directions and --eig_samples say that an existing direction file (its attrs) does not."""
    if eig is None:
        return []
    if attrs.get("directions") != "eig":
        return ["--eig_directions (the file holds other directions)"]
    differ = []
    if attrs.get("curvature") != eig.curvature:
        differ.append(f"--eig_directions {eig.curvature} (the file has {attrs.get('curvature')})")
    if eig.samples_given and attrs.get("samples") != eig.recorded_samples:
        differ.append(f"--eig_samples {eig.recorded_samples} (the file has {attrs.get('samples')})")
    return differ
