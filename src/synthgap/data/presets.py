"""The registry of augmentation presets (name → class). Presets register themselves where they are defined
(`transforms.py`, `autoaugment.py`); `transforms.py` imports `autoaugment.py`, so every preset is known once
`transforms` is (everything that reads presets reads them from there)."""

from __future__ import annotations

from synthgap.registry import Registry

AUGMENTATIONS: Registry[type] = Registry("augmentation preset")
