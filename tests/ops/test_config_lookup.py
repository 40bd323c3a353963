"""Which config a command uses, said on stderr: --config, $QLIK2MQTT_CONFIG, ./config.yaml,
this user's one running bridge, the defaults; several running bridges and none named is exit
2 listing them (it went on with the defaults, 127.0.0.1:1883 and no credentials)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.ops.lookup import AmbiguousConfigError, choose_config
from bridge.ops.running import RunningBridge

ONE = RunningBridge(pid=101, config=Path("/srv/a/config.yaml"), state_file=Path("/srv/a/s.json"))
TWO = RunningBridge(pid=202, config=None, state_file=Path("/srv/b/state.json"))


def test_the_order(tmp_path: Path) -> None:
    named, env = Path("/etc/named.yaml"), "/etc/env.yaml"
    assert choose_config(named, env, tmp_path, bridges=[ONE]).path == named
    assert choose_config(None, env, tmp_path, bridges=[ONE]).path == Path(env)
    assert choose_config(None, None, tmp_path, bridges=[ONE]).path == ONE.config
    (tmp_path / "config.yaml").write_text("{}\n")
    local = choose_config(None, None, tmp_path, bridges=[ONE, TWO])  # before the bridges
    assert (local.path, local.said) == (
        Path("config.yaml"),
        f"config: {tmp_path / 'config.yaml'} (in the current folder)",
    )


def test_the_running_bridge_and_the_defaults(tmp_path: Path) -> None:
    one = choose_config(None, None, tmp_path, bridges=[ONE])
    assert one.said == "config: the running bridge's (pid 101, /srv/a/config.yaml)"
    on_defaults = choose_config(None, None, tmp_path, bridges=[TWO])
    assert (on_defaults.path, on_defaults.state_file) == (None, TWO.state_file)
    run = choose_config(None, None, tmp_path, with_running=False, bridges=[ONE])
    assert run.path is None  # `run` never borrows another bridge's config
    assert run.said == "config: none (built-in defaults and QLIK2MQTT_* variables)"
    with pytest.raises(AmbiguousConfigError) as caught:
        choose_config(None, None, tmp_path, bridges=[ONE, TWO])
    assert str(caught.value) == (
        "2 bridges are running (pid 101: /srv/a/config.yaml; pid 202: built-in defaults): "
        "name the config of the one you mean with --config (or $QLIK2MQTT_CONFIG)"
    )


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A live process other than this one, for a second running bridge's note."""
    process = subprocess.Popen(["sleep", "60"])
    yield process.pid
    process.kill()
    process.wait()


def command(cwd: Path, runtime: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QLIK2MQTT_")}
    env["XDG_RUNTIME_DIR"] = str(runtime)
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_two_running_bridges_and_none_named_is_exit_2(tmp_path: Path, sleeper: int) -> None:
    runtime = tmp_path / "runtime"
    (runtime / "qlik2mqtt").mkdir(parents=True)
    for pid, config in ((os.getpid(), "/srv/a/config.yaml"), (sleeper, None)):
        note = {"pid": pid, "config": config, "state_file": f"/srv/{pid}/state.json"}
        (runtime / "qlik2mqtt" / f"{pid}.json").write_text(json.dumps(note))
    result = command(tmp_path, runtime, "check")
    assert result.returncode == 2, result.stdout
    assert result.stdout == ""  # nothing was checked against the defaults
    assert "qlik2mqtt: 2 bridges are running (" in result.stderr
    assert f"pid {os.getpid()}: /srv/a/config.yaml" in result.stderr
    assert f"pid {sleeper}: built-in defaults" in result.stderr
    (tmp_path / "config.yaml").write_text("mqtt: {port: 1}\n")  # README step 4's file
    local = command(tmp_path, runtime, "appenders", "--bridge-host", "10.0.0.5", "--out", "out")
    assert local.returncode == 0, local.stderr
    assert f"config: {tmp_path / 'config.yaml'} (in the current folder)" in local.stderr
