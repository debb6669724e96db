"""PCA of an optimization path and projection of checkpoints onto a plane (pure math, no files).

The trajectory plot of Li et al. (2018, Sec. 7) stacks the checkpoints' differences from the
final model as the rows of an (n, P) matrix, n checkpoints by P parameters, and takes its first
two principal directions. P is the size of a network (up to ~1e8) while n is small (tens to a few
hundred), so the directions come from the n x n Gram matrix of the centred rows, never from a
P x P covariance or an SVD over P columns:

    Xc = X - mean(X, rows);  G = Xc Xc^T = U diag(s^2) U^T;  component_i = U[:, i]^T Xc / s_i

Memory, with b the bytes per element of the caller's matrix (4 for float32) and C = CHUNK_BYTES:
    caller's matrix            n * P * b       (read, never copied whole)
    components returned        k * P * 8       (float64)
    working column block       2 * C           (the block in float64 and its product)
    Gram matrix + eigh         ~ 3 * n^2 * 8
so the peak beyond the input is about 8*k*P + 2*C + 24*n^2 bytes; e.g. n = 300 checkpoints of
ResNet-56 (P = 855,770) in float32: 1.03 GB input + 13.7 MB components + 64 MB blocks + 2.2 MB.

Conventions follow sklearn.decomposition.PCA (which the reference code used), so the numbers
written to direction files mean the same: rows are centred, explained_variance = s^2/(n-1),
explained_variance_ratio = explained_variance / (sum over ALL components). Sign rule: each
component is flipped so that its entry of largest magnitude is positive (the first such entry on
ties), which is sklearn's current `svd_flip(u_based_decision=False)` rule.

All arithmetic that matters is float64: the reference's projection crashes on current PyTorch
because it mixes float and double in torch.dot, and float32 dot products over ~1e6 terms lose
digits the plots can show.
"""

from typing import NamedTuple, Sequence, Tuple, Union

import numpy as np
import torch

CHUNK_BYTES = 32 * 2**20  # float64 working block; bounds the extra memory independently of P
DEGENERATE_EIGENVALUE_RATIO = 1e-10  # well above float64 eigh round-off (~1e-16 * n)

ArrayLike = Union[torch.Tensor, np.ndarray]
PROJECTION_METHODS = ("cos", "lstsq")


class PCAResult(NamedTuple):
    components: torch.Tensor  # (k, P) float64, unit-norm rows, orthogonal
    explained_variance_ratio: torch.Tensor  # (k,) float64
    singular_values: torch.Tensor  # (k,) float64, of the centred matrix
    explained_variance: torch.Tensor  # (k,) float64


def _as_2d_tensor(matrix: ArrayLike) -> torch.Tensor:
    matrix = torch.as_tensor(matrix)  # no copy for numpy arrays or tensors
    if matrix.dim() != 2:
        raise ValueError(f"PCA needs a 2-D matrix (checkpoints x parameters); got shape {tuple(matrix.shape)}")
    return matrix


def _column_blocks(num_rows: int, num_cols: int):
    width = max(1, CHUNK_BYTES // (8 * max(num_rows, 1)))
    for start in range(0, num_cols, width):
        yield slice(start, min(start + width, num_cols))


def _centred_block(matrix: torch.Tensor, cols: slice) -> torch.Tensor:
    block = matrix[:, cols].to(torch.float64)
    return block - block.mean(dim=0, keepdim=True)


def _fix_signs(components: torch.Tensor) -> torch.Tensor:
    largest = components.abs().argmax(dim=1)
    signs = torch.sign(components.gather(1, largest[:, None]))
    signs[signs == 0] = 1.0
    return components * signs


def pca_directions(matrix: ArrayLike, k: int = 2) -> PCAResult:
    """First k principal directions of the rows of `matrix` (n checkpoints x P parameters).

    Centres the rows as sklearn's PCA does and returns float64 tensors on the matrix's device.
    Raises ValueError when there are fewer than k+1 rows (centred rows span at most n-1
    dimensions) or when the path has fewer than k directions with non-zero variance.
    """
    matrix = _as_2d_tensor(matrix)
    num_rows, num_cols = matrix.shape
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    if num_rows < k + 1:
        raise ValueError(
            f"PCA of a trajectory needs at least k+1 = {k + 1} checkpoints for {k} directions; got {num_rows}. "
            "Save checkpoints more often (--save_epoch) or train longer."
        )
    if num_cols < k:
        raise ValueError(f"PCA needs at least k = {k} parameters; got {num_cols}")

    gram = torch.zeros(num_rows, num_rows, dtype=torch.float64, device=matrix.device)
    for cols in _column_blocks(num_rows, num_cols):
        block = _centred_block(matrix, cols)
        gram += block @ block.T

    eigenvalues, eigenvectors = torch.linalg.eigh(gram)  # ascending
    eigenvalues = eigenvalues.flip(0).clamp(min=0.0)  # round-off can leave tiny negatives
    eigenvectors = eigenvectors.flip(1)

    # eigh's absolute error is ~eps * largest eigenvalue, so smaller eigenvalues are noise and
    # their "directions" would be arbitrary vectors.
    if not eigenvalues[k - 1] > DEGENERATE_EIGENVALUE_RATIO * eigenvalues[0]:
        raise ValueError(
            f"the trajectory spans fewer than {k} directions (squared singular values "
            f"{eigenvalues[:k].tolist()}); the checkpoints are identical or lie on a line, "
            "so PCA directions are undefined"
        )
    singular_values = eigenvalues[:k].sqrt()

    components = torch.empty(k, num_cols, dtype=torch.float64, device=matrix.device)
    left = eigenvectors[:, :k] / singular_values  # (n, k)
    for cols in _column_blocks(num_rows, num_cols):
        components[:, cols] = left.T @ _centred_block(matrix, cols)
    # Renormalise: V = u^T Xc / s is unit-norm only up to the eigh round-off.
    components = _fix_signs(components / components.norm(dim=1, keepdim=True))

    explained_variance = eigenvalues[:k] / (num_rows - 1)
    total_variance = eigenvalues.sum() / (num_rows - 1)
    return PCAResult(
        components=components,
        explained_variance_ratio=explained_variance / total_variance,
        singular_values=singular_values,
        explained_variance=explained_variance,
    )


def _as_vector(vector: ArrayLike, name: str) -> torch.Tensor:
    vector = torch.as_tensor(vector).to(torch.float64)
    if vector.dim() != 1:
        raise ValueError(f"{name} must be a flat vector; got shape {tuple(vector.shape)}")
    return vector


def _orthonormal_basis(dx: torch.Tensor, dy: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gram-Schmidt QR of [dx dy]: returns q1, q2 and the 2x2 upper-triangular R.

    QR instead of the normal equations because near-parallel directions would square the
    condition number.
    """
    norm_x = dx.norm()
    q1 = dx / norm_x
    along = q1 @ dy
    rest = dy - along * q1
    norm_rest = rest.norm()
    if norm_rest <= 1e-12 * dy.norm():
        raise ValueError("dx and dy are parallel: they do not span a plane, so 'lstsq' coordinates are undefined")
    r = torch.stack([torch.stack([norm_x, along]), torch.stack([torch.zeros_like(along), norm_rest])])
    return q1, rest / norm_rest, r


def project(
    diffs: Union[ArrayLike, Sequence[ArrayLike]], dx: ArrayLike, dy: ArrayLike, method: str
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Coordinates (xs, ys) of each row of `diffs` (checkpoint minus final model) in the plane of dx, dy.

    method 'cos': scalar projections d.dx/|dx| and d.dy/|dy|, the reference's default, exact
    when dx and dy are orthogonal (PCA directions are). method 'lstsq': the coefficients (a, b)
    minimising |d - a dx - b dy|, exact for any two independent directions.
    `diffs` is an (n, P) matrix or a sequence of flat vectors; returns two float64 (n,) tensors.
    """
    if method not in PROJECTION_METHODS:
        raise ValueError(f"unknown projection method {method!r}; choose one of {', '.join(PROJECTION_METHODS)}")
    dx, dy = _as_vector(dx, "dx"), _as_vector(dy, "dy")
    if dx.shape != dy.shape:
        raise ValueError(f"dx and dy differ in length: {dx.numel()} vs {dy.numel()}")
    for name, direction in (("dx", dx), ("dy", dy)):
        if not direction.norm() > 0:
            raise ValueError(f"{name} is a zero vector; it gives no direction to project on")

    if method == "cos":
        basis, to_coords = (dx / dx.norm(), dy / dy.norm()), None
    else:
        q1, q2, r = _orthonormal_basis(dx, dy)
        basis, to_coords = (q1, q2), r

    coords = []
    for index, diff in enumerate(diffs):
        diff = _as_vector(diff, f"diffs[{index}]").to(dx.device)
        if diff.shape != dx.shape:
            raise ValueError(f"diffs[{index}] has {diff.numel()} entries but the directions have {dx.numel()}")
        in_basis = torch.stack([basis[0] @ diff, basis[1] @ diff])
        coords.append(in_basis if to_coords is None else torch.linalg.solve_triangular(
            to_coords, in_basis[:, None], upper=True)[:, 0])
    if not coords:
        empty = torch.zeros(0, dtype=torch.float64, device=dx.device)
        return empty, empty.clone()
    coords = torch.stack(coords)
    return coords[:, 0], coords[:, 1]
