"""The registry of augmentation presets (name → class). Presets register themselves where they are defined
(`transforms.py`, `autoaugment.py`); `synthgap.data` imports both, so every preset is known once the package is."""

from __future__ import annotations

from synthgap.registry import Registry

AUGMENTATIONS: Registry[type] = Registry("augmentation preset")
