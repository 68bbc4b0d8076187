"""The attention explorer: one self-contained HTML page (no network, nothing from a CDN).

- Translation (`translation_page`): each sentence pair as words; hovering a target word shades
  every source word by the weight it gets (its ``data-weight``, the shade scaled to the row's
  largest weight) and marks the most attended one (class ``top``). A selector picks the
  attention (layer) where a model has several.
- Images (`image_page`): each image with one attention map over it; a selector picks the map
  (a layer, the rollout).

The data rides in the page as JSON; images as base64 PNG. Callers give plain words, matrices
and arrays, so the page knows nothing of models.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from PIL import Image

_STYLE = """
body { font-family: sans-serif; margin: 1em; }
.item { border-bottom: 1px solid #ccc; padding: 0.6em 0; }
.words span { padding: 0 0.15em; margin: 0 0.05em; border-radius: 3px; }
.tgt span { cursor: pointer; border-bottom: 1px dotted #888; }
.tgt span.hover { outline: 1px solid #333; }
.src span.top { outline: 2px solid #b00; }
.stack { position: relative; display: inline-block; }
.stack img { width: 192px; image-rendering: pixelated; display: block; }
.stack img.overlay { position: absolute; top: 0; left: 0; }
"""

_TRANSLATION_SCRIPT = """
const pairs = JSON.parse(document.getElementById('data').textContent);
function clear(item) {
  item.querySelectorAll('.src span').forEach(s => {
    s.style.backgroundColor = ''; s.classList.remove('top'); delete s.dataset.weight; });
  item.querySelectorAll('.tgt span').forEach(t => t.classList.remove('hover'));
}
function show(item, j) {
  const pair = pairs[item.dataset.index];
  const row = pair.attention[item.querySelector('select').value][j];
  const top = Math.max(...row, 1e-9);
  const best = row.indexOf(Math.max(...row));
  clear(item);
  item.querySelectorAll('.tgt span')[j].classList.add('hover');
  item.querySelectorAll('.src span').forEach((s, i) => {
    s.dataset.weight = row[i].toFixed(6);
    s.style.backgroundColor = `rgba(220, 40, 40, ${row[i] / top})`;
    if (i === best) s.classList.add('top');
  });
}
document.querySelectorAll('.item').forEach(item => {
  item.querySelectorAll('.tgt span').forEach((t, j) => {
    t.addEventListener('mouseenter', () => show(item, j));
    t.addEventListener('mouseleave', () => clear(item));
  });
  item.querySelector('select').addEventListener('change', () => clear(item));
});
"""

_IMAGE_SCRIPT = """
document.querySelectorAll('.item').forEach(item => {
  const select = item.querySelector('select');
  const pick = () => item.querySelectorAll('img.overlay').forEach(o => {
    o.style.display = o.dataset.map === select.value ? 'block' : 'none'; });
  select.addEventListener('change', pick);
  pick();
});
"""


def _page(title: str, body: str, script: str, data: object = None) -> str:
    payload = ""
    if data is not None:  # "</" cannot close the script element inside JSON strings.
        text = json.dumps(data).replace("</", "<\\/")
        payload = f'<script type="application/json" id="data">{text}</script>'
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
        f"{payload}<script>{script}</script></body></html>\n"
    )


def _select(names: Sequence[str]) -> str:
    options = "".join(f'<option value="{html.escape(n)}">{html.escape(n)}</option>' for n in names)
    hidden = "" if len(names) > 1 else ' style="display:none"'
    return f"<select{hidden}>{options}</select>"


def _words(css: str, words: Sequence[str]) -> str:
    spans = "".join(f"<span>{html.escape(w)}</span>" for w in words)
    return f'<div class="words {css}">{spans}</div>'


def translation_page(
    pairs: Sequence[tuple[Sequence[str], Sequence[str], Mapping[str, np.ndarray]]], title: str
) -> str:
    """The page of sentence pairs ``(source words, target words, {name: [target words,
    source words] attention})``; the first attention is shown first."""
    items, data = [], []
    for index, (source, target, attention) in enumerate(pairs):
        items.append(
            f'<div class="item" data-index="{index}">{_select(list(attention))}'
            f"{_words('src', source)}{_words('tgt', target)}</div>"
        )
        data.append(
            {"attention": {k: np.asarray(v, float).round(6).tolist() for k, v in attention.items()}}
        )
    return _page(title, "".join(items), _TRANSLATION_SCRIPT, data)


def _png(rgba_HWC: np.ndarray) -> str:
    """A data URI of the uint8 image ``[H, W, 3 or 4]``."""
    buffer = io.BytesIO()
    Image.fromarray(rgba_HWC).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _overlay(map_hw: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 RGBA ``[H, W, 4]``: the map scaled to its maximum, coloured (inferno), 60% opaque,
    each grid cell covering its block of pixels."""
    scaled = np.asarray(map_hw, np.float64) / max(float(np.max(map_hw)), 1e-12)
    rows = np.arange(height) * scaled.shape[0] // height
    cols = np.arange(width) * scaled.shape[1] // width
    rgba = colormaps["inferno"](scaled[rows][:, cols])
    rgba[..., 3] = 0.6
    return (rgba * 255).astype(np.uint8)


def image_page(
    items: Sequence[tuple[str, np.ndarray, Mapping[str, np.ndarray]]], title: str
) -> str:
    """The page of images ``(caption, uint8 image [H, W, C], {name: map [h, w]})``."""
    blocks = []
    for caption, image_HWC, maps in items:
        height, width = image_HWC.shape[:2]
        gray = image_HWC[..., 0] if image_HWC.shape[-1] == 1 else image_HWC
        rgb = np.stack([gray] * 3, -1) if gray.ndim == 2 else gray
        overlays = "".join(
            f'<img class="overlay" data-map="{html.escape(name)}" '
            f'src="{_png(_overlay(m, height, width))}">'
            for name, m in maps.items()
        )
        blocks.append(
            f'<div class="item">{_select(list(maps))}<div>{html.escape(caption)}</div>'
            f'<div class="stack"><img src="{_png(rgb.astype(np.uint8))}">{overlays}</div></div>'
        )
    return _page(title, "".join(blocks), _IMAGE_SCRIPT)


def write(path: str, page: str) -> None:
    """Writes `page` to `path`, creating its directory."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
