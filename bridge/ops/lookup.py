"""Which config file a command uses, and how it says so: `--config`, else `$QLIK2MQTT_CONFIG`,
else `config.yaml` in the current folder, else the config of this user's one running bridge
(`bridge.ops.running`; not for `run`), else none: the built-in defaults. Several running
bridges and none named is an error that lists them, never a silent fall back to the defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bridge.config import CONFIG_ENV
from bridge.ops.running import RunningBridge, running_bridges

LOCAL_CONFIG = Path("config.yaml")


@dataclass(frozen=True, slots=True)
class Choice:
    """The config file to read (None: the built-in defaults), and the line that says why."""

    path: Path | None
    said: str
    state_file: Path | None = None
    """A running bridge on the defaults lends its state file (for `health` and `check`)."""


class AmbiguousConfigError(Exception):
    """Several bridges run and no config was named: which one is meant cannot be told."""

    def __init__(self, bridges: list[RunningBridge]) -> None:
        listed = "; ".join(
            f"pid {bridge.pid}: {bridge.config or 'built-in defaults'}" for bridge in bridges
        )
        super().__init__(
            f"{len(bridges)} bridges are running ({listed}): name the config of the one you "
            f"mean with --config (or ${CONFIG_ENV})"
        )


def choose_config(
    named: Path | None,
    from_env: str | None,
    cwd: Path,
    with_running: bool = True,
    bridges: list[RunningBridge] | None = None,
) -> Choice:
    """The config for a command: `named` (--config), `from_env` ($QLIK2MQTT_CONFIG), a
    `config.yaml` in `cwd`, with `with_running` the one running bridge's (`bridges`, else
    found by their notes), else the defaults. Raises AmbiguousConfigError."""
    if named is not None:
        return Choice(named, f"config: {named} (--config)")
    if from_env:
        return Choice(Path(from_env), f"config: {from_env} (${CONFIG_ENV})")
    if (cwd / LOCAL_CONFIG).is_file():
        return Choice(LOCAL_CONFIG, f"config: {cwd / LOCAL_CONFIG} (in the current folder)")
    if with_running:
        found = running_bridges() if bridges is None else bridges
        if len(found) > 1:
            raise AmbiguousConfigError(found)
        if found:
            bridge = found[0]
            running = f"config: the running bridge's (pid {bridge.pid}"
            if bridge.config is not None:
                return Choice(bridge.config, f"{running}, {bridge.config})")
            defaults = "built-in defaults and QLIK2MQTT_* variables"
            return Choice(None, f"{running}, {defaults})", bridge.state_file)
    return Choice(None, "config: none (built-in defaults and QLIK2MQTT_* variables)")
