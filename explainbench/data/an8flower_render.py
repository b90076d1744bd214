"""Procedural an8flower renderer: pure numpy, deterministic from ``(seed, split, index)``.

an8Flower comes from Oramas, Wang & Tuytelaars, "Visual Explanation by Interpretation:
Improving Visual Feedback Capabilities of Deep Neural Networks" (ICLR 2019): synthetic
flowers whose class is the colour of one part, so the ground-truth explanation is that part.
This module re-creates the idea procedurally (nothing is downloaded or copied):

* a flower is a centre disc, 5-8 petals (a polar "rose" curve), a stem and two pointed
  leaves, with random position, scale, tilt, petal count and mild colour jitter;
* the background is a smooth noise texture (random crops/flips of a per-seed bank, so no
  fresh smooth noise is computed per image) tinted with one of ``K`` hues, plus 4-7
  distractor blobs painted in the *class colours*, so a colour histogram cannot give the
  class away: a model has to find the colour of the right *part*;
* ``single6c``: the centre's colour (6 colours) is the class; ``double12c``: the class is
  ``(part, colour)`` with part in {centre, leaves}; the other parts take neutral colours
  (brown centre, white petals, green leaves).

Every image is drawn on pixel-centre coordinates ``(j + 0.5, i + 0.5)``; landmarks use the
same continuous pixel coordinates, and boxes are ``xyxy`` pixel *edges* (``x2 = last
column + 1``), so a horizontal flip is ``x -> W - x`` for both.

All geometry is vectorised over a chunk of images; the only per-image Python work is one
``numpy.random.default_rng([seed, split, index])`` call that draws a fixed-length vector of
uniforms, which is what makes every image independent of the batch it is rendered in.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .base import SPLITS, check_split

VARIANTS = ("single6c", "double12c")
MIN_SIZE, MAX_SIZE = 32, 224

COLOUR_NAMES = ("red", "orange", "yellow", "cyan", "blue", "purple")
CLASS_RGB = np.array(
    [
        [0.86, 0.10, 0.10],
        [0.98, 0.55, 0.05],
        [0.95, 0.90, 0.12],
        [0.08, 0.80, 0.85],
        [0.15, 0.25, 0.92],
        [0.62, 0.15, 0.78],
    ],
    dtype=np.float32,
)
# Neutral colours of the parts that do not carry the class (and of the stem, always).
NEUTRAL_NAMES = {"centre": "brown", "petals": "white", "leaves": "green"}
NEUTRAL_RGB = {
    "centre": np.array([0.45, 0.29, 0.13], np.float32),
    "petals": np.array([0.94, 0.93, 0.88], np.float32),
    "leaves": np.array([0.30, 0.55, 0.20], np.float32),
    "stem": np.array([0.24, 0.44, 0.16], np.float32),
}

# Values of the per-pixel part map.
BACKGROUND, STEM, LEAVES, PETALS, CENTRE = 0, 1, 2, 3, 4
PART_NAMES = ("background", "stem", "leaves", "petals", "centre")
# Parts that can carry the class colour, in label order: label = part_slot * 6 + colour.
CLASS_PARTS = {"single6c": (CENTRE,), "double12c": (CENTRE, LEAVES)}
LANDMARK_NAMES = ("centre", "stem_base", "leaf_left", "leaf_right", "petal_tip")
MAX_DISTRACTORS = 7

# Layout of the per-image vector of uniforms (one rng call per image; never reorder, or
# every generated dataset changes).
_U_GEOMETRY = slice(0, 17)
_U_BIAS_COIN, _U_TINT = 17, 18
_U_TEXTURE = slice(19, 24)
_U_GRAIN = slice(24, 29)
_U_JITTER = slice(29, 39)
_U_NUM_DISTRACTORS = 39
_U_DISTRACTORS = slice(40, 40 + 6 * MAX_DISTRACTORS)
_NUM_UNIFORMS = 40 + 6 * MAX_DISTRACTORS

_TEXTURE_BANK = 24  # smooth background textures per (seed, size)
_GRAIN_BANK = 6  # fine pixel-noise fields per (seed, size)
_GRAIN_STD = 0.025
TINT_STRENGTH = 0.45


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown an8flower variant {variant!r}; valid variants: {', '.join(VARIANTS)}"
        )
    return variant


def check_image_size(image_size: int) -> int:
    if not isinstance(image_size, int | np.integer) or not MIN_SIZE <= image_size <= MAX_SIZE:
        raise ValueError(
            f"an8flower image_size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], "
            f"got {image_size!r}"
        )
    return int(image_size)


def num_classes(variant: str) -> int:
    return len(CLASS_PARTS[check_variant(variant)]) * len(COLOUR_NAMES)


def class_names(variant: str) -> list[str]:
    """``"centre: red"``, ... in label order (``double12c`` continues with ``"leaves: red"``)."""
    parts = CLASS_PARTS[check_variant(variant)]
    return [f"{PART_NAMES[p]}: {c}" for p in parts for c in COLOUR_NAMES]


def attribute_names() -> list[str]:
    """One attribute per (part, colour) the part can take, the neutral colour included.

    The same 15 attributes for both variants, so attribute vectors are comparable:
    ``centre: red..purple, centre: brown, petals: white, leaves: red..purple, leaves: green``.
    """
    names = [f"centre: {c}" for c in (*COLOUR_NAMES, NEUTRAL_NAMES["centre"])]
    names.append(f"petals: {NEUTRAL_NAMES['petals']}")
    names += [f"leaves: {c}" for c in (*COLOUR_NAMES, NEUTRAL_NAMES["leaves"])]
    return names


def class_attributes(variant: str) -> np.ndarray:
    """``[K, A]`` float32 0/1 table: the attributes every image of class ``k`` has."""
    names = attribute_names()
    table = np.zeros((num_classes(variant), len(names)), np.float32)
    for label in range(table.shape[0]):
        part, colour = _label_to_part_colour(variant, label)
        for p in ("centre", "petals", "leaves"):
            value = COLOUR_NAMES[colour] if PART_NAMES[part] == p else NEUTRAL_NAMES[p]
            table[label, names.index(f"{p}: {value}")] = 1.0
    return table


def _label_to_part_colour(variant: str, label: int) -> tuple[int, int]:
    slot, colour = divmod(int(label), len(COLOUR_NAMES))
    return CLASS_PARTS[variant][slot], colour


def tint_palette(k: int) -> np.ndarray:
    """``[k, 3]`` background tints: ``k`` evenly spaced hues at saturation 0.5."""
    hue = np.arange(k, dtype=np.float32) / k
    # HSV -> RGB with v = 1, s = 0.5, written out to avoid a colorsys loop
    rgb = np.clip(np.abs((hue[:, None] * 6 + np.array([0, 4, 2])) % 6 - 3) - 1, 0, 1)
    return (1 - 0.5 * (1 - rgb)).astype(np.float32)


@dataclass(frozen=True)
class FlowerBatch:
    """Rendered flowers, numpy arrays with a leading batch axis ``N``.

    ``parts`` is the per-pixel part id (0 background, 1 stem, 2 leaves, 3 petals, 4 centre);
    ``part_id`` is the id of each image's discriminative part, so ``mask = parts > 0`` and
    ``part_mask = parts == part_id``. ``tint`` is the background tint index (the hue a biased
    training split ties to the class).
    """

    image: np.ndarray  # uint8 [N,3,H,W]
    parts: np.ndarray  # uint8 [N,H,W]
    label: np.ndarray  # int64 [N]
    part_id: np.ndarray  # int64 [N]
    bbox: np.ndarray  # float32 [N,4] xyxy pixel edges of the flower
    landmarks: np.ndarray  # float32 [N,5,3] (x, y, visible)
    attributes: np.ndarray  # float32 [N,A]
    tint: np.ndarray  # int64 [N]
    index: np.ndarray  # int64 [N]

    @property
    def mask(self) -> np.ndarray:
        return self.parts > 0

    @property
    def part_mask(self) -> np.ndarray:
        return self.parts == self.part_id[:, None, None]

    def __len__(self) -> int:
        return len(self.label)


class FlowerRenderer:
    """Draws an8flower images for one ``(seed, variant, image_size, bias)``.

    Args:
        seed: dataset seed; with ``(split, index)`` it fixes every image.
        variant: ``"single6c"`` or ``"double12c"``.
        image_size: side in pixels, 32-224.
        bias: probability that a *train* image's background tint is its class's tint
            (val/test tints are always independent of the class).
    """

    def __init__(
        self, seed: int = 0, variant: str = "single6c", image_size: int = 64, bias: float = 0.0
    ) -> None:
        self.variant = check_variant(variant)
        self.size = check_image_size(image_size)
        if not 0.0 <= float(bias) <= 1.0:
            raise ValueError(f"an8flower bias must be in [0, 1], got {bias!r}")
        self.seed = int(seed)
        self.bias = float(bias)
        self.num_classes = num_classes(variant)
        self._attributes = class_attributes(variant)
        self._tints = tint_palette(self.num_classes)
        self._textures, self._grain = _texture_banks(self.seed, self.size)
        # pixel centres
        self._coords = np.arange(self.size, dtype=np.float32) + 0.5
        # big images are drawn in smaller chunks to bound the temporaries (~1M pixels)
        self._chunk = max(1, (1 << 20) // (self.size * self.size))

    def render(self, split: str, indices) -> FlowerBatch:
        """Render images ``indices`` (ints >= 0) of ``split``; the result is the same whatever
        the batch they are rendered with."""
        split_id = SPLITS.index(check_split(split))
        indices = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        if indices.size and indices.min() < 0:
            raise ValueError("an8flower indices must be >= 0")
        chunks = [
            self._render_chunk(split_id, indices[s : s + self._chunk])
            for s in range(0, len(indices), self._chunk)
        ] or [self._render_chunk(split_id, indices)]
        if len(chunks) == 1:
            return chunks[0]
        return FlowerBatch(
            *(np.concatenate(f) for f in zip(*(_fields(c) for c in chunks), strict=True))
        )

    # -- one chunk ------------------------------------------------------------------------
    def _render_chunk(self, split_id: int, indices: np.ndarray) -> FlowerBatch:
        n = len(indices)
        u = np.empty((n, _NUM_UNIFORMS), np.float64)
        for row, index in enumerate(indices.tolist()):
            u[row] = np.random.default_rng([self.seed, split_id, index]).random(_NUM_UNIFORMS)
        # float32 can round a uniform up to 1.0, which floor(u * k) would turn into k
        u = np.minimum(u.astype(np.float32), np.float32(1 - 2**-24))
        # Labels cycle through the classes, so every split (and every prefix) is balanced.
        label = indices % self.num_classes
        slot, colour = np.divmod(label, len(COLOUR_NAMES))
        part_id = np.asarray(CLASS_PARTS[self.variant], np.int64)[slot]
        tint = np.floor(u[:, _U_TINT] * self.num_classes).astype(np.int64)
        if split_id == 0 and self.bias > 0:
            tint = np.where(u[:, _U_BIAS_COIN] < self.bias, label, tint)

        geo = _Geometry(u[:, _U_GEOMETRY], self.size)
        parts = geo.draw_parts(self._coords)
        # One colour table per image, indexed by a per-pixel code: 0 the tinted background
        # (scaled by the texture below), 1-4 the flower parts, 5.. the distractors. A single
        # gather then paints everything, which is much cheaper than per-layer np.where.
        table = np.empty((n, 5 + MAX_DISTRACTORS, 3), np.float32)
        table[:, 0] = (1 - TINT_STRENGTH) + TINT_STRENGTH * self._tints[tint]
        table[:, 1:5] = _part_palette(part_id, colour, u[:, _U_JITTER])[:, 1:]
        code = self._distractors(u, table)
        np.copyto(code, parts, where=parts > 0)
        shade = self._crop(self._textures, u[:, _U_TEXTURE])
        shade[code > 0] = 1.0
        rows = np.arange(n)[:, None, None]
        image = np.empty((n, 3, self.size, self.size), np.float32)
        for c in range(3):
            np.multiply(table[:, :, c][rows, code], shade, out=image[:, c])
        image += self._crop(self._grain, u[:, _U_GRAIN], channels=True)
        image *= 255.0
        image += 0.5
        np.clip(image, 0, 255, out=image)

        return FlowerBatch(
            image=image.astype(np.uint8),
            parts=parts,
            label=label,
            part_id=part_id,
            bbox=_bbox(parts > 0),
            landmarks=geo.landmarks(),
            attributes=self._attributes[label],
            tint=tint,
            index=indices.copy(),
        )

    def _distractors(self, u: np.ndarray, table: np.ndarray) -> np.ndarray:
        """Paint 4-7 elliptic blobs in random class colours (independent of the label) into
        a ``[N,H,W]`` code map (``5 + k`` for blob ``k``) and their colours into ``table``."""
        n, s, xs = len(u), self.size, self._coords
        d = u[:, _U_DISTRACTORS].reshape(n, MAX_DISTRACTORS, 6).transpose(2, 1, 0)[..., None, None]
        count = 4 + np.floor(u[:, _U_NUM_DISTRACTORS] * 4)  # 4..7
        code = np.zeros((n, s, s), np.uint8)
        for k in range(MAX_DISTRACTORS):
            dx = xs[None, None, :] - d[0, k] * s
            dy = xs[None, :, None] - d[1, k] * s
            # from smaller to larger than a centre disc, so size does not single it out
            ra = s * (0.03 + 0.07 * d[2, k])
            rb = ra * (0.55 + 0.45 * d[3, k])
            c, sn = np.cos(d[4, k] * np.pi), np.sin(d[4, k] * np.pi)
            p = dx * (c / ra) + dy * (sn / ra)
            q = dy * (c / rb) - dx * (sn / rb)
            inside = p * p + q * q <= 1.0
            inside &= (k < count)[:, None, None]
            code[inside] = 5 + k
            table[:, 5 + k] = CLASS_RGB[np.minimum((d[5, k, :, 0, 0] * 6).astype(np.int64), 5)]
        return code

    def _crop(self, bank: np.ndarray, u: np.ndarray, channels: bool = False) -> np.ndarray:
        """Random ``size x size`` crop of a ``2size``-sided bank entry, with random flips.

        ``u`` columns: bank entry, x offset, y offset, flip x, flip y. ``bank`` is
        ``[T, S, S]``, or ``[T, 3, S, S]`` with ``channels``."""
        s, n = self.size, len(u)
        entry = np.minimum((u[:, 0] * len(bank)).astype(np.int64), len(bank) - 1)
        ar = np.arange(s)
        ox, oy = (u[:, 1] * s).astype(np.int64), (u[:, 2] * s).astype(np.int64)
        cols = np.where(u[:, 3:4] < 0.5, ar, ar[::-1])[:, None, :] + ox[:, None, None]
        rows = np.where(u[:, 4:5] < 0.5, ar, ar[::-1])[:, :, None] + oy[:, None, None]
        if not channels:
            return bank[entry.reshape(n, 1, 1), rows, cols]
        ch = np.arange(3).reshape(1, 3, 1, 1)
        return bank[entry.reshape(n, 1, 1, 1), ch, rows[:, None], cols[:, None]]


class _Geometry:
    """Flower shape parameters for a chunk (vectors of length N, pixel units)."""

    def __init__(self, u: np.ndarray, size: int) -> None:
        self.size = size
        self.radius = size * (0.13 + 0.06 * u[:, 0])  # petal tips
        self.tilt = np.deg2rad(-35 + 70 * u[:, 1])
        self.petals = 5 + np.floor(u[:, 2] * 4)  # 5..8
        self.petal_power = 0.45 + 0.4 * u[:, 3]  # fatter petals for smaller powers
        self.trough = 0.3 + 0.1 * u[:, 4]  # petal boundary between petals, / radius
        self.centre_r = self.radius * (0.36 + 0.06 * u[:, 5])
        self.stem_len = self.radius * (2.0 + 1.3 * u[:, 6])
        self.stem_half = np.maximum(0.6, self.radius * (0.06 + 0.03 * u[:, 7]))
        self.leaf_at = self.radius * (1.35 + 0.25 * u[:, 8])  # along the stem
        # per side (left = -1, right = +1): angle from "up", half length, half width
        self.leaf_angle = np.deg2rad(55 + 25 * u[:, 9:11])
        self.leaf_half = self.radius[:, None] * (0.45 + 0.15 * u[:, 11:13])
        self.leaf_width = self.leaf_half * (0.32 + 0.1 * u[:, 13:15])
        self.cos, self.sin = np.cos(self.tilt), np.sin(self.tilt)
        self.cx, self.cy = self._place(u[:, 15], u[:, 16])

    # flower frame: u to the flower's right, v down the stem; image = centre + R(tilt) (u, v)
    def _to_image(self, fu, fv, cx=None, cy=None):
        cx = 0.0 if cx is None else cx
        cy = 0.0 if cy is None else cy
        c, s = self.cos[:, None], self.sin[:, None]  # fu, fv are [N, points]
        return cx + fu * c - fv * s, cy + fu * s + fv * c

    def _leaf_axes(self):
        side = np.array([-1.0, 1.0], np.float32)
        du, dv = side * np.sin(self.leaf_angle), -np.cos(self.leaf_angle)  # [N,2]
        lu = self.leaf_half * du
        lv = self.leaf_at[:, None] + self.leaf_half * dv
        return lu, lv, du, dv

    def _place(self, ux: np.ndarray, uy: np.ndarray):
        """Centre position such that the head and both leaves lie inside the image (1 px
        margin), so the discriminative part is always visible; the stem may leave it."""
        lu, lv, du, dv = self._leaf_axes()
        # leaf centres and tips, relative to the flower centre, in image axes
        leaf_x, leaf_y = self._to_image(
            np.concatenate([lu, lu + self.leaf_half * du], 1),
            np.concatenate([lv, lv + self.leaf_half * dv], 1),
        )
        r = self.radius[:, None]
        pad = self.leaf_width.max(1) + 1.0
        pos = []
        for rel, unit in ((leaf_x, ux), (leaf_y, uy)):
            lo = pad - np.minimum(rel, -r).min(1)
            hi = self.size - pad - np.maximum(rel, r).max(1)
            hi = np.maximum(hi, lo)  # too big to fit: pin it to one side
            pos.append(lo + unit * (hi - lo))
        return pos[0], pos[1]

    def draw_parts(self, coords: np.ndarray) -> np.ndarray:
        """Per-pixel part ids ``[N,H,W]`` uint8, later parts painted over earlier ones."""
        col = lambda a: a[:, None, None]  # noqa: E731
        dx = coords[None, None, :] - col(self.cx)
        dy = coords[None, :, None] - col(self.cy)
        fu = dx * col(self.cos) + dy * col(self.sin)
        fv = dy * col(self.cos) - dx * col(self.sin)
        parts = np.zeros(fu.shape, np.uint8)

        stem = (np.abs(fu) <= col(self.stem_half)) & (fv >= 0) & (fv <= col(self.stem_len))
        parts[stem] = STEM
        lu, lv, du, dv = self._leaf_axes()
        for k in range(2):
            a = fu - col(lu[:, k])
            b = fv - col(lv[:, k])
            along = (a * col(du[:, k]) + b * col(dv[:, k])) / col(self.leaf_half[:, k])
            across = np.abs(b * col(du[:, k]) - a * col(dv[:, k]))
            # a pointed leaf: width shrinks as 1 - t^2 towards both tips
            parts[across <= col(self.leaf_width[:, k]) * (1 - along * along)] = LEAVES
        r2 = fu * fu + fv * fv
        head = r2 <= col(self.radius * self.radius)
        # polar rose: |cos(n phi / 2)| has n lobes, the first pointing up (phi = 0)
        phi = np.arctan2(fu[head], -fv[head])
        idx = np.nonzero(head)
        n_img = idx[0]
        lobe = np.abs(np.cos(0.5 * self.petals[n_img] * phi)) ** self.petal_power[n_img]
        trough = self.trough[n_img]
        boundary = self.radius[n_img] * (trough + (1 - trough) * lobe)
        petal = r2[head] <= boundary * boundary
        parts[idx[0][petal], idx[1][petal], idx[2][petal]] = PETALS
        parts[r2 <= col(self.centre_r * self.centre_r)] = CENTRE
        return parts

    def landmarks(self) -> np.ndarray:
        """``[N,5,3]`` (x, y, visible): centre, stem base, left/right leaf centre, top petal
        tip (at 0.85 of the petal length, inside the petal). Visible = inside the image."""
        lu, lv, _, _ = self._leaf_axes()
        zero = np.zeros_like(self.radius)
        fu = np.stack([zero, zero, lu[:, 0], lu[:, 1], zero], 1)
        fv = np.stack([zero, self.stem_len, lv[:, 0], lv[:, 1], -0.85 * self.radius], 1)
        x, y = self._to_image(fu, fv, self.cx[:, None], self.cy[:, None])
        visible = (x >= 0) & (x < self.size) & (y >= 0) & (y < self.size)
        return np.stack([x, y, visible], -1).astype(np.float32)


def _part_palette(part_id: np.ndarray, colour: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """``[N,5,3]`` colour of each part id per image, with mild jitter (+-0.05 per channel for
    centre, petals, leaves; +-0.05 brightness for the stem)."""
    n = len(part_id)
    pal = np.zeros((n, 5, 3), np.float32)
    for pid, name in ((CENTRE, "centre"), (PETALS, "petals"), (LEAVES, "leaves")):
        pal[:, pid] = np.where((part_id == pid)[:, None], CLASS_RGB[colour], NEUTRAL_RGB[name])
    pal[:, [CENTRE, PETALS, LEAVES]] += 0.1 * (jitter[:, :9].reshape(n, 3, 3) - 0.5)
    pal[:, STEM] = NEUTRAL_RGB["stem"] * (0.95 + 0.1 * jitter[:, 9:10])
    return np.clip(pal, 0, 1)


def _bbox(mask: np.ndarray) -> np.ndarray:
    """Tight ``xyxy`` box of each ``[N,H,W]`` mask in pixel edges (empty mask -> zeros)."""
    n, h, w = mask.shape
    rows, cols = mask.any(2), mask.any(1)
    y1 = rows.argmax(1)
    y2 = h - rows[:, ::-1].argmax(1)
    x1 = cols.argmax(1)
    x2 = w - cols[:, ::-1].argmax(1)
    box = np.stack([x1, y1, x2, y2], 1).astype(np.float32)
    box[~rows.any(1)] = 0
    return box


def _fields(batch: FlowerBatch) -> tuple:
    return tuple(getattr(batch, f) for f in FlowerBatch.__dataclass_fields__)


@functools.lru_cache(maxsize=8)
def _texture_banks(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-(seed, size) banks, ``2size`` pixels a side: smooth luminance textures in
    [0.35, 0.85] (three octaves of bilinearly upsampled noise) and fine grain noise.

    Computing smooth noise per image would dominate the render time; random crops and flips
    of a bank give plenty of variety at the cost of one gather."""
    rng = np.random.default_rng([seed, 0x7E57])
    side = 2 * size
    tex = np.zeros((_TEXTURE_BANK, side, side), np.float32)
    for cells, weight in ((4, 1.0), (9, 0.5), (20, 0.25)):
        grid = rng.random((_TEXTURE_BANK, cells + 1, cells + 1)).astype(np.float32)
        tex += weight * _upsample(grid, side)
    lo = tex.min((1, 2), keepdims=True)
    hi = tex.max((1, 2), keepdims=True)
    tex = 0.35 + 0.5 * (tex - lo) / (hi - lo)
    grain = rng.normal(0, _GRAIN_STD, (_GRAIN_BANK, 3, side, side)).astype(np.float32)
    # shared by every renderer with this (seed, size): nobody may write to them
    tex.setflags(write=False)
    grain.setflags(write=False)
    return tex, grain


def _upsample(grid: np.ndarray, side: int) -> np.ndarray:
    """Bilinear upsampling of ``[T, g, g]`` grids to ``[T, side, side]``."""
    g = grid.shape[1] - 1
    t = (np.arange(side, dtype=np.float32) + 0.5) * g / side
    i = np.minimum(t.astype(np.int64), g - 1)
    f = t - i
    rows = grid[:, i] * (1 - f)[None, :, None] + grid[:, i + 1] * f[None, :, None]
    return rows[:, :, i] * (1 - f) + rows[:, :, i + 1] * f


@functools.lru_cache(maxsize=4)
def _renderer(seed: int, variant: str, image_size: int, bias: float) -> FlowerRenderer:
    return FlowerRenderer(seed, variant, image_size, bias)


def render_sample(
    seed: int,
    split: str,
    index: int,
    variant: str = "single6c",
    image_size: int = 64,
    bias: float = 0.0,
) -> FlowerBatch:
    """Render one image (a :class:`FlowerBatch` with ``N = 1``); identical to the same
    ``(seed, split, index)`` rendered inside any batch."""
    return _renderer(
        int(seed), check_variant(variant), check_image_size(image_size), float(bias)
    ).render(split, [index])
