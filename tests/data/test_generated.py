"""The `generated:` source's manifest: every file stays inside the folder, every line has the right shape, every
image matches its sha256 (checked once per version of the files). Sets are written by hand: tiny PNG bytes, no
generation pipeline."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from synthgap.data import generated
from synthgap.data.sources import open_source
from synthgap.errors import SynthgapError

CLASSES = ("apple", "plum")


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (seed * 40 % 256, 30, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_set(root: Path, per_class: int = 2) -> list[dict]:
    """A generate-like output folder: <class>/<class>_<i>.png and a manifest line (class, file, sha256) each."""
    records = []
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            data = png(c * per_class + i)
            file = f"{name}/{name}_{i:05d}.png"
            (root / file).write_bytes(data)
            records.append({"class": name, "index": i, "file": file, "sha256": hashlib.sha256(data).hexdigest()})
    write_manifest(root, records)
    return records


def write_manifest(root: Path, records: list) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (root / generated.MANIFEST).write_text("\n".join(lines) + "\n")
    return root / generated.MANIFEST


def test_a_well_formed_set_is_indexed_in_manifest_order(tmp_path):
    records = write_set(tmp_path / "gen")
    index = open_source(f"generated:{tmp_path / 'gen'}")
    assert index.classes == CLASSES and index.counts() == {"apple": 2, "plum": 2}
    assert index.paths == tuple(tmp_path / "gen" / r["file"] for r in records)


@pytest.mark.parametrize("escape", ["../outside.png", "absolute", "apple/../../outside.png"])
def test_a_file_outside_the_folder_is_refused_with_its_line(tmp_path, escape):
    root = tmp_path / "gen"
    records = write_set(root)
    outside = tmp_path / "outside.png"
    outside.write_bytes(png(9))
    records[2] = {**records[2], "file": str(outside) if escape == "absolute" else escape}
    manifest = write_manifest(root, records)
    with pytest.raises(SynthgapError) as caught:
        open_source(f"generated:{root}")
    assert str(caught.value).startswith(f"{manifest}, line 3: file {records[2]['file']!r} lies outside {root}")


def test_a_symlink_leading_out_of_the_folder_is_refused(tmp_path):
    root = tmp_path / "gen"
    records = write_set(root)
    outside = tmp_path / "elsewhere" / "x.png"
    outside.parent.mkdir()
    outside.write_bytes((root / records[1]["file"]).read_bytes())  # the right bytes: only the place is wrong
    (root / records[1]["file"]).unlink()
    (root / records[1]["file"]).symlink_to(outside)
    with pytest.raises(SynthgapError, match=rf"line 2: file '{records[1]['file']}' lies outside"):
        open_source(f"generated:{root}")


def test_a_symlink_within_the_folder_is_read(tmp_path):
    root = tmp_path / "gen"
    records = write_set(root)
    (root / "store").mkdir()
    moved = root / "store" / "a.png"
    (root / records[0]["file"]).rename(moved)
    (root / records[0]["file"]).symlink_to(moved)
    assert open_source(f"generated:{root}").paths[0] == root / records[0]["file"]


MALFORMED = {
    "a-list": ("[1, 2, 3]", "expected a JSON object, got list"),
    "no-class": ('{"file": "apple/apple_00000.png", "sha256": "' + "0" * 64 + '"}', "class missing"),
    "class-a-number": ('{"class": 3, "file": "x.png", "sha256": "' + "0" * 64 + '"}', "class missing"),
    "no-sha256": ('{"class": "apple", "file": "apple/apple_00000.png"}', "sha256 missing"),
    "bad-sha256": ('{"class": "apple", "file": "apple/apple_00000.png", "sha256": "xyz"}', "is not a SHA-256"),
    "not-json": ('{"class": "apple", "fi', "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_line_of_the_wrong_shape_names_the_manifest_and_its_line(tmp_path, case):
    line, expected = MALFORMED[case]
    root = tmp_path / "gen"
    records = write_set(root, per_class=3)
    manifest = write_manifest(root, [*records[:3], "", *records[3:4], line, *records[4:]])  # a blank line counts too
    with pytest.raises(SynthgapError) as caught:
        open_source(f"generated:{root}")
    message = str(caught.value)
    assert message.startswith(f"corrupt {manifest}, line 6: ") and expected in message, message


def test_a_changed_image_is_named(tmp_path):
    root = tmp_path / "gen"
    records = write_set(root)
    (root / records[3]["file"]).write_bytes(png(7))  # decodable, but not what was generated
    with pytest.raises(SynthgapError) as caught:
        open_source(f"generated:{root}")
    assert str(caught.value).startswith(
        f"image {root / records[3]['file']} does not match its sha256 in {root / generated.MANIFEST}, line 4:"
    )


def test_digests_are_checked_once_per_version_of_the_files(tmp_path, monkeypatch):
    root = tmp_path / "gen"
    records = write_set(root)
    hashed: list[Path] = []
    digest = generated.file_digest
    monkeypatch.setattr(generated, "file_digest", lambda path: hashed.append(path) or digest(path))
    open_source(f"generated:{root}")
    assert len(hashed) == 4
    open_source(f"generated:{root}")
    assert len(hashed) == 4  # nothing changed: remembered
    # a swapped file keeping the size and the mtime (as `cp -p` of another image would) is still checked again
    target = root / records[0]["file"]
    st = target.stat()
    swapped = png(1)[: st.st_size].ljust(st.st_size, b"\0")
    target.write_bytes(swapped)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(SynthgapError, match="does not match its sha256"):
        open_source(f"generated:{root}")
    assert len(hashed) == 8


def test_a_missing_image_is_still_counted(tmp_path):
    root = tmp_path / "gen"
    records = write_set(root)
    (root / records[0]["file"]).unlink()
    with pytest.raises(SynthgapError, match="1 images listed .* are missing"):
        open_source(f"generated:{root}")


def test_a_symlink_loop_is_named_not_a_crash(tmp_path):
    root = tmp_path / "gen"
    records = write_set(root)
    (root / records[0]["file"]).unlink()
    (root / records[0]["file"]).symlink_to(root / "loop")
    (root / "loop").symlink_to(root / records[0]["file"])
    with pytest.raises(SynthgapError, match=rf"line 1: file '{records[0]['file']}' cannot be resolved"):
        open_source(f"generated:{root}")


def test_a_line_relabelled_by_hand_is_refused_by_every_reader(tmp_path):
    records = write_set(tmp_path / "gen")
    records[0] = {**records[0], "class": "plum"}  # apple/apple_00000.png now claims to be a plum
    write_manifest(tmp_path / "gen", records)
    with pytest.raises(SynthgapError) as caught:
        open_source(f"generated:{tmp_path / 'gen'}")
    message = str(caught.value)
    manifest = tmp_path / "gen" / generated.MANIFEST
    assert message.startswith(f"{manifest}, line 1: apple/apple_00000.png has class 'plum'")
    assert "\n" not in message
