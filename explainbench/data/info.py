"""``DataInfo``: the facts about a dataset a method is built from, without the data itself.

A data module gives them with :meth:`~explainbench.data.base.ExplainDataModule.info` (cheap: no
image is read); :func:`~explainbench.methods.build.build_method` passes them to the method's
constructor, which saves them with its hyper-parameters and its checkpoint, so
:func:`~explainbench.methods.build.load_method` rebuilds the method from the checkpoint alone.
Every field is a plain type (int, str, float, lists, None): checkpoints holding them load
``weights_only``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..utils.image import IMAGENET_MEAN, IMAGENET_STD


def _names(values: Iterable[Any] | None) -> list[str] | None:
    return None if values is None else [str(v) for v in values]


@dataclass
class DataInfo:
    """What a method may need to know about its data.

    Attributes:
        num_classes: number of classes (the backbone's head follows it).
        class_names: one name per class, or None (sentences then use class indices).
        attribute_names: per-class attribute names (EAT), or None for data without attributes.
        landmark_names: names of the ``landmarks`` a batch carries (an8flower, CUB), or None.
        part_names: names of the values of ``part_ids`` (0: background; an8flower), or None.
        mean, std: the per-channel normalisation of the batches' ``image``.
        annotations: the optional batch keys the data yields (``mask``, ``bbox``, ...), sorted.
        multilabel: ``label`` holds ``num_classes`` independent 0/1 labels per image (CelebA's
            40 attributes) instead of one class index; the method's loss and accuracy follow it.
        channels: channels of the batches' ``image`` (3; MNIST with ``data.channels=1``: 1); the
            backbone's input must match. Checkpoints written before it existed read as 3.
    """

    num_classes: int
    class_names: list[str] | None = None
    attribute_names: list[str] | None = None
    landmark_names: list[str] | None = None
    part_names: list[str] | None = None
    mean: list[float] = IMAGENET_MEAN  # type: ignore[assignment]  # made a list below
    std: list[float] = IMAGENET_STD  # type: ignore[assignment]
    annotations: list[str] = ()  # type: ignore[assignment]
    multilabel: bool = False
    channels: int = 3

    def __post_init__(self) -> None:
        # whatever the data module holds (tuples, frozensets, OmegaConf lists) becomes plain
        self.num_classes = int(self.num_classes)
        self.class_names = _names(self.class_names)
        self.attribute_names = _names(self.attribute_names)
        self.landmark_names = _names(self.landmark_names)
        self.part_names = _names(self.part_names)
        self.mean = [float(v) for v in self.mean]
        self.std = [float(v) for v in self.std]
        self.annotations = sorted(str(a) for a in self.annotations)
        self.multilabel = bool(self.multilabel)
        self.channels = int(self.channels)
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")

    def to_dict(self) -> dict[str, Any]:
        """Plain containers only, for hyper-parameters and checkpoints."""
        return asdict(self)

    @classmethod
    def coerce(cls, value: DataInfo | Mapping | None, num_classes: int) -> DataInfo:
        """``value`` as a ``DataInfo``: as given, from its dict (a checkpoint, a config), or, for
        ``None`` (a method built by hand in a test or notebook), only the class count."""
        if value is None:
            return cls(num_classes=num_classes)
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        raise TypeError(f"data_info must be a DataInfo or a dict, got {type(value).__name__}.")

    @classmethod
    def from_dict(cls, value: Mapping) -> DataInfo:
        """The inverse of :meth:`to_dict` (also for a ``DictConfig``)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"Unknown data_info keys {unknown}; known: {sorted(known)}.")
        return cls(**dict(value))
