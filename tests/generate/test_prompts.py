"""Prompt filling: the article before a field agrees with the value put in it."""

from __future__ import annotations

import pytest

from synthgap.generate.classes import ClassInfo
from synthgap.generate.prompts import PromptMaker, fill_template, indefinite_article


@pytest.mark.parametrize(
    "phrase, article",
    [
        ("Apple", "an"),
        ("Oat-Milk", "an"),
        ("egg", "an"),
        ("umbrella", "an"),
        ("Éclair", "an"),
        ("ice cream", "an"),
        ("banana", "a"),
        ("tabby cat", "a"),
        ("hour glass", "an"),
        ("honest face", "an"),
        ("unicorn", "a"),
        ("European robin", "a"),
        ("one-man band", "a"),
        ("ukulele", "a"),
        ("user manual", "a"),
        ("7-up can", "a"),
        ("yak", "a"),
        ("", "a"),
    ],
)
def test_indefinite_article(phrase, article):
    assert indefinite_article(phrase) == article


@pytest.mark.parametrize(
    "template, expected",
    [
        ("a photo of a {name}", "a photo of an Oat-Milk"),
        ("A {name} on a table", "An Oat-Milk on a table"),
        ("a photo of an {name}", "a photo of an Oat-Milk"),
        ("{name}, a {hypernym}", "Oat-Milk, a drink"),
        ("a banana{name}", "a bananaOat-Milk"),  # "a" only as a word of its own
        ("{{a}} a {name}!", "{a} an Oat-Milk!"),  # escaped braces stay literal
        ("a {name:>8}", "an Oat-Milk"),
    ],
)
def test_fill_template_fixes_the_article_before_a_field(template, expected):
    assert fill_template(template, {"name": "Oat-Milk", "hypernym": "drink"}) == expected


def test_prompt_maker_uses_the_corrected_article_and_keeps_the_template():
    apple = ClassInfo(id="Apple", name="Apple", folder="Apple")
    prompt, template = PromptMaker(templates=("a photo of a {name}",))(apple, seed=3)
    assert (prompt, template) == ("a photo of an Apple", "a photo of a {name}")
    pear = ClassInfo(id="pear", name="pear", folder="pear")
    assert PromptMaker(templates=("an image of an {name}",))(pear, seed=0)[0] == "an image of a pear"
