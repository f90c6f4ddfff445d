"""The Python API as a notebook uses it: `synthgap.run` on a dict or YAML spec, DataFrames of the results, the report,
a cheap `import synthgap`, and the walkthrough in docs/api.md executed as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

import synthgap
from synthgap.errors import SynthgapError
from tests.specs import TINY_MODEL, tiny_raw

DOC = Path(__file__).resolve().parent.parent / "docs" / "api.md"


BASELINES = [{"kind": "baseline", "sides": ["real", "synthetic"]}]


def test_run_returns_typed_results_and_resumes_from_a_yaml_string(cifake_root, tmp_path):
    out = tmp_path / "exp"
    frame = synthgap.run(tiny_raw(cifake_root, BASELINES, name="api"), out=out, progress=False)
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(frame) == len(lines) == 2
    assert list(frame["run"]) == [line["run"] for line in lines]
    assert sorted(frame["side"]) == ["real", "synthetic"]
    assert frame["top1"].tolist() == [line["top1"] for line in lines]
    assert frame["train_images"].tolist() == [20, 20]  # 10 classes × per_class 2
    dtypes = frame.dtypes
    for name in ("seed", "epochs", "n_transferred", "train_images", "num_layers", "skipped_images"):
        assert dtypes[name] == "int64", name
    for name in ("top1", "top5", "seconds", "real_fraction", "balanced_top1"):
        assert dtypes[name] == "float64", name
    assert dtypes["frozen"] == "bool" and dtypes["reused_model"] == "bool"
    for name in ("run", "kind", "side", "target", "source", "compute.device", "compute.precision"):
        assert isinstance(dtypes[name], pd.StringDtype), name
    assert frame["source"].isna().all()  # null in every baseline: typed from the record class, not object
    assert dtypes["compute.threads"] == "int64" and "compute" not in frame
    assert not {"classes", "confusion", "per_class_top1"} & set(frame.columns)

    again = synthgap.run(yaml.safe_dump(tiny_raw(cifake_root, BASELINES, name="api")), out=out, progress=False)
    pd.testing.assert_frame_equal(again, frame)  # the same runs: recorded, not trained again
    assert synthgap.load_results(out, lists=True)["confusion"].map(len).tolist() == [10, 10]


def test_per_class_columns_follow_the_baselines_class_order(cifake_root, tmp_path):
    out = tmp_path / "exp"
    synthgap.run(tiny_raw(cifake_root, BASELINES, name="api"), out=out, progress=False)
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    classes = lines[0]["classes"]
    frame = synthgap.load_results(out, per_class=True)
    columns = [f"top1.{name}" for name in classes]
    assert [c for c in frame.columns if c.startswith("top1.")] == columns
    for row, line in zip(frame[columns].itertuples(index=False), lines, strict=True):
        assert list(row) == pytest.approx(
            [float("nan") if v is None else v for v in line["per_class_top1"]], nan_ok=True
        )
    assert (frame[columns].dtypes == "float64").all()

    report = synthgap.report(out)
    assert report == out / "report.md" and report.is_file() and (out / "report.html").is_file()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"recipe": {"epochs": 0}}, "recipe.epochs"),
        ({"experiments": [{"kind": "nonsense"}]}, "experiments"),
        ({"surprise": 1}, "surprise: unknown key"),
    ],
)
def test_a_bad_spec_is_a_synthgap_error(cifake_root, tmp_path, change, message):
    with pytest.raises(SynthgapError, match=re.escape(message)):
        synthgap.run({**tiny_raw(cifake_root, BASELINES, name="api"), **change}, out=tmp_path / "exp")
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("name: [unclosed", "spec: not valid YAML"),
        ("just words", "spec: expected a mapping at the top level"),
        ("/nonexistent/spec.yaml", "config file not found: /nonexistent/spec.yaml"),
    ],
)
def test_spec_text_and_paths_are_checked(tmp_path, spec, message):
    with pytest.raises(SynthgapError, match=re.escape(message)):
        synthgap.run(spec, out=tmp_path / "exp")


def test_unknown_options_and_missing_results_are_synthgap_errors(cifake_root, tmp_path):
    with pytest.raises(SynthgapError, match="unknown option.*epoch\\b.*known: data_root"):
        synthgap.run(tiny_raw(cifake_root, BASELINES, name="api"), out=tmp_path / "exp", epoch=2)
    with pytest.raises(SynthgapError, match="no results.jsonl in"):
        synthgap.load_results(tmp_path / "nothing")
    with pytest.raises(SynthgapError, match="no analysis.jsonl in"):
        synthgap.load_analysis(tmp_path / "nothing")
    with pytest.raises(SynthgapError, match="train needs the training data"):
        synthgap.train(out=tmp_path / "one")


@pytest.mark.parametrize("out", [None, 5, ""])
def test_an_out_that_is_no_path_is_one_line_at_every_entry_point(cifake_root, out):
    message = f"out must be a folder path (a str or a pathlib.Path), got {out!r}"
    for call in (synthgap.run, synthgap.api.run_records, synthgap.api.dry_run):
        with pytest.raises(SynthgapError, match=re.escape(message)):
            call(tiny_raw(cifake_root, BASELINES, name="api"), out=out)
    with pytest.raises(SynthgapError, match=re.escape(message)):
        synthgap.train("cifake:real", out=out, data_root=cifake_root)
    for call in (synthgap.report, synthgap.load_results, synthgap.load_analysis, synthgap.analyze):
        with pytest.raises(SynthgapError, match="folder must be a folder path"):
            call(out)


def test_an_out_that_is_a_file_is_one_line_not_an_os_error(cifake_root, tmp_path):
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a folder")
    for call in (synthgap.run, synthgap.api.run_records, synthgap.api.dry_run):
        with pytest.raises(SynthgapError, match=re.escape(str(a_file))):
            call(tiny_raw(cifake_root, BASELINES, name="api"), out=a_file)
    with pytest.raises(SynthgapError, match=re.escape(str(a_file))):
        synthgap.train("cifake:real", out=a_file / "sub", data_root=cifake_root)
    assert a_file.read_text() == "not a folder"


@pytest.mark.parametrize(("key", "value"), [("seeds", "0,1"), ("n", "4"), ("seeds", [0, 1.5]), ("seeds", 3)])
def test_seeds_and_n_must_be_lists_of_whole_numbers(cifake_root, tmp_path, key, value):
    with pytest.raises(SynthgapError, match=f"^{key}: expected"):
        synthgap.run(tiny_raw(cifake_root, BASELINES, name="api"), out=tmp_path / "exp", **{key: value})


def test_train_records_one_run(cifake_root, tmp_path):
    record = synthgap.train(
        "cifake:synthetic",
        out=tmp_path / "one",
        data_root=cifake_root,
        per_class="2",
        epochs=1,
        width=TINY_MODEL["width"],
        batch_size=4,
        precision="fp32",
        progress=False,
    )
    assert record.run == "baseline-synthetic-s0" and record.train_images == 20 and record.side == "synthetic"
    frame = synthgap.load_results(tmp_path / "one")
    assert frame["run"].tolist() == ["baseline-synthetic-s0"] and frame["top1"].iloc[0] == record.top1


def test_load_analysis_flattens_rows(tmp_path):
    from synthgap.analysis.rows import AnalysisRow, write_analysis

    common = {
        "layer": 1,
        "num_layers": 18,
        "model": "resnet18",
        "runs": ["a", "b"],
        "seeds": [0, 0],
        "model_keys": ["k1", "k2"],
        "images": {"test": 20},
        "settings": {"batch": 8},
        "definition": "d",
    }
    rows = [
        AnalysisRow(measure="cka", value=0.5, pair="R~S", **common),
        AnalysisRow(measure="probe_top1", value=None, student="R", note="n/a", **common),
    ]
    write_analysis(tmp_path, rows)
    frame = synthgap.load_analysis(tmp_path)
    assert frame["measure"].tolist() == ["cka", "probe_top1"]
    assert frame["value"].dtype == "float64" and frame["value"].isna().tolist() == [False, True]
    assert frame["layer"].dtype == "int64" and frame["images.test"].tolist() == [20, 20]
    assert "runs" not in frame and synthgap.load_analysis(tmp_path, lists=True)["runs"].iloc[0] == ["a", "b"]


@pytest.mark.slow
@pytest.mark.parametrize("module", ["synthgap", "synthgap.api", "synthgap.frames"])
def test_import_synthgap_loads_neither_torch_nor_pandas(module):
    code = f"import sys, {module}; print(sorted({{'torch', 'pandas', 'torchvision'}} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_dataframe_readers_are_one_function_under_every_name():
    """`load_results` and `load_analysis` live in `synthgap.frames`; the API and the package hand out the same."""
    import synthgap.frames

    for name in ("load_results", "load_analysis"):
        assert getattr(synthgap, name) is getattr(synthgap.api, name) is getattr(synthgap.frames, name), name


def test_api_names_survive_importing_their_subpackages():
    import synthgap.report.build  # noqa: F401
    import synthgap.train.loop  # noqa: F401
    from synthgap.api import report, train

    assert synthgap.train is train and synthgap.report is report
    assert sys.modules["synthgap.train"].__name__ == "synthgap.train"


README = DOC.parent.parent / "README.md"


def doc_blocks(text: str | None = None) -> list[str]:
    text = DOC.read_text(encoding="utf-8") if text is None else text
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def readme_section(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def run_blocks(blocks: list[str], where: Path, settings: dict) -> dict:
    """Run documented ```python blocks in order in one namespace, the first one (where the data are and how large
    the experiment is, which must set exactly the names of `settings`) replaced by `settings`."""
    import matplotlib

    matplotlib.use("Agg")
    first, *rest = blocks
    assert set(settings) == set(re.findall(r"^([A-Z_]+) =", first, flags=re.M)), f"{where}'s first block sets these"
    namespace = dict(settings)
    for block in rest:
        exec(compile(block, str(where), "exec"), namespace)
    return namespace


def tiny_settings(cifake_root: Path, out: Path) -> dict:
    return {
        "DATA_ROOT": str(cifake_root),
        "OUT": str(out),
        "PER_CLASS": 2,
        "EPOCHS": 1,
        "WIDTH": TINY_MODEL["width"],
        "N": [4, 16],
    }


def test_the_notebook_section_of_the_readme_runs(cifake_root, tmp_path, monkeypatch):
    """The README's "From Python or a notebook" blocks, as written, on tiny settings over the test images."""
    monkeypatch.chdir(tmp_path)
    blocks = doc_blocks(readme_section("From Python or a notebook"))
    frame = run_blocks(blocks, README, tiny_settings(cifake_root, tmp_path / "readme"))["frame"]
    assert set(frame["kind"]) == {"baseline", "layer_transfer"} and len(frame) == 4
    assert (tmp_path / "readme" / "sweep.png").is_file()


def test_the_walkthrough_in_docs_api_md_runs(cifake_root, tmp_path, monkeypatch):
    """Every ```python block of docs/api.md, as written, on tiny settings over the test images."""
    monkeypatch.chdir(tmp_path)
    frame = run_blocks(doc_blocks(), DOC, tiny_settings(cifake_root, tmp_path / "notebook"))["frame"]
    assert set(frame["kind"]) == {"baseline", "layer_transfer"} and len(frame) == 4
    assert (tmp_path / "notebook" / "report.md").is_file()
    assert (tmp_path / "notebook" / "top1.png").is_file()
