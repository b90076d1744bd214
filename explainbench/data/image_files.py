"""``ImageFilesDataModule``: the preprocessing settings of the data modules that read annotated
image files (CUB, SUN Attribute, attribute folders, CelebA, iNaturalist), checked once here.

Each of them resizes (and crops) the image with its annotations through one
:class:`~explainbench.data.transforms.JointTransform` per split, and skips unreadable files
(:func:`~explainbench.data.folder.collate_skipping_none`).
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import ExplainDataModule
from .folder import collate_skipping_none
from .transforms import JointTransform


def check_sizes(image_size: int, resize_size: int | None) -> None:
    if image_size < 1:
        raise ValueError(f"data.image_size must be >= 1, got {image_size}")
    # a crop larger than the resized image would need padding, which would move no annotation
    if resize_size is not None and resize_size < image_size:
        raise ValueError(
            f"data.resize_size ({resize_size}) must be >= data.image_size ({image_size}), "
            "or null to resize straight to image_size x image_size"
        )


class ImageFilesDataModule(ExplainDataModule):
    """Preprocessing settings and the joint transform of each split.

    Args:
        image_size: side of the square the model sees (224).
        resize_size: shorter side before the ``image_size`` crop (256); ``None`` resizes
            straight to ``image_size`` square (no crop, the whole image stays in view).
        augment: random crop + horizontal flip for training (False: eval preprocessing).
        **kwargs: loader settings, see :class:`~explainbench.data.base.ExplainDataModule`.
    """

    collate_fn = staticmethod(collate_skipping_none)

    def __init__(
        self,
        image_size: int = 224,
        resize_size: int | None = 256,
        augment: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        check_sizes(image_size, resize_size)
        self.image_size, self.resize_size, self.augment = image_size, resize_size, augment

    def joint_transform(self, split: str, landmark_names: Sequence[str] = ()) -> JointTransform:
        """The preprocessing of ``split``: augmented for training when ``augment`` is on."""
        return JointTransform(
            split == "train" and self.augment,
            self.image_size,
            self.resize_size,
            self.mean,
            self.std,
            landmark_names,
        )
