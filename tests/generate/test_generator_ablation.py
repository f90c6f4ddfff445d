"""The generator-choice ablation on sets made by the tiny local pipelines: text-to-image vs unCLIP variations."""

from synthgap.experiments.runner import run_experiment
from synthgap.generate.unclip import UnclipConfig, generate_unclip
from synthgap.report.build import build_report
from tests.specs import tiny_spec


def test_text2img_and_unclip_sets_are_compared_on_the_same_real_test_set(
    reference_set, tiny_unclip, cifake_root, tmp_path, monkeypatch
):
    variations = tmp_path / "unclip"
    config = UnclipConfig(
        out=variations,
        source="cifake:real",
        data_root=cifake_root,
        model=str(tiny_unclip),
        per_class=3,
        variations=1,
        size=32,
        steps=2,
        batch_size=5,
    )
    generate_unclip(config, progress=False)
    data = {"data_root": str(cifake_root), "real": "cifake:real", "synthetic": f"generated:{reference_set}"}
    experiments = [
        {"kind": "baseline", "sides": ["real"]},
        {
            "kind": "generator",
            "sources": {"text2img": f"generated:{reference_set}", "unclip": f"generated:{variations}"},
        },
    ]
    spec = tiny_spec(None, experiments, recipe={"batch_size": 8}, name="generators", data=data)
    records = {
        r.run: r for r in run_experiment(spec, tmp_path / "out", model_cache=tmp_path / "models", progress=False)
    }
    text2img, unclip = records["ablation-generator-text2img-s0"], records["ablation-generator-unclip-s0"]
    assert text2img.target == f"generated:{reference_set}" and unclip.target == f"generated:{variations}"
    assert text2img.train_images == unclip.train_images == 30 and text2img.model_key != unclip.model_key
    assert all(r.test == "cifake:real" and 0 <= r.top1 <= 100 for r in (text2img, unclip))
    report = build_report(tmp_path / "out").read_text()
    assert "### Synthetic source (generator choice)" in report and f"| unclip | generated:{variations} |" in report
