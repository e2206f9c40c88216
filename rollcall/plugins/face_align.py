"""Aligning a face to the recognizer's crop by its five keypoints (ArcFace's template).

The same crop as insightface's ``utils.face_align.norm_crop`` (a least-squares
similarity transform, Umeyama 1991, as scikit-image estimates it, then
``cv2.warpAffine``) in a few lines of numpy: importing insightface's helper
loads insightface, onnx and scikit-image, a second or more of CPU that every
command paid whether or not it aligned a face.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Where ArcFace models expect the eyes, nose and mouth corners in a 112x112 crop.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 similarity (rotation, uniform scale, translation) taking ``src`` to ``dst``
    in the least-squares sense; all NaN when the points are degenerate."""
    src = np.asarray(src)
    dst = np.asarray(dst)
    num, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_demean, dst_demean = src - src_mean, dst - dst_mean
    a = dst_demean.T @ src_demean / num
    d = np.ones((dim,), dtype=np.float64)
    if np.linalg.det(a) < 0:
        d[dim - 1] = -1
    t = np.eye(dim + 1, dtype=np.float64)
    u, s, v = np.linalg.svd(a)
    rank = np.count_nonzero(s > s.max() * max(a.shape) * np.finfo(float).eps)
    if rank == 0:
        return np.nan * t
    if rank == dim - 1 and np.linalg.det(u) * np.linalg.det(v) <= 0:
        d_last = d.copy()
        d_last[dim - 1] = -1
        t[:dim, :dim] = u @ np.diag(d_last) @ v
    elif rank == dim - 1:
        t[:dim, :dim] = u @ v
    else:
        t[:dim, :dim] = u @ np.diag(d) @ v
    scale = 1.0 / src_demean.var(axis=0).sum() * (s @ d)
    t[:dim, dim] = dst_mean - scale * (t[:dim, :dim] @ src_mean.T)
    t[:dim, :dim] *= scale
    return t


def estimate_norm(landmark: np.ndarray, image_size: int = 112) -> np.ndarray:
    """The 2x3 affine matrix mapping the five keypoints onto the template at ``image_size``."""
    if landmark.shape != (5, 2):
        raise ValueError(f"five (x, y) keypoints needed, got shape {landmark.shape}")
    if image_size % 112 == 0:
        ratio, diff_x = image_size / 112.0, 0.0
    elif image_size % 128 == 0:
        ratio = image_size / 128.0
        diff_x = 8.0 * ratio
    else:
        raise ValueError(f"crop size {image_size} is not a multiple of 112 or 128")
    dst = ARCFACE_TEMPLATE * ratio
    dst[:, 0] += diff_x
    return similarity_transform(landmark, dst)[0:2, :]


def norm_crop(image: np.ndarray, landmark: np.ndarray, image_size: int = 112) -> np.ndarray:
    """The ``image_size`` square crop of the face whose keypoints are ``landmark``."""
    matrix = estimate_norm(landmark, image_size)
    return cv2.warpAffine(image, matrix, (image_size, image_size), borderValue=0.0)
