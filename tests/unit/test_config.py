"""Settings: defaults, LAMINA_* variables, and flags on top."""

from __future__ import annotations

from pathlib import Path

from lamina.config import Settings


def test_layers_of_configuration() -> None:
    env = {"LAMINA_PORT": "9100", "LAMINA_IDLE_TIMEOUT": "2.5", "LAMINA_DATA_DIR": "/tmp/x"}
    s = Settings.from_environ(env, port=9200, host=None)
    assert s.port == 9200  # a flag beats the variable
    assert s.idle_timeout == 2.5
    assert s.data_dir == Path("/tmp/x")
    assert s.host == "127.0.0.1"
    assert s.endpoint == "http://127.0.0.1:9200"
    assert Settings.from_environ({}).port == 9000
