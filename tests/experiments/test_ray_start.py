"""Starting Ray prints nothing of Ray's own: its start-up notices stay off stderr (a fake `ray` stands in for it)."""

import logging
import sys
import types

from synthgap.experiments.backends import RAY_START_NOTICES, RayBackend, Resources

NOTICE = "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out."


def fake_ray() -> types.ModuleType:
    """What RayBackend calls of `ray`; `init` logs the notice as Ray 2.60 does on a local start."""
    ray = types.ModuleType("ray")
    ray.is_initialized = lambda: False
    ray.init = lambda **kwargs: logging.getLogger(RAY_START_NOTICES).warning(NOTICE)
    ray.cluster_resources = lambda: {"CPU": 2.0}
    ray.remote = lambda function: types.SimpleNamespace(options=lambda **kwargs: function)
    return ray


def test_a_local_ray_start_prints_no_notice(monkeypatch, caplog, capsys):
    monkeypatch.setitem(sys.modules, "ray", fake_ray())
    with caplog.at_level(logging.INFO):
        backend = RayBackend(Resources(cpus=1), address=None, workers=2)
    assert backend.slots == 2
    assert not [r for r in caplog.records if r.name.startswith("ray")]
    assert NOTICE not in capsys.readouterr().err
    assert logging.getLogger(RAY_START_NOTICES).level == logging.NOTSET  # restored after the start
