"""Class lists, name disambiguation, path sanitising, prompt templates and seeds: pure functions, no models."""

import json

import pytest

from synthgap.data.imagenet100 import imagenet100_wnids
from synthgap.data.sources import CIFAR10_CLASSES
from synthgap.errors import SynthgapError
from synthgap.generate.classes import load_classes, sanitise
from synthgap.generate.plan import Shard, batches, image_seed, shard_batches, text2img_items
from synthgap.generate.prompts import PromptMaker, check_templates


def test_builtin_lists_follow_their_data_sources_order():
    imagenet = load_classes("imagenet100")
    assert tuple(c.id for c in imagenet) == imagenet100_wnids()  # the imagenet100 source's label order
    by_id = {c.id: c for c in imagenet}
    assert by_id["n02107142"].name == "Doberman" and "Doberman pinscher" in by_id["n02107142"].synonyms
    assert by_id["n02107142"].folder == "n02107142"
    assert tuple(c.id for c in load_classes("cifar10")) == CIFAR10_CLASSES


def test_txt_csv_json_lists_with_extra_fields(tmp_path):
    (tmp_path / "a.txt").write_text("# comment\ntabby cat\n\nold/dog\n")
    assert [(c.id, c.folder) for c in load_classes(tmp_path / "a.txt")] == [
        ("tabby cat", "tabby_cat"),
        ("old/dog", "old_dog"),
    ]
    (tmp_path / "b.csv").write_text("id,name,synonyms,hypernym\nk1,kite,kite;kite bird,bird of prey\nk2,car,,\n")
    kite, car = load_classes(tmp_path / "b.csv")
    parsed = (kite.id, kite.name, kite.synonyms, kite.fields)
    assert parsed == ("k1", "kite", ("kite", "kite bird"), {"hypernym": "bird of prey"})
    assert car.fields == {} and car.synonyms == ()
    (tmp_path / "c.json").write_text(json.dumps(["ant", {"name": "bee", "wnid": "n1", "definition": "insect"}]))
    ant, bee = load_classes(tmp_path / "c.json")
    assert (ant.id, bee.id, bee.fields) == ("ant", "n1", {"definition": "insect"})


def test_duplicate_names_are_disambiguated(tmp_path):
    (tmp_path / "dup.json").write_text(
        json.dumps(
            [
                {"name": "crane", "id": "n02012849", "synonyms": ["crane", "wading bird"]},
                {"name": "crane", "id": "n03126707"},
                {"name": "Crane", "id": "n9"},
            ]
        )
    )
    names = [c.name for c in load_classes(tmp_path / "dup.json")]
    assert names == ["crane (wading bird)", "crane (n03126707)", "Crane (n9)"]
    (tmp_path / "syn.csv").write_text("name,synonyms\ncrane,wading bird\ncrane,lifting machine\n")
    assert [c.name for c in load_classes(tmp_path / "syn.csv")] == ["crane (wading bird)", "crane (lifting machine)"]


@pytest.mark.parametrize(
    "file, text, message",
    [
        ("dup.txt", "# fruit\nOat-Milk\napple\n\nOat-Milk\n", r"'Oat-Milk' is listed more than once \(lines 2, 5\)"),
        ("dup.txt", "cat\nCat\ndog\ndog\n", r"'cat' is listed more than once \(lines 1, 2\); 'dog' .*\(lines 3, 4\)"),
        ("dup.csv", "name,hypernym\napple,fruit\npear,fruit\napple,fruit\n", r"'apple' .*\(lines 2, 4\)"),
        ("dup.json", json.dumps(["ant", "bee", "ant"]), r"'ant' .*\(items 1, 3\)"),
    ],
)
def test_repeated_classes_are_an_error_naming_the_lines(tmp_path, file, text, message):
    (tmp_path / file).write_text(text)
    with pytest.raises(SynthgapError, match=message):
        load_classes(tmp_path / file)


@pytest.mark.parametrize(
    ("name", "folder"),
    [
        ("../../etc/passwd", "etc_passwd"),
        (".hidden", "hidden"),
        ("café au lait", "cafe_au_lait"),
        ("///", "class"),
        ("a" * 200, "a" * 80),
        ("Pembroke, Welsh corgi", "Pembroke_Welsh_corgi"),
    ],
)
def test_sanitise_makes_one_safe_path_component(name, folder):
    assert sanitise(name) == folder


def test_sanitised_collisions_and_reserved_names_get_suffixes(tmp_path):
    (tmp_path / "c.txt").write_text("a/b\na b\nA_B\npreviews\n")
    assert [c.folder for c in load_classes(tmp_path / "c.txt")] == ["a_b", "a_b_2", "A_B_3", "previews_2"]


def test_bad_class_lists_are_clear_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(SynthgapError, match="empty class list"):
        load_classes(tmp_path / "empty.txt")
    (tmp_path / "bad.csv").write_text("label\ncat\n")
    with pytest.raises(SynthgapError, match="'name' column"):
        load_classes(tmp_path / "bad.csv")
    with pytest.raises(SynthgapError, match="class list not found"):
        load_classes(tmp_path / "missing.txt")


def test_prompts_skip_templates_a_class_cannot_fill_and_depend_only_on_the_seed(tmp_path):
    (tmp_path / "c.csv").write_text("name,synonyms,hypernym\nkite,kite bird,bird of prey\ncar,,\n")
    kite, car = load_classes(tmp_path / "c.csv")
    maker = PromptMaker()
    check_templates(maker, [kite, car])
    assert maker.usable_templates(car) == ("a photo of a {name}", "{name} inside {background}")
    assert len(maker.usable_templates(kite)) == 4
    prompts = {maker(kite, seed)[0] for seed in range(40)}
    assert {"a photo of a kite", "kite, kite bird", "kite, bird of prey"} <= prompts
    assert maker(kite, 5) == maker(kite, 5)
    with pytest.raises(SynthgapError, match="unknown field"):
        check_templates(PromptMaker(templates=("a {colour} {name}",)), [kite])
    with pytest.raises(SynthgapError, match="no usable prompt template"):
        check_templates(PromptMaker(templates=("{name}, {hypernym}",)), [kite, car])


def test_seeds_and_shards_are_pure_functions_of_the_plan(tmp_path):
    classes = load_classes("cifar10")
    items = text2img_items(classes, 3, base_seed=0)
    assert image_seed(0, "cat", 2) == items[3 * 3 + 2].seed != image_seed(1, "cat", 2)
    assert len({item.seed for item in items}) == len(items)
    all_batches = batches(items, 4)
    parts = [shard_batches(all_batches, Shard(i, 3)) for i in range(3)]
    flat = sorted(item.file for part in parts for batch in part for item in batch)
    assert flat == sorted(item.file for item in items)  # every image in exactly one shard


@pytest.mark.parametrize("text", ["3/2", "2/2", "0/0", "-1/2", "1-2", "a/b"])
def test_bad_shards_are_rejected(text):
    with pytest.raises(SynthgapError, match="bad --shard"):
        Shard.parse(text)
