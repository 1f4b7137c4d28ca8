"""Window kernels for NumPy-like libraries (NumPy, CuPy): strided views instead of copies.

The NumPy and CuPy backends specialise :meth:`Backend.unfold` and :meth:`Backend.fold` with
these functions, passing their library module. Two habits make them fast:

- ``unfold`` returns a view made by ``sliding_window_view`` (no copy at all: the convolution
  copies once, when it flattens the windows into the rows of its matrix product);
- arrays they allocate (the padded input, ``fold``'s result) are stored channels-last,
  (N, H, W, C) in memory but seen as (N, C, H, W). A convolution's output is a channels-last
  view too, so inside a network every window's C values are contiguous, and each row of the
  matrix product is gathered from k_h · k_w runs of C contiguous numbers.

Both are tested against the generic versions in :class:`~xpnn.backends.base.Backend`.
"""

from __future__ import annotations

from typing import Any

from xpnn.backends.base import Window


def unfold(lib: Any, sliding_window_view: Any, x: Any, window: Window, fill: float) -> Any:
    """:meth:`Backend.unfold` as a view: (N, H_out, W_out, k_h, k_w, C)."""
    (s_h, s_w), (d_h, d_w) = window.stride, window.dilation
    padded = pad(lib, x, window, fill)
    views = sliding_window_view(padded, window.span, axis=(2, 3))  # (N, C, ·, ·, span, span)
    views = views[:, :, ::s_h, ::s_w, ::d_h, ::d_w]
    return views.transpose(0, 2, 3, 4, 5, 1)


def fold(lib: Any, windows: Any, input_shape: tuple[int, int, int, int],
         window: Window) -> Any:
    """:meth:`Backend.fold` with one in-place strided add per tap into a channels-last
    zero array."""
    n, c, height, width = input_shape
    (k_h, k_w), (s_h, s_w), (d_h, d_w) = window.size, window.stride, window.dilation
    (top, _), (left, _) = window.padding
    out_h, out_w = window.output_size(height, width)
    padded_h, padded_w = window.padded_size(height, width)
    total = lib.zeros((n, padded_h, padded_w, c), dtype=windows.dtype).transpose(0, 3, 1, 2)
    by_tap = windows.transpose(3, 4, 0, 5, 1, 2)  # (k_h, k_w, N, C, H_out, W_out)
    for p in range(k_h):
        for q in range(k_w):
            region = total[:, :, p * d_h:p * d_h + s_h * (out_h - 1) + 1:s_h,
                           q * d_w:q * d_w + s_w * (out_w - 1) + 1:s_w]
            lib.add(region, by_tap[p, q], out=region)
    return total[:, :, top:top + height, left:left + width]


def pad(lib: Any, x: Any, window: Window, fill: float) -> Any:
    """``x`` (N, C, H, W) inside a border of ``fill``, stored channels-last."""
    (top, bottom), (left, right) = window.padding
    if top == bottom == left == right == 0:
        return x
    n, c, height, width = x.shape
    padded = lib.full((n, height + top + bottom, width + left + right, c), fill,
                      dtype=x.dtype).transpose(0, 3, 1, 2)
    padded[:, :, top:top + height, left:left + width] = x
    return padded
