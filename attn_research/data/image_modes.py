"""Pillow images to the uint8 pixels the image models read, for training (``image_sources``) and
prediction (``predict.classifier``) alike: first 8-bit RGB, then for one channel Pillow's
ITU-R 601-2 luma ``L = (299 R + 587 G + 114 B) / 1000``.

| mode | read as |
| --- | --- |
| ``1`` | 0 or 255 |
| ``L``, ``RGB``, ``P`` (palette) | the pixels, the palette expanded |
| ``RGBX`` | RGB, the padding band dropped |
| ``CMYK`` | ``R = (255 - C)(255 - K) / 255`` (and G, B likewise), rounded |
| ``YCbCr`` | JPEG's (BT.601 full-range) ``R = Y + 1.402 (Cr - 128)`` and so on |
| ``LA``, ``PA``, ``RGBA``, and ``L``, ``RGB``, ``P`` with ``tRNS`` | over black: ``round(c * alpha / 255)`` |
| ``La``, ``RGBa`` (premultiplied) | the colour bands as stored |
| ``I;16``, ``I;16L``, ``I;16B``, ``I;16N`` | ``round(v / 257)`` |
| ``I`` (32-bit integers) | as 16-bit: values in 0..65535 |
| ``F`` (32-bit floats) | ``round(255 v)``: values in [0, 1] |

Other modes (``LAB``, ``HSV``, ``I;16S``, ...) and values out of range raise a ValueError naming
the image and its mode.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_DIRECT = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr")
_WITH_ALPHA = ("LA", "PA", "RGBA")
_PREMULTIPLIED = {"La": 1, "RGBa": 3}  # mode -> colour bands
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
MODES = (*_DIRECT, *_WITH_ALPHA, *_PREMULTIPLIED, *_SIXTEEN_BIT, "F")


def read_file(path: str, channels: int) -> np.ndarray:
    """uint8 ``[H, W, channels]`` of the image file at `path` (`to_pixels`).

    Raises:
      ValueError: naming `path` if Pillow cannot read it, or from `to_pixels`.
    """
    try:
        with Image.open(path) as pil:
            pil.load()
            image = pil.copy()
            image.info = dict(pil.info)
    except Exception as error:  # pylint: disable=broad-except  # Whatever the decoder raised.
        raise ValueError(
            f"{path}: cannot read the image ({type(error).__name__}: {error}); remove or "
            f"replace the file"
        ) from None
    return to_pixels(image, channels, path)


def to_pixels(pil: Image.Image, channels: int, name: str) -> np.ndarray:
    """uint8 ``[H, W, channels]`` (channels 1 or 3) of `pil`, by the module's table.

    Raises:
      ValueError: naming `name` and the mode, for a mode not read or values out of range.
    """
    rgb_HW3 = _rgb(pil, name)
    if channels == 3:
        return rgb_HW3
    if channels != 1:
        raise ValueError(f"{name}: a model of {channels} channels; images have 1 or 3")
    return np.asarray(Image.fromarray(rgb_HW3).convert("L"))[..., None]


def _rgb(pil: Image.Image, name: str) -> np.ndarray:
    """uint8 ``[H, W, 3]``."""
    mode = pil.mode
    if mode in _SIXTEEN_BIT or mode == "F":
        grey_HW = _eight_bit(np.asarray(pil), mode, name)
        return np.repeat(grey_HW[..., None], 3, axis=-1)
    if mode in _PREMULTIPLIED:
        colour = np.asarray(pil)[..., : _PREMULTIPLIED[mode]]
        return np.ascontiguousarray(np.broadcast_to(colour, (*colour.shape[:2], 3)))
    if mode in _WITH_ALPHA or (mode in _DIRECT and "transparency" in pil.info):
        rgba_HW4 = np.asarray(pil.convert("RGBA"), np.uint32)
        return ((rgba_HW4[..., :3] * rgba_HW4[..., 3:] + 127) // 255).astype(np.uint8)
    if mode in _DIRECT:
        return np.asarray(pil.convert("RGB"))
    raise ValueError(
        f"{name}: Pillow mode {mode!r} is not read (modes read: {', '.join(MODES)}); "
        f"convert the image to RGB or L first"
    )


def _eight_bit(values: np.ndarray, mode: str, name: str) -> np.ndarray:
    """uint8 ``[H, W]`` of 16-bit grey (``I;16*``, ``I``) or float intensity (``F``)."""
    if mode == "F":
        values, top = values.astype(np.float64), 1.0
    else:
        values, top = values.astype(np.int64), 65535
    if values.size and not (
        np.all(np.isfinite(values)) and 0 <= values.min() <= values.max() <= top
    ):
        raise ValueError(
            f"{name}: Pillow mode {mode!r} with values {values.min()}..{values.max()}; this "
            f"mode is read as intensity 0..{top}: rescale the image to that range"
        )
    return np.round(values * (255 / top)).astype(np.uint8)
