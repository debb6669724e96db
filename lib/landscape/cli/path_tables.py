"""What python -m landscape.connect prints of paths (LossPaths): a path's points and barriers, and the
barriers of two paths side by side (the line and a curve, the line before and after alignment)."""
import math

QUANTITIES = ("train_loss", "train_acc", "test_loss", "test_acc")


def table(path, prefix="line"):
    """The points, one line each, then the barriers of every quantity (a rise of loss, a drop of accuracy)."""
    names = _names(path)
    lines = [f"[{prefix}] {'t':>8} " + " ".join(f"{name:>12}" for name in names)]
    for i, t in enumerate(path.t):
        lines.append(f"[{prefix}] {t:8.4f} " + " ".join(_number(getattr(path, name)[i]) for name in names))
    for kind in ("linear", "mean"):
        lines.append(f"[{prefix}] barrier ({kind}): " + ", ".join(f"{name} {path.barrier(name, kind):.6g}"
                                                                  for name in names))
    bn = f"re-estimated from {path.bn_batches} batch(es)" if path.bn_batches else \
        "interpolated" if path.bn == "keep" else "none in the model"
    lines.append(f"[{prefix}] BatchNorm statistics: {bn}")
    return "\n".join(lines)


def comparison(prefix, first, second):
    """The barriers of two (label, path), quantity by quantity and kind by kind, in two columns, and the
    highest train loss along each."""
    (label_1, path_1), (label_2, path_2) = first, second
    lines = [f"[{prefix}] {'barrier':<22} {label_1:>12} {label_2:>16}"]
    for name in _names(path_1):
        for kind in ("linear", "mean"):
            lines.append(f"[{prefix}] {name + ' (' + kind + ')':<22} {path_1.barrier(name, kind):12.6g} "
                         f"{path_2.barrier(name, kind):16.6g}")
    lines.append(f"[{prefix}] max train_loss along: {label_1} {path_1.train_loss.max():.6g}, "
                 f"{label_2} {path_2.train_loss.max():.6g}")
    return "\n".join(lines)


def _names(path):
    return [name for name in QUANTITIES if getattr(path, name) is not None]


def _number(value):
    return f"{value:12.6g}" if math.isfinite(value) else f"{value!s:>12}"
