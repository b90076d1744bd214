"""The an8flower generator is checked against its own ground truth, not just run."""

from __future__ import annotations

import numpy as np
import pytest

from explainbench.data.an8flower_render import (
    CENTRE,
    CLASS_RGB,
    LANDMARK_NAMES,
    LEAVES,
    NEUTRAL_RGB,
    PETALS,
    TINT_STRENGTH,
    FlowerRenderer,
    attribute_names,
    class_attributes,
    class_names,
    num_classes,
    render_sample,
    tint_palette,
)

N = 240  # images per property check: ~0.1 s to render at 64 px


@pytest.fixture(scope="module")
def single() -> FlowerRenderer:
    return FlowerRenderer(seed=3, variant="single6c", image_size=64)


@pytest.fixture(scope="module")
def batch(single):
    return single.render("test", np.arange(N))


def pixels(batch) -> np.ndarray:
    """``[N,H,W,3]`` float pixels in [0,1]."""
    return batch.image.transpose(0, 2, 3, 1).astype(np.float32) / 255.0


# -- determinism -------------------------------------------------------------------------
def test_same_key_same_image_whatever_the_batch(single):
    alone = render_sample(3, "test", 17)
    again = render_sample(3, "test", 17)
    in_batch = single.render("test", [5, 17, 40])
    np.testing.assert_array_equal(alone.image, again.image)
    np.testing.assert_array_equal(alone.image[0], in_batch.image[1])
    np.testing.assert_array_equal(alone.parts[0], in_batch.parts[1])
    np.testing.assert_array_equal(alone.landmarks[0], in_batch.landmarks[1])


def test_chunked_render_matches_single_renders():
    # 224 px renders in chunks of 20 images: a chunk boundary must not change anything
    big = FlowerRenderer(0, "single6c", 224)
    assert big._chunk < 25
    batch = big.render("val", np.arange(big._chunk - 1, big._chunk + 1))
    for row, index in enumerate(batch.index):
        np.testing.assert_array_equal(
            batch.image[row], render_sample(0, "val", int(index), image_size=224).image[0]
        )


def test_splits_and_seeds_differ(single):
    a = single.render("train", np.arange(8)).image
    b = single.render("val", np.arange(8)).image
    c = FlowerRenderer(seed=4).render("train", np.arange(8)).image
    for other in (b, c):
        # every image differs, not just some
        assert all((x != y).mean() > 0.2 for x, y in zip(a, other, strict=True))


# -- geometry and annotations --------------------------------------------------------------
def test_shapes_and_dtypes(batch):
    assert batch.image.shape == (N, 3, 64, 64) and batch.image.dtype == np.uint8
    assert batch.parts.shape == (N, 64, 64)
    assert batch.landmarks.shape == (N, len(LANDMARK_NAMES), 3)
    assert batch.attributes.shape == (N, len(attribute_names()))
    np.testing.assert_array_equal(batch.index, np.arange(N))
    # labels cycle through the classes: every split is balanced
    np.testing.assert_array_equal(np.bincount(batch.label), [N // 6] * 6)


def test_part_mask_inside_flower_mask_and_never_empty(batch):
    assert not (batch.part_mask & ~batch.mask).any()
    assert batch.part_mask.sum((1, 2)).min() >= 20  # a centre disc of radius >= 2.8 px
    # the flower never fills the image: there is background to be cluttered
    assert batch.mask.mean((1, 2)).max() < 0.5


def test_bbox_is_the_tight_box_of_the_mask(batch):
    for box, mask in zip(batch.bbox, batch.mask, strict=True):
        rows, cols = np.nonzero(mask)
        # pixel edges: x2 is one past the last column
        np.testing.assert_array_equal(box, [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        assert 0 <= box[0] < box[2] <= 64 and 0 <= box[1] < box[3] <= 64


def _part_near(parts: np.ndarray, x: float, y: float, part: int, radius: int = 1) -> bool:
    i, j = int(y), int(x)
    window = parts[max(i - radius, 0) : i + radius + 1, max(j - radius, 0) : j + radius + 1]
    return bool((window == part).any())


def test_landmarks_land_on_their_parts(batch):
    names = list(LANDMARK_NAMES)
    for parts, lm in zip(batch.parts, batch.landmarks, strict=True):
        x, y, visible = lm[names.index("centre")]
        assert visible == 1 and parts[int(y), int(x)] == CENTRE  # exactly on the disc
        for name, part in (("leaf_left", LEAVES), ("leaf_right", LEAVES), ("petal_tip", PETALS)):
            x, y, visible = lm[names.index(name)]
            assert visible == 1, name  # placement keeps head and leaves inside
            assert _part_near(parts, x, y, part), name
    # left leaf is on the flower's left: in the flower frame, before the tilt of at most 35 deg
    left, right = (
        batch.landmarks[:, names.index("leaf_left")],
        batch.landmarks[:, names.index("leaf_right")],
    )
    assert (left[:, 0] < right[:, 0]).mean() > 0.9


def test_landmarks_outside_the_image_are_invisible(batch):
    xy, visible = batch.landmarks[..., :2], batch.landmarks[..., 2]
    inside = ((xy >= 0) & (xy < 64)).all(-1)
    np.testing.assert_array_equal(visible, inside.astype(np.float32))
    # the stem base does leave the image sometimes, so the invisible case is exercised
    assert 0 < (visible[:, LANDMARK_NAMES.index("stem_base")] == 0).sum() < N


# -- the class is in the part, and only there ------------------------------------------------
def _mean_colours(batch, region: np.ndarray) -> np.ndarray:
    img = pixels(batch)
    return np.stack([img[i][region[i]].mean(0) for i in range(len(img))])


def _class_colour_fractions(batch, region: np.ndarray) -> np.ndarray:
    """``[N, 6]``: fraction of the region's pixels within 0.15 (RGB distance) of each
    class colour."""
    img = pixels(batch)
    out = np.zeros((len(img), len(CLASS_RGB)), np.float32)
    for i in range(len(img)):
        values = img[i][region[i]]
        dist = ((values[:, None] - CLASS_RGB[None]) ** 2).sum(-1)
        out[i] = (dist < 0.15**2).mean(0)
    return out


def _nearest_centroid_accuracy(features: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fit class means on the first half, classify the second half."""
    half = len(labels) // 2
    centroids = np.stack([features[:half][labels[:half] == c].mean(0) for c in range(k)])
    pred = ((features[half:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((pred == labels[half:]).mean())


@pytest.mark.parametrize("variant", ["single6c", "double12c"])
def test_label_is_recoverable_from_the_part_only(variant):
    renderer = FlowerRenderer(seed=0, variant=variant, image_size=64)
    batch = renderer.render("test", np.arange(480))
    k = renderer.num_classes
    # inside the part: the nearest class colour is the label's colour, for every image
    inside = _mean_colours(batch, batch.part_mask)
    colour = ((inside[:, None] - CLASS_RGB[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(colour, batch.label % 6)
    assert _nearest_centroid_accuracy(inside, batch.label % 6, 6) == 1.0
    # outside it (background, distractors in class colours, neutral parts): chance level.
    # 240 test images: the std of a chance-level accuracy is ~0.024, so +0.1 is > 4 sigma.
    outside = _mean_colours(batch, ~batch.part_mask)
    assert _nearest_centroid_accuracy(outside, batch.label, k) <= 1 / k + 0.1
    # A finer probe than the mean: how much of each class colour there is outside the part
    # (distractors, in any class colour). A leak of the class colour anywhere would show here.
    near = _class_colour_fractions(batch, ~batch.part_mask)
    assert _nearest_centroid_accuracy(near, batch.label, k) <= 1 / k + 0.1


def test_double12c_neutral_parts():
    batch = FlowerRenderer(seed=0, variant="double12c").render("val", np.arange(24))
    leaves = _mean_colours(batch, batch.parts == LEAVES)
    centre = _mean_colours(batch, batch.parts == CENTRE)
    petals = _mean_colours(batch, batch.parts == PETALS)
    for i, label in enumerate(batch.label):
        part, colour = divmod(int(label), 6)
        coloured, neutral, name = (
            (centre, leaves, "leaves") if part == 0 else (leaves, centre, "centre")
        )
        # colour jitter is +-0.05 per channel, grain std 0.025 (averaged out over the part)
        assert np.abs(coloured[i] - CLASS_RGB[colour]).max() < 0.08
        assert np.abs(neutral[i] - NEUTRAL_RGB[name]).max() < 0.08
        assert np.abs(petals[i] - NEUTRAL_RGB["petals"]).max() < 0.08
    np.testing.assert_array_equal(batch.part_id, np.where(batch.label < 6, CENTRE, LEAVES))


# -- the bias knob -------------------------------------------------------------------------
def _tint_from_pixels(batch, k: int) -> np.ndarray:
    """Background hue index read back from the image: the median background chromaticity
    (the median ignores the distractor blobs) against the tint palette."""
    img = pixels(batch)
    bg = np.stack([np.median(img[i][~batch.mask[i]], 0) for i in range(len(img))])
    chroma = bg / bg.sum(1, keepdims=True)
    palette = (1 - TINT_STRENGTH) + TINT_STRENGTH * tint_palette(k)
    palette = palette / palette.sum(1, keepdims=True)
    return ((chroma[:, None] - palette[None]) ** 2).sum(-1).argmin(1)


def test_bias_ties_background_to_class_in_train_only():
    n = 360
    biased = FlowerRenderer(seed=1, bias=0.7)
    train, val = biased.render("train", np.arange(n)), biased.render("val", np.arange(n))
    # the hue can be read from the pixels, so what we measure is what a model would see
    assert (_tint_from_pixels(train, 6) == train.tint).mean() > 0.95
    # P(tint == label) = bias + (1 - bias) / K in train; 1 / K elsewhere
    train_rate = (_tint_from_pixels(train, 6) == train.label).mean()
    val_rate = (_tint_from_pixels(val, 6) == val.label).mean()
    assert abs(train_rate - (0.7 + 0.3 / 6)) < 0.08, train_rate
    assert val_rate < 1 / 6 + 0.08, val_rate
    assert (
        FlowerRenderer(seed=1, bias=1.0).render("train", np.arange(60)).tint == np.arange(60) % 6
    ).all()
    # the knob changes the background tint only: the flower is the same pixels
    unbiased = FlowerRenderer(seed=1, bias=0.0).render("train", np.arange(n))
    np.testing.assert_array_equal(unbiased.parts, train.parts)
    same_tint = unbiased.tint == train.tint
    assert 0 < same_tint.sum() < n
    np.testing.assert_array_equal(unbiased.image[same_tint], train.image[same_tint])
    flower = train.mask[:, None].repeat(3, 1)
    np.testing.assert_array_equal(unbiased.image[flower], train.image[flower])


# -- names, attributes, sizes, errors ------------------------------------------------------
def test_variants_classes_and_attributes():
    assert num_classes("single6c") == 6 and num_classes("double12c") == 12
    assert class_names("single6c")[0] == "centre: red"
    assert class_names("double12c")[6:] == [
        f"leaves: {c}" for c in ("red", "orange", "yellow", "cyan", "blue", "purple")
    ]
    names = attribute_names()
    assert len(names) == 15 and "petals: white" in names and "leaves: green" in names
    table = class_attributes("double12c")
    # every class has exactly one colour per part: centre, petals, leaves
    np.testing.assert_array_equal(table.sum(1), 3)
    on = lambda label: {names[j] for j in np.nonzero(table[label])[0]}  # noqa: E731
    assert on(0) == {"centre: red", "petals: white", "leaves: green"}
    assert on(10) == {"centre: brown", "petals: white", "leaves: blue"}
    np.testing.assert_array_equal(class_attributes("single6c"), table[:6])
    batch = FlowerRenderer(variant="double12c").render("train", np.arange(12))
    np.testing.assert_array_equal(batch.attributes, table[batch.label])


@pytest.mark.parametrize("size", [32, 128])
def test_other_sizes(size):
    batch = FlowerRenderer(image_size=size).render("train", np.arange(6))
    assert batch.image.shape == (6, 3, size, size)
    assert (batch.bbox[:, 2:] <= size).all() and batch.part_mask.any((1, 2)).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "triple18c"}, "single6c, double12c"),
        ({"image_size": 16}, "[32, 224]"),
        ({"image_size": 225}, "[32, 224]"),
        ({"image_size": 64.0}, "integer"),
        ({"bias": 1.5}, "[0, 1]"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FlowerRenderer(**kwargs)


def test_bad_split_and_index():
    with pytest.raises(ValueError, match="train, val, test"):
        render_sample(0, "validation", 0)
    with pytest.raises(ValueError, match=">= 0"):
        render_sample(0, "train", -1)
