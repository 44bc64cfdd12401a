"""The demo's pictures: drawn shapes with alt texts that name them, and photos from installed packages.

Everything is deterministic (keyed blake2b draws, never `random`), so a rerun makes the same bytes.
A drawn picture is one shape of one colour on a background; its alt text names the colour and the
shape in one of several phrasings, the way alt texts on the web vary. The shape sits inside the
picture's central square, so a centre crop (what the shards are built with) keeps all of it.

`shape_picture(i)` is the i-th training picture; `held_out(task, n)` draws a separate set (other
keys) for zero-shot evaluation, one folder per class: the `shape` task (6 classes) and the `colour`
task (6 classes). `package_photos()` are crops of the photos that ship inside matplotlib.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageDraw

from openwit.common.hashing import blake_u64

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
COLOURS = {"red": (210, 30, 30), "green": (30, 160, 60), "blue": (40, 70, 210),
           "yellow": (235, 205, 20), "purple": (125, 40, 170), "orange": (245, 135, 20)}
BACKGROUNDS = {"white": (250, 250, 250), "grey": (128, 128, 128), "black": (15, 15, 15), "sand": (220, 200, 150)}
SIZES = ("small", "large")
PLACES = ("top left", "top right", "bottom left", "bottom right", "middle")
# Alt texts as people write them: most name the colour and the shape, some only the shape.
PHRASINGS = (
    "A {colour} {shape} drawn on a {bg} background",
    "{Colour} {shape} on {bg}",
    "a {size} {colour} {shape} in the {place}, {bg} background",
    "Clip art of a {shape}",
    "{Shape} in {colour} on a {bg} card",
    "Icon: {shape} ({size})",
    "The {colour} {shape} symbol",
    "{Shape} shape, {place}",
)
TASKS = {"shape": SHAPES, "colour": tuple(COLOURS)}


class Drawing(NamedTuple):
    shape: str
    colour: str
    bg: str
    size: str
    place: str
    width: int
    height: int


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, outline=fill, width=max(2, int(r / 3)))
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "cross":
        w = r / 3
        draw.rectangle((cx - w, y0, cx + w, y1), fill=fill)
        draw.rectangle((x0, cy - w, x1, cy + w), fill=fill)
    else:  # star
        pts = [(cx + (r if k % 2 == 0 else r / 2.5) * math.sin(k * math.pi / 5),
                cy - (r if k % 2 == 0 else r / 2.5) * math.cos(k * math.pi / 5)) for k in range(10)]
        draw.polygon(pts, fill=fill)


def drawing(key: str, i: int, shape: str | None = None, colour: str | None = None) -> Drawing:
    """The parameters of drawing `i` under `key` (shape/colour fixed when given)."""
    h = blake_u64(key, i)
    pick = lambda options, bits: options[(h >> bits) % len(options)]  # noqa: E731
    return Drawing(shape or pick(SHAPES, 0), colour or pick(tuple(COLOURS), 8), pick(tuple(BACKGROUNDS), 16),
                   pick(SIZES, 24), pick(PLACES, 28), 96 + (h >> 36) % 224, 96 + (h >> 46) % 224)


def render(d: Drawing, fmt: str = "JPEG") -> bytes:
    """The drawing as image bytes; the shape lies in the central square, placed as `d.place` says."""
    img = Image.new("RGB", (d.width, d.height), BACKGROUNDS[d.bg])
    side = min(d.width, d.height)
    ox, oy = (d.width - side) // 2, (d.height - side) // 2
    extent = side * (55 if d.size == "small" else 85) // 100
    slack = side - extent
    fx, fy = {"top left": (0.1, 0.1), "top right": (0.9, 0.1), "bottom left": (0.1, 0.9),
              "bottom right": (0.9, 0.9), "middle": (0.5, 0.5)}[d.place]
    x0, y0 = ox + int(slack * fx), oy + int(slack * fy)
    _draw_shape(ImageDraw.Draw(img), d.shape, (x0, y0, x0 + extent, y0 + extent), COLOURS[d.colour])
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def alt_text(d: Drawing, i: int) -> str:
    phrasing = PHRASINGS[blake_u64("demo-phrasing", i) % len(PHRASINGS)]
    return phrasing.format(colour=d.colour, Colour=d.colour.capitalize(), shape=d.shape,
                           Shape=d.shape.capitalize(), bg=d.bg, size=d.size, place=d.place)


def shape_picture(i: int) -> tuple[bytes, str, Drawing]:
    """The i-th training picture: JPEG bytes, its alt text, what was drawn."""
    d = drawing("demo-train", i)
    return render(d), alt_text(d, i), d


def held_out(root: str, task: str, per_class: int) -> str:
    """Draw `per_class` pictures of every class of `task` into root/task/<class>/NNN.jpg (keys no
    training picture uses) and write root/task/templates.txt: caption-like prompts, one per value of
    the other attribute, averaged by the evaluator. Returns the task's folder."""
    folder = os.path.join(root, task)
    for cls in TASKS[task]:
        os.makedirs(os.path.join(folder, cls), exist_ok=True)
        for i in range(per_class):
            d = drawing(f"demo-held-out-{task}-{cls}", i, **{task: cls})
            Path(folder, cls, f"{i:03d}.jpg").write_bytes(render(d))
    if task == "shape":
        templates = [f"A {c} {{}} drawn on a {bg} background" for c in COLOURS for bg in ("white", "black")]
        templates += ["Clip art of a {}", "Icon: {} (large)", "{} shape, middle"]
    else:
        templates = [f"A {{}} {s} drawn on a {bg} background" for s in SHAPES for bg in ("white", "black")]
    Path(root, f"{task}-templates.txt").write_text("\n".join(templates) + "\n")
    return folder


def package_photos() -> list[tuple[bytes, str]]:
    """Crops of photos that ship inside matplotlib's wheel, with alt texts (empty when absent)."""
    import matplotlib

    data = Path(matplotlib.get_data_path()) / "sample_data"
    sources = [("grace_hopper.jpg", ["Portrait of Grace Hopper, computer scientist, in her navy uniform",
                                     "Grace Hopper photographed in uniform with a medal",
                                     "Detail of an official portrait: face and collar"]),
               ("Minduka_Present_Blue_Pack.png", ["A blue gift box wrapped with a ribbon",
                                                  "Present in a blue pack, photographed on a table",
                                                  "Close-up of a wrapped present"])]
    out = []
    for name, captions in sources:
        path = data / name
        if not path.exists():
            continue
        photo = Image.open(path).convert("RGB")
        W, H = photo.size
        boxes = [(0, 0, W, H), (0, 0, W, H * 2 // 3), (W // 4, H // 8, W * 3 // 4, H // 2)]
        for box, caption in zip(boxes, captions):
            buf = io.BytesIO()
            photo.crop(box).save(buf, "JPEG", quality=90)
            out.append((buf.getvalue(), caption))
    return out
