from tests.generate.tiny_pipelines import _offline, reference_set, tiny_text2img, tiny_unclip  # noqa: F401
