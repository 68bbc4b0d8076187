"""The attention explorer: one self-contained HTML page (no network).

- Translation (`translation_page`): hovering a target word shades every source word by its
  weight (scaled to the row's largest), marks the most attended (class ``top``), and outlines
  the gold Sure (``sure``) and Possible (``possible``) links.
- Images (`image_page`): each image with one attention map over it.

Each input has views (`views`), ``{layer: {head: array}}`` (``decoder/cross/layer2``,
``rollout``; ``average`` or ``head <h>``), picked by two selectors. The data rides in the page
as JSON, images as base64 PNG; callers give plain words and arrays.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Collection, Mapping, Sequence

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
.src span.sure { box-shadow: 0 0 0 3px #080; }
.src span.possible { box-shadow: 0 0 0 3px #8c8; border: 1px dashed #080; }
.legend { font-size: small; color: #555; }
.stack { position: relative; display: inline-block; }
.stack img { width: 192px; image-rendering: pixelated; display: block; }
.stack img.overlay { position: absolute; top: 0; left: 0; }
"""

# Fills an item's head selector with the heads of the selected layer (keeping the head chosen
# where the new layer has it) and calls onChange whenever the view changes.
_SELECTORS = """
function selectors(item, heads, onChange) {
  const layer = item.querySelector('select.layer'), head = item.querySelector('select.head');
  const fill = () => {
    const keep = head.value, names = heads[layer.value];
    head.innerHTML = '';
    names.forEach(h => head.add(new Option(h, h)));
    if (names.includes(keep)) head.value = keep;
    head.style.display = names.length > 1 ? '' : 'none';
    onChange();
  };
  layer.addEventListener('change', fill);
  head.addEventListener('change', onChange);
  fill();
}
const data = JSON.parse(document.getElementById('data').textContent);
const goldElement = document.getElementById('gold');
const goldLinks = goldElement ? JSON.parse(goldElement.textContent) : null;
"""

_TRANSLATION_SCRIPT = """
function clear(item) {
  item.querySelectorAll('.src span').forEach(s => {
    s.style.backgroundColor = ''; s.classList.remove('top', 'sure', 'possible');
    delete s.dataset.weight; });
  item.querySelectorAll('.tgt span').forEach(t => t.classList.remove('hover'));
}
function show(item, j) {
  const views = data[item.dataset.index];
  const layer = item.querySelector('select.layer').value;
  const row = views[layer][item.querySelector('select.head').value][j];
  const top = Math.max(...row, 1e-9);
  const best = row.indexOf(Math.max(...row));
  clear(item);
  item.querySelectorAll('.tgt span')[j].classList.add('hover');
  item.querySelectorAll('.src span').forEach((s, i) => {
    s.dataset.weight = row[i].toFixed(6);
    s.style.backgroundColor = `rgba(220, 40, 40, ${row[i] / top})`;
    if (i === best) s.classList.add('top');
  });
  const gold = (goldLinks || [])[item.dataset.index];
  if (!gold) return;
  const spans = item.querySelectorAll('.src span');
  gold.possible.forEach(([i, t]) => { if (t === j) spans[i].classList.add('possible'); });
  gold.sure.forEach(([i, t]) => {
    if (t === j) { spans[i].classList.remove('possible'); spans[i].classList.add('sure'); } });
}
document.querySelectorAll('.item').forEach(item => {
  item.querySelectorAll('.tgt span').forEach((t, j) => {
    t.addEventListener('mouseenter', () => show(item, j));
    t.addEventListener('mouseleave', () => clear(item));
  });
  const views = data[item.dataset.index];
  const heads = Object.fromEntries(Object.entries(views).map(([k, v]) => [k, Object.keys(v)]));
  selectors(item, heads, () => clear(item));
});
"""

_IMAGE_SCRIPT = """
document.querySelectorAll('.item').forEach(item => {
  const layer = item.querySelector('select.layer'), head = item.querySelector('select.head');
  const pick = () => item.querySelectorAll('img.overlay').forEach(o => {
    const shown = o.dataset.layer === layer.value && o.dataset.head === head.value;
    o.style.display = shown ? 'block' : 'none'; });
  selectors(item, data[item.dataset.index], pick);
});
"""


Views = Mapping[str, Mapping[str, np.ndarray]]  # {layer: {head: array}}, see the module doc
_LEGEND = (
    '<p class="legend">Gold links of the hovered word: <span class="src"><span class="sure">'
    'Sure</span> <span class="possible">Possible</span></span>; red outline: most attended.</p>'
)


def views(
    names: Sequence[str], averages: Sequence[np.ndarray], heads: Sequence[np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """The views of one input: layer ``names[m]`` shows ``average`` = ``averages[m]`` and,
    where ``heads[m]`` (``[H, ...]``) has more than one head, ``head 1`` ... ``head H``."""
    out = {}
    for name, average, per_head in zip(names, averages, heads, strict=True):
        out[name] = {"average": average}
        if len(per_head) > 1:
            out[name].update({f"head {h + 1}": w for h, w in enumerate(per_head)})
    return out


def _json(element_id: str, data: object) -> str:
    # "</" cannot close the script element inside JSON strings.
    text = json.dumps(data).replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def _page(title: str, body: str, script: str, data: object, gold: object = None) -> str:
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}"
        f"{_json('data', data)}{'' if gold is None else _json('gold', gold)}"
        f"<script>{_SELECTORS}{script}</script></body></html>\n"
    )


def _selects(layers: Sequence[str]) -> str:
    """The layer selector (hidden with one layer) and the head selector the page's script fills."""
    options = "".join(f'<option value="{html.escape(n)}">{html.escape(n)}</option>' for n in layers)
    hidden = "" if len(layers) > 1 else ' style="display:none"'
    return f'<select class="layer"{hidden}>{options}</select><select class="head"></select>'


def _words(css: str, words: Sequence[str]) -> str:
    spans = "".join(f"<span>{html.escape(w)}</span>" for w in words)
    return f'<div class="words {css}">{spans}</div>'


def translation_page(
    pairs: Sequence[tuple[Sequence[str], Sequence[str], Views]],
    title: str,
    gold: Sequence[tuple[Collection[tuple[int, int]], Collection[tuple[int, int]]]] | None = None,
) -> str:
    """The page of sentence pairs ``(source words, target words, views)``, each view a ``[target
    words, source words]`` attention; `gold` gives each pair's Sure and Possible links ``(i, j)``
    (the page's JSON ``gold``: ``[{"sure": [[i, j]...], "possible": [...]}]``).
    """
    items, data = [], []
    for index, (source, target, pair_views) in enumerate(pairs):
        items.append(
            f'<div class="item" data-index="{index}">{_selects(list(pair_views))}'
            f"{_words('src', source)}{_words('tgt', target)}</div>"
        )
        data.append(
            {
                layer: {h: np.asarray(w, float).round(6).tolist() for h, w in heads.items()}
                for layer, heads in pair_views.items()
            }
        )
    marks = None
    if gold is not None:
        marks = [
            {
                "sure": sorted(map(list, sure)),
                "possible": sorted(map(list, set(possible) - set(sure))),
            }
            for sure, possible in gold
        ]
        items.insert(0, _LEGEND)
    return _page(title, "".join(items), _TRANSLATION_SCRIPT, data, marks)


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


def image_page(items: Sequence[tuple[str, np.ndarray, Views]], title: str) -> str:
    """The page of images ``(caption, uint8 image [H, W, C], views)``, each view a map
    ``[h, w]`` over the model's grid; the first layer's average is shown first."""
    blocks, data = [], []
    for index, (caption, image_HWC, image_views) in enumerate(items):
        height, width = image_HWC.shape[:2]
        gray = image_HWC[..., 0] if image_HWC.shape[-1] == 1 else image_HWC
        rgb = np.stack([gray] * 3, -1) if gray.ndim == 2 else gray
        overlays = "".join(
            f'<img class="overlay" data-layer="{html.escape(layer)}" data-head="{html.escape(h)}"'
            f' src="{_png(_overlay(m, height, width))}">'
            for layer, heads in image_views.items()
            for h, m in heads.items()
        )
        blocks.append(
            f'<div class="item" data-index="{index}">{_selects(list(image_views))}'
            f"<div>{html.escape(caption)}</div>"
            f'<div class="stack"><img src="{_png(rgb.astype(np.uint8))}">{overlays}</div></div>'
        )
        data.append({layer: list(heads) for layer, heads in image_views.items()})
    return _page(title, "".join(blocks), _IMAGE_SCRIPT, data)


def write(path: str, page: str) -> None:
    """Writes `page` to `path`, creating its directory."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
