"""Images that are not brain MRI slices, made here: to train and to test the model's guard.

Nothing is downloaded or committed. Each generator takes a numpy random
generator and a side length and returns a PIL image. The kinds:

- `noise`, `blank`, `gradient`, `shapes`: what a broken export or a test
  pattern looks like; `texture`: grey fractal noise, stripes, tiles;
- `document`, `screenshot`: rendered text, forms and windows;
- `photo_like`: smooth colour fields with objects, a stand-in for photographs;
- `chest_xray`: a synthetic frontal chest radiograph (lungs, ribs, spine, heart);
- `ct_head`: a head CT slice rendered from a head's outline (from a real MRI
  slice's mask when one is given, else a random ellipse): soft-tissue scalp,
  a bright bone ring, nearly uniform brain, dark ventricles, in a brain, bone
  or subdural window;
- `body_mri`: an MRI-like slice of the abdomen or a knee (not a head).

`package_images()` adds real pictures that ship inside Python packages
(scikit-image and matplotlib sample data, when installed: photographs, a
scanned page, microscopy, a retina, the Shepp-Logan CT phantom). They are never
used for training the guard, only to test it on kinds it has not seen.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ml.probes import head_mask

Generator = Callable[[np.random.Generator, int], Image.Image]

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts"))
WORDS = [
    "invoice",
    "total",
    "amount",
    "due",
    "date",
    "patient",
    "report",
    "account",
    "payment",
    "order",
    "item",
    "quantity",
    "price",
    "tax",
    "number",
    "customer",
    "address",
    "reference",
    "description",
    "service",
    "summary",
    "page",
    "of",
    "hospital",
    "radiology",
    "department",
    "signature",
    "approved",
    "remarks",
    "balance",
    "shipping",
    "terms",
]


def _font(rng: np.random.Generator, size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    fonts = [p for d in FONT_DIRS if d.is_dir() for p in sorted(d.rglob("*.ttf"))]
    if not fonts:
        return ImageFont.load_default()
    return ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), size)


def _to_image(values: np.ndarray) -> Image.Image:
    array = np.clip(values, 0, 255).astype(np.uint8)
    return Image.fromarray(array, mode="RGB" if array.ndim == 3 else "L")


def noise(rng: np.random.Generator, side: int) -> Image.Image:
    kind = rng.integers(4)
    if kind == 0:
        return _to_image(rng.uniform(0, 255, (side, side)))
    if kind == 1:
        return _to_image(rng.normal(rng.uniform(60, 190), rng.uniform(10, 80), (side, side)))
    if kind == 2:
        return _to_image(rng.uniform(0, 255, (side, side, 3)))
    coarse = rng.uniform(0, 255, (int(rng.integers(4, 24)),) * 2)
    return Image.fromarray(coarse.astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC)


def texture(rng: np.random.Generator, side: int) -> Image.Image:
    """Grey natural-looking texture: noise summed over octaves, stripes, or a checkerboard."""
    kind = rng.integers(3)
    y, x = np.mgrid[0:side, 0:side] / side
    if kind == 0:  # fractal noise, like gravel, grass, clouds, bark
        values = np.zeros((side, side))
        for octave in range(int(rng.integers(3, 7))):
            cells = 2 ** (octave + 2)
            coarse = rng.uniform(0, 1, (cells, cells)).astype(np.float32)
            layer = Image.fromarray(coarse, mode="F").resize((side, side), Image.Resampling.BICUBIC)
            values += np.asarray(layer) * rng.uniform(0.3, 1.0) ** octave
    elif kind == 1:  # stripes and weaves
        angle, frequency = rng.uniform(0, np.pi), rng.uniform(6, 60)
        values = np.sin((np.cos(angle) * x + np.sin(angle) * y) * frequency)
        values += rng.uniform(0, 1) * np.sin((x - y) * rng.uniform(6, 60))
    else:  # tiles, bricks
        cells = int(rng.integers(3, 20))
        values = ((x * cells).astype(int) + (y * cells * rng.uniform(0.5, 2)).astype(int)) % 2
        values = values + rng.normal(0, 0.15, values.shape)
    values = (values - values.min()) / (np.ptp(values) + 1e-6) * rng.uniform(80, 255)
    return _to_image(values + rng.uniform(0, 60))


def blank(rng: np.random.Generator, side: int) -> Image.Image:
    level = float(rng.choice([0, 255, rng.uniform(0, 255)]))
    return _to_image(np.full((side, side), level) + rng.normal(0, rng.uniform(0, 2), (side, side)))


def gradient(rng: np.random.Generator, side: int) -> Image.Image:
    y, x = np.mgrid[0:side, 0:side] / side
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * x + np.sin(angle) * y) * rng.uniform(100, 255)
    return _to_image(ramp - ramp.min() + rng.uniform(0, 60))


def shapes(rng: np.random.Generator, side: int) -> Image.Image:
    image = Image.new("L", (side, side), int(rng.integers(0, 256)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 12))):
        box = sorted(rng.integers(0, side, 2)), sorted(rng.integers(0, side, 2))
        xy = [box[0][0], box[1][0], box[0][1] + 1, box[1][1] + 1]
        fill = int(rng.integers(0, 256))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(xy, fill=fill)
    return image


def document(rng: np.random.Generator, side: int) -> Image.Image:
    paper = int(rng.integers(215, 256))
    ink = int(rng.integers(0, 90))
    if rng.random() < 0.15:  # a dark-mode page
        paper, ink = ink, paper
    image = Image.new("L", (side, side), paper)
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(max(6, side // 40), max(8, side // 14)))
    font = _font(rng, size)
    y = int(rng.integers(2, side // 8 + 3))
    while y < side - size:
        x = int(rng.integers(2, side // 6 + 3))
        line = " ".join(rng.choice(WORDS, int(rng.integers(2, 9))))
        if rng.random() < 0.3:
            line += f"  {rng.integers(1, 9999)}.{rng.integers(0, 99):02d}"
        draw.text((x, y), line, fill=ink, font=font)
        if rng.random() < 0.15:
            draw.line([(2, y + size + 2), (side - 2, y + size + 2)], fill=ink)
        y += int(size * rng.uniform(1.3, 2.2))
    photographed = image.rotate(float(rng.uniform(-8, 8)), fillcolor=int(rng.integers(0, 120)))
    return photographed.filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 1.2))))


def screenshot(rng: np.random.Generator, side: int) -> Image.Image:
    background = tuple(int(v) for v in rng.integers(180, 256, 3))
    image = Image.new("RGB", (side, side), background)
    draw = ImageDraw.Draw(image)
    bar = tuple(int(v) for v in rng.integers(0, 256, 3))
    draw.rectangle([0, 0, side, side // 12], fill=bar)
    font = _font(rng, max(8, side // 30))
    for _ in range(int(rng.integers(3, 10))):
        x, y = (int(v) for v in rng.integers(0, side * 3 // 4, 2))
        w, h = (int(v) for v in rng.integers(side // 10, side // 3, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=2)
        draw.text((x + 4, y + 4), " ".join(rng.choice(WORDS, 3)), fill=colour, font=font)
    return image


def photo_like(rng: np.random.Generator, side: int) -> Image.Image:
    """Smooth colour fields with blurred objects; one in three in grey, as a grey photograph."""
    coarse = rng.uniform(0, 255, (3, 3, 3))
    field = np.asarray(
        Image.fromarray(coarse.astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC),
        np.float32,
    )
    image = _to_image(field + rng.normal(0, 6, field.shape))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 6))):
        x, y = (int(v) for v in rng.integers(0, side, 2))
        r = int(rng.integers(side // 12, side // 3))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse([x - r, y - r, x + r, y + r // 2], fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
    return image.convert("L") if rng.random() < 1 / 3 else image


def chest_xray(rng: np.random.Generator, side: int) -> Image.Image:
    y, x = np.mgrid[0:side, 0:side] / side - 0.5
    body = ((x / rng.uniform(0.42, 0.5)) ** 2 + (y / 0.6) ** 2 < 1) * rng.uniform(140, 190)
    lungs = np.zeros_like(x)
    for sign in (-1, 1):
        cx = sign * rng.uniform(0.14, 0.2)
        lungs += ((x - cx) / 0.13) ** 2 + ((y + 0.02) / rng.uniform(0.3, 0.36)) ** 2 < 1
    values = body - lungs * rng.uniform(90, 130)
    ribs = (np.sin((y + 0.1 * np.abs(x)) * rng.uniform(38, 50)) > 0.75) & (lungs > 0)
    values += ribs * rng.uniform(25, 45)
    values += (np.abs(x) < 0.04) * rng.uniform(50, 80)  # spine
    values += (((x + 0.06) / 0.13) ** 2 + ((y - 0.12) / 0.14) ** 2 < 1) * 70  # heart
    image = _to_image(values + rng.normal(0, 5, values.shape))
    return image.filter(ImageFilter.GaussianBlur(float(rng.uniform(1, 3))))


def _ellipse_mask(rng: np.random.Generator, side: int) -> np.ndarray:
    y, x = np.mgrid[0:side, 0:side] / side - 0.5
    mask: np.ndarray = (x / rng.uniform(0.33, 0.42)) ** 2 + (y / rng.uniform(0.4, 0.47)) ** 2 < 1
    return mask


def _depth(mask: np.ndarray, steps: int) -> np.ndarray:
    """How many 4-neighbour erosions each pixel of `mask` survives, up to `steps`."""
    depth = np.zeros(mask.shape, np.float32)
    current = mask.copy()
    for _ in range(steps):
        depth += current
        shrunk = current.copy()
        shrunk[1:] &= current[:-1]
        shrunk[:-1] &= current[1:]
        shrunk[:, 1:] &= current[:, :-1]
        shrunk[:, :-1] &= current[:, 1:]
        current = shrunk
    return depth


def ct_head(rng: np.random.Generator, side: int, anatomy: np.ndarray | None = None) -> Image.Image:
    """A head CT slice; `anatomy`, a grey (side, side) MRI slice, lends its outline and fluid."""
    if anatomy is not None and anatomy.shape == (side, side):
        mri = anatomy.astype(np.float32)
        mask = head_mask(mri[..., np.newaxis])
    else:
        mask = _ellipse_mask(rng, side)
        mri = np.asarray(_mri_texture(rng, side), np.float32)
    scale = side / 160
    depth = _depth(mask, int(40 * scale) + 2)
    scalp = rng.uniform(1.5, 4) * scale
    bone = scalp + rng.uniform(3, 8) * scale
    hu = np.full(mask.shape, -1000.0)  # air
    hu[mask] = 35.0  # soft tissue and brain
    brain = depth > bone
    inside = mri[brain]
    if inside.size:
        contrast = (mri - float(np.median(inside))) / (float(inside.std()) + 1e-3)
        hu[brain] = 32 + np.clip(contrast, -3, 3)[brain] * rng.uniform(1.5, 8)
        fluid = brain & (contrast < -1.3) & (rng.random() < 0.8)
        hu[fluid] = rng.uniform(0, 12)
    skull = (depth > scalp) & (depth <= bone)
    hu[skull] = rng.uniform(700, 1500)
    if rng.random() < 0.5:  # the head rest of the scanner's table, an arc under the head
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size:
            y, x = np.mgrid[0:side, 0:side] / side
            bottom = rows[-1] / side + rng.uniform(0.01, 0.05)
            arc = bottom - 0.8 * (x - 0.5) ** 2
            rest = (np.abs(y - arc) < rng.uniform(0.004, 0.015)) & ~mask
            hu[rest] = rng.uniform(-200, 300)
    hu += rng.normal(0, rng.uniform(2, 6), hu.shape)
    centre, width = [(40, 80), (40, 80), (75, 215), (600, 2800)][int(rng.integers(4))]
    grey = (hu - (centre - width / 2)) / width * 255
    return _to_image(grey).filter(ImageFilter.GaussianBlur(float(rng.uniform(0, 0.8))))


def _mri_texture(rng: np.random.Generator, side: int) -> Image.Image:
    coarse = rng.uniform(0, 255, (8, 8))
    return Image.fromarray(coarse.astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC)


def body_mri(rng: np.random.Generator, side: int) -> Image.Image:
    y, x = np.mgrid[0:side, 0:side] / side - 0.5
    if rng.random() < 0.5:  # an abdomen: a wide oval with organs and a spine
        body = (x / 0.47) ** 2 + (y / 0.32) ** 2 < 1
        values = body * 90.0 + (_depth(body, 6) < 5) * body * 90  # subcutaneous fat
        for _ in range(int(rng.integers(3, 7))):
            cx, cy = rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.15)
            r = rng.uniform(0.05, 0.15)
            values += (((x - cx) / r) ** 2 + ((y - cy) / (r * 0.8)) ** 2 < 1) * rng.uniform(-40, 80)
        values += ((x / 0.06) ** 2 + ((y - 0.2) / 0.06) ** 2 < 1) * 60
    else:  # a knee: two bones meeting, with dark cortex
        values = ((np.abs(x) < 0.3) & (np.abs(y) < 0.48)) * 70.0
        for sign in (-1, 1):
            bone = (np.abs(x) < 0.22) & (sign * y > 0.03) & (sign * y < 0.48)
            values = np.where(bone, 150.0, values)
            values -= _edge(bone) * 110
    textured = values * (1 + rng.normal(0, 0.06, values.shape))
    return _to_image(textured).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))


def _edge(mask: np.ndarray) -> np.ndarray:
    return mask & (_depth(mask, 3) < 3)


GENERATORS: dict[str, Generator] = {
    "noise": noise,
    "texture": texture,
    "blank": blank,
    "gradient": gradient,
    "shapes": shapes,
    "document": document,
    "screenshot": screenshot,
    "photo_like": photo_like,
    "chest_xray": chest_xray,
    "ct_head": ct_head,
    "body_mri": body_mri,
}


def generate(kind: str, rng: np.random.Generator, side: int = 256) -> Image.Image:
    return GENERATORS[kind](rng, side)


def encoded(image: Image.Image, rng: np.random.Generator) -> bytes:
    """JPEG or PNG bytes, as an upload would arrive."""
    buffer = io.BytesIO()
    if rng.random() < 0.5:
        image.convert("RGB").save(buffer, format="JPEG", quality=int(rng.integers(70, 96)))
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def generated_set(count_per_kind: int, seed: int, side: int = 256) -> Iterator[tuple[str, bytes]]:
    """(kind, encoded image) for `count_per_kind` images of every generated kind."""
    rng = np.random.default_rng(seed)
    for kind in GENERATORS:
        for _ in range(count_per_kind):
            yield kind, encoded(generate(kind, rng, int(rng.integers(side // 2, side * 2))), rng)


def package_images() -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of the pictures scikit-image and matplotlib ship, where they are installed."""
    folders = []
    for module, sub in (("skimage", "data"), ("matplotlib", "mpl-data/sample_data")):
        try:
            package = __import__(module)
        except ImportError:
            continue
        if package.__file__:
            folders.append(Path(package.__file__).parent / sub)
    for folder in folders:
        for path in sorted(folder.glob("*")):
            if path.suffix.lower() in {".png", ".jpg", ".jpeg"}:  # what uploads accept
                yield f"{folder.parent.name}/{path.name}", path.read_bytes()
