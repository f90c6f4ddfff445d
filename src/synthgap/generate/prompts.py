"""Prompt templates with fields, one template (and background) drawn per image from the image's own seed.

The defaults follow "Fake it till you make it" (Sariyildiz et al. 2023): the class name alone in a photo template,
the name with its synonyms, with its WordNet hypernym, and inside a scene background. Fields: ``{name}``, ``{id}``,
``{synonyms}`` (the synonyms other than the name, comma-separated), ``{hypernym}``, ``{definition}``,
``{background}``, ``{text}`` (free text from ``--text``) and any extra field of the class list. A template whose
field a class lacks (CIFAR-10 has no synonyms) is skipped for that class only.

An "a" or "an" written right before a field is made to agree with the value filled in: "a photo of a {name}" gives
"a photo of an apple". The rule is by spelling, kept simple: "an" before a vowel letter (accents ignored), with small
exception lists for a vowel letter that sounds like a consonant ("a unicorn", "a European", "a one-off") and a silent
"h" ("an hour", "an honest"). Acronyms and numbers are not read aloud ("a FBI agent", "a 8-ball"): write the template
without the article for such names.
"""

from __future__ import annotations

import random
import re
import string
import unicodedata
from collections.abc import Mapping
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
    "a kitchen",
    "a living room",
    "a forest",
    "a beach",
    "a city street",
    "a park",
    "a desert",
    "a field",
    "a garage",
    "a lake",
    "a mountain landscape",
    "an office",
    "a supermarket",
    "a garden",
    "a snowy landscape",
    "a river bank",
    "a museum",
    "a workshop",
    "a classroom",
    "a harbour",
)
# Word starts, lower-case, whose sound breaks the vowel-letter rule.
CONSONANT_SOUND_STARTS = ("uni", "use", "usu", "uku", "ure", "uro", "eu", "ewe", "one", "once", "ubiq", "uto")
SILENT_H_STARTS = ("hour", "honest", "honor", "honour", "heir")
ARTICLE_BEFORE_FIELD = re.compile(r"\b(a|an)(\s+)$", re.IGNORECASE)
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
        return fill_template(template, self.field_values(cls, background)), template


def indefinite_article(phrase: str) -> str:
    """ "a" or "an" for `phrase`, by its first letters (see the module docstring for the rule and its limits)."""
    start = unicodedata.normalize("NFKD", phrase.strip()).casefold()  # "É" → "e" + accent
    if start.startswith(SILENT_H_STARTS):
        return "an"
    if start.startswith(CONSONANT_SOUND_STARTS):
        return "a"
    return "an" if start[:1] in ("a", "e", "i", "o", "u") else "a"


def fill_template(template: str, values: Mapping[str, str]) -> str:
    """`template` with its fields filled from `values`, each "a"/"an" right before a field agreeing with its value."""
    formatter = string.Formatter()
    out = []
    for literal, field_name, spec, conversion in formatter.parse(template):
        if field_name is None:
            out.append(literal)
            continue
        value, _ = formatter.get_field(field_name, (), values)
        text = formatter.format_field(formatter.convert_field(value, conversion), spec or "")
        out.append(_agree(literal, text))
        out.append(text)
    return "".join(out)


def _agree(literal: str, value: str) -> str:
    """`literal` with a trailing article replaced by the one `value` needs, keeping a capital first letter."""
    match = ARTICLE_BEFORE_FIELD.search(literal)
    if match is None:
        return literal
    article = indefinite_article(value)
    if match.group(1)[0].isupper():
        article = article.capitalize()
    return literal[: match.start(1)] + article + match.group(2)


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
