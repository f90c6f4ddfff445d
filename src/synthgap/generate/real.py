"""Real images as the input of a generator (unCLIP variations, img2img): the source's classes and one item per
(real image, variation).

The classes and their order are the source's own, so a generated set lines up with that source in experiments. A
class list given beside the source (`--classes`) only supplies prompt names and fields; its classes must be the
source's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synthgap.errors import SynthgapError
from synthgap.generate.classes import ClassInfo, finish_classes, load_classes
from synthgap.generate.plan import Item, image_seed

if TYPE_CHECKING:
    from PIL import Image

    from synthgap.data.index import LabelledIndex
    from synthgap.data.items import ImageItems


def source_classes(index: LabelledIndex, class_list: str | None = None) -> list[ClassInfo]:
    """The source's classes as ClassInfo, in the source's order.

    Without `class_list`, ids are the source's and ImageNet wnids get their readable names. With one, each class takes
    its entry in the list (name, synonyms, extra prompt fields), matched by id; both must hold the same classes."""
    if class_list is None:
        from synthgap.data.imagenet100 import load_imagenet100_classes

        names = {e["wnid"]: e for e in load_imagenet100_classes()}
        raw = [{"id": c, "name": names[c]["name"] if c in names else c} for c in index.classes]
        return finish_classes(raw, where=index.name)
    listed = {cls.id: cls for cls in load_classes(class_list)}
    missing = [c for c in index.classes if c not in listed]
    extra = sorted(set(listed) - set(index.classes))
    if missing or extra:
        parts = [
            f"not in the list: {', '.join(missing[:8])}" if missing else "",
            f"not in the source: {', '.join(extra[:8])}" if extra else "",
        ]
        raise SynthgapError(
            f"the classes of --classes {class_list} are not those of the source {index.name} "
            f"({'; '.join(p for p in parts if p)}); give a class list with the source's class ids, or none"
        )
    return [listed[c] for c in index.classes]


def real_images(index: LabelledIndex) -> dict[int, list[ImageItems]]:
    """Each class's images (by label, in index order), one item each: files with absolute paths (workers may run
    elsewhere), dataset rows as they are."""
    from synthgap.data.items import FileItems

    items = index.items
    by_label: dict[int, list[ImageItems]] = {}
    for position, label in enumerate(index.labels.tolist()):
        one = items.select([position])
        if isinstance(one, FileItems):
            one = FileItems((one.files[0].absolute(),))
        by_label.setdefault(label, []).append(one)
    return by_label


def variation_items(
    index: LabelledIndex, classes: list[ClassInfo], per_class: int | None, variations: int, base_seed: int
) -> list[Item]:
    """Class-major items: real image j of a class gives indices j*k .. j*k+k-1."""
    by_label = real_images(index)
    items = []
    for label, cls in enumerate(classes):
        for j, source in enumerate(by_label.get(label, [])[:per_class]):
            for v in range(variations):
                position = j * variations + v
                items.append(Item(label, cls, position, image_seed(base_seed, cls.id, position), source))
    return items


def describe_source(item: Item, variations: int) -> dict[str, Any]:
    """The manifest fields of an image made from a real one: which real image, and which of its variations."""
    return {"variation": item.index % variations, "source": item.source.name(0) if item.source else None}


def load_rgb(source: ImageItems | None) -> Image.Image:
    """A real image (an item of one image: a file, a dataset row) as RGB, decoded in full."""
    if source is None:
        raise ValueError("no source image")
    with source.open(0) as image:
        return image.convert("RGB")


def square(image: Image.Image, size: int) -> Image.Image:
    """The image's centre square at `size` × `size` (shorter side resized, bicubic): the input img2img starts from."""
    from PIL import Image

    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
