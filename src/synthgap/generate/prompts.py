"""Prompt templates with fields, one template (and background) drawn per image from the image's own seed.

The defaults follow "Fake it till you make it" (Sariyildiz et al. 2023): the class name alone in a photo template,
the name with its synonyms, with its WordNet hypernym, and inside a scene background. Fields: ``{name}``, ``{id}``,
``{synonyms}`` (the synonyms other than the name, comma-separated), ``{hypernym}``, ``{definition}``,
``{background}``, ``{text}`` (free text from ``--text``) and any extra field of the class list. A template whose
field a class lacks (CIFAR-10 has no synonyms) is skipped for that class only.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from pathlib import Path

from synthgap.errors import SynthgapError
from synthgap.generate.classes import ClassInfo

DEFAULT_TEMPLATES = (
    "a photo of a {name}",
    "{name}, {synonyms}",
    "{name}, {hypernym}",
    "{name} inside {background}",
)
# A few everyday scenes (Fake-it used Places365 category names); replace with --backgrounds FILE.
DEFAULT_BACKGROUNDS = (
    "a kitchen", "a living room", "a forest", "a beach", "a city street", "a park", "a desert", "a field",
    "a garage", "a lake", "a mountain landscape", "an office", "a supermarket", "a garden", "a snowy landscape",
    "a river bank", "a museum", "a workshop", "a classroom", "a harbour",
)  # fmt: skip
STANDARD_FIELDS = frozenset({"name", "id", "synonyms", "hypernym", "definition", "background", "text"})


@dataclass(frozen=True)
class PromptMaker:
    """Builds the prompt of one image from its class and seed: a pure function, so resumes rebuild it exactly."""

    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    backgrounds: tuple[str, ...] = DEFAULT_BACKGROUNDS
    text: str = ""

    def usable_templates(self, cls: ClassInfo) -> tuple[str, ...]:
        """The templates all of whose fields this class has a value for."""
        values = self.field_values(cls, background="?")
        return tuple(t for t in self.templates if all(values.get(f) for f in template_fields(t)))

    def field_values(self, cls: ClassInfo, background: str) -> dict[str, str]:
        synonyms = [s for s in cls.synonyms if s.casefold() != cls.name.casefold()]
        return {
            "background": background,
            "text": self.text,
            **cls.fields,
            "name": cls.name,
            "id": cls.id,
            "synonyms": ", ".join(synonyms),
        }

    def __call__(self, cls: ClassInfo, seed: int) -> tuple[str, str]:
        """(prompt, template) for the image with this seed."""
        rng = random.Random(seed)  # its own RNG: the choice never depends on which other images ran before
        template = rng.choice(self.usable_templates(cls))
        background = rng.choice(self.backgrounds)
        return template.format_map(self.field_values(cls, background)), template


def template_fields(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise SynthgapError(f"bad prompt template {template!r}: {exc}") from None


def check_templates(maker: PromptMaker, classes: list[ClassInfo]) -> None:
    """Every field must be known, and every class needs at least one usable template."""
    if not maker.templates:
        raise SynthgapError("no prompt templates given")
    known = STANDARD_FIELDS | {key for cls in classes for key in cls.fields}
    for template in maker.templates:
        fields = template_fields(template)
        bad = [f for f in fields if not f.isidentifier() or f not in known]
        if bad:
            raise SynthgapError(
                f"prompt template {template!r} uses unknown field(s) {bad}; known fields: {', '.join(sorted(known))}"
            )
        if "text" in fields and not maker.text:
            raise SynthgapError(f"prompt template {template!r} uses {{text}} but no --text was given")
    stuck = [cls.name for cls in classes if not maker.usable_templates(cls)]
    if stuck:
        raise SynthgapError(
            f"no usable prompt template for class(es) {stuck[:5]}: each template needs a field they lack; add a "
            "template with only {name}, e.g. 'a photo of a {name}'"
        )


def load_backgrounds(path: Path | None) -> tuple[str, ...]:
    """Backgrounds from a text file (one per line), or the built-in list."""
    if path is None:
        return DEFAULT_BACKGROUNDS
    path = Path(path).expanduser()
    if not path.is_file():
        raise SynthgapError(f"backgrounds file not found: {path}")
    lines = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if not lines:
        raise SynthgapError(f"backgrounds file {path} is empty")
    return lines
