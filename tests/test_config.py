"""Configuration: defaults, the example file, environment overrides, readable errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from bridge.config import SECRET_WORDS, Config, ConfigError, load_config, secret_keys
from tests.certs import make_certificates
from tests.helpers import qlik2mqtt

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "config.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    config = load_config(None, environ={})
    assert (config.udp.user_activity_port, config.udp.task_port) == (9997, 9998)
    assert config.mqtt.host is None
    assert (config.mqtt.base_topic, config.mqtt.qos, config.mqtt.state_interval) == (
        "qlik2mqtt",
        1,
        0.25,
    )
    assert config.stats_interval == 10.0
    assert not config.butler_compat.enabled


def test_example_file_loads_and_equals_the_defaults() -> None:
    defaults = Config.model_validate({}, context={"base": EXAMPLE.resolve().parent})
    assert load_config(EXAMPLE, environ={}) == defaults


def test_relative_paths_are_read_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bridge and a command started elsewhere find the same state file (issue 18 #4)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "ca.pem").write_text("x")
    (site / "config.yaml").write_text(
        "state_file: data/state.json\nmqtt:\n  tls:\n    ca_file: ca.pem\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("../site/config.yaml"), environ={})
    assert config.state_file == site.absolute() / "data/state.json"
    assert config.mqtt.tls.ca_file == site.absolute() / "ca.pem"
    from_env = load_config(
        site / "config.yaml", environ={"QLIK2MQTT_STATE_FILE": "other/state.json"}
    )
    assert from_env.state_file == site / "other/state.json"
    # No config file: the working directory, as before.
    assert load_config(None, environ={}).state_file == elsewhere / "data/state.json"
    assert load_config(None, environ={"QLIK2MQTT_STATE_FILE": "/abs/s.json"}).state_file == (
        Path("/abs/s.json")
    )


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def _yaml_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in data.items():
        if isinstance(value, dict):
            keys |= _yaml_keys(value, f"{prefix}{name}.")
        else:
            keys.add(prefix + name)
    return keys


def test_example_file_documents_every_key() -> None:
    assert _yaml_keys(yaml.safe_load(EXAMPLE.read_text())) == _keys(Config)


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  host: broker.lan\n  port: 1883\n")
    config = load_config(
        path,
        environ={
            "QLIK2MQTT_MQTT__PORT": "8883",
            "QLIK2MQTT_MQTT__PASSWORD": "123",
            "QLIK2MQTT_UDP__ALLOWED_SOURCES": "[10.0.0.0/8, 192.0.2.7]",
            "QLIK2MQTT_TASKS__DEDUP_WINDOW": "2m",
            "QLIK2MQTT_STATE_FILE": "/var/lib/q/state.json",
            "OTHER": "ignored",
        },
    )
    assert (config.mqtt.host, config.mqtt.port) == ("broker.lan", 8883)
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "123"
    assert [str(n) for n in config.udp.allowed_sources] == ["10.0.0.0/8", "192.0.2.7/32"]
    assert config.tasks.dedup_window == 120.0
    assert config.state_file == Path("/var/lib/q/state.json")


def test_every_problem_is_reported_with_its_key_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "mqtt:\n  port: 70000\n  passwrd: x\n  base_topic: 'a/#'\n"
        "udp:\n  allowed_sources: [10.0.0.0/8, nonsense]\nsessions:\n  stale_after: soon\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"QLIK2MQTT_MQTT__QOS": "5"})
    problems = "\n".join(caught.value.problems)
    assert len(caught.value.problems) == 6
    assert "mqtt.port: Input should be less than or equal to 65535 (got 70000)" in problems
    assert "mqtt.passwrd: unknown key" in problems
    assert "mqtt.base_topic:" in problems
    # The value once, as every other problem shows it.
    assert "udp.allowed_sources[1]: not an IP address or CIDR network (got 'nonsense')" in problems
    assert problems.count("nonsense") == 1
    assert "sessions.stale_after:" in problems
    assert "mqtt.qos: Input should be 0, 1 or 2 (got '5') (from QLIK2MQTT_MQTT__QOS)" in problems


@pytest.mark.parametrize(
    ("variable", "key"),
    [("QLIK2MQTT_MQQT__HOST", "mqqt"), ("QLIK2MQTT_MQTT__PROT", "mqtt.prot")],
)
def test_an_unknown_key_from_the_environment_names_the_variable(variable: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={variable: "x", "QLIK2MQTT_MQTT__PORT": "1884"})
    assert caught.value.problems == [
        f"{key}: unknown key (check the spelling against config.example.yaml) (from {variable})"
    ]


def test_an_error_is_not_blamed_on_a_variable_that_only_shares_a_prefix(tmp_path: Path) -> None:
    path = write(tmp_path, "udp:\n  host_port: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={"QLIK2MQTT_UDP__HOST": "0.0.0.0"})
    assert caught.value.problems == [
        "udp.host_port: unknown key (check the spelling against config.example.yaml)"
    ]


def test_secrets_are_never_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  password: [hunter2]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "hunter2" not in str(caught.value)
    assert "mqtt.password" in str(caught.value)


def every_key(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key of the config model, the sections' own keys included."""
    keys = []
    for name, field in model.model_fields.items():
        keys.append(f"{prefix}{name}")
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            keys += every_key(kind, f"{prefix}{name}.")
    return keys


def test_every_key_that_names_a_secret_is_marked_secret() -> None:
    keys = every_key(Config)
    assert "slack.task_events.webhook_url" in keys  # the walk reaches nested sections
    named = {key for key in keys if any(word in key.rsplit(".")[-1] for word in SECRET_WORDS)}
    files = {key for key in named if key.endswith("_file")}  # a path, shown; never its text
    assert named - files <= secret_keys(), "a secret key is not a SecretStr"
    assert {"mqtt.password", "privacy.salt", "slack.token", "slack.webhook_url"} <= secret_keys()


@pytest.mark.parametrize("key", sorted(secret_keys()))
@pytest.mark.parametrize("value", [8731245517, ["hunter2", "8731245517"]])
def test_no_secret_is_shown_in_an_error(tmp_path: Path, key: str, value: object) -> None:
    raw: Any = value
    for part in reversed(key.split(".")):
        raw = {part[:-2]: [raw]} if part.endswith("[]") else {part: raw}  # `[]`: in a list
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, yaml.safe_dump(raw)), environ={})
    shown = str(caught.value)
    assert key.replace("[]", "[0]") in shown
    assert "8731245517" not in shown
    assert "hunter2" not in shown


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt: [", "invalid YAML"),
        ("- a list", "the top level must be a mapping"),
    ],
)
def test_unreadable_files(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text), environ={})


def test_cli_exits_2_with_one_line_per_problem_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "mqtt:\n  port: nope\nudp:\n  tsk_port: 1\n")
    result = qlik2mqtt("run", "--config", str(path))
    assert result.returncode == 2
    lines = sorted(result.stderr.strip().splitlines())
    assert lines == [
        "qlik2mqtt: config error: mqtt.port: Input should be a valid integer, unable to parse "
        "string as an integer (got 'nope')",
        "qlik2mqtt: config error: udp.tsk_port: unknown key (check the spelling against "
        "config.example.yaml)",
    ]
    assert "Traceback" not in result.stderr


def test_cli_missing_file_exits_2(tmp_path: Path) -> None:
    result = qlik2mqtt("run", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "nope.yaml: cannot read: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def _documented_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key a user can set, list items as `key[].sub`."""
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        path = prefix + name
        item = getattr(annotation, "__args__", (None,))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _documented_keys(annotation, f"{path}.")
            continue
        keys.add(path)
        for argument in item:
            if isinstance(argument, type) and issubclass(argument, BaseModel):
                keys |= _documented_keys(
                    argument, f"{path}[]." if "list" in str(annotation) else f"{path}."
                )
    return keys


def test_configuration_doc_lists_every_key() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_.\[\]]+)` \|", doc, re.MULTILINE))
    assert documented == _documented_keys(Config)


def test_qrs_is_off_by_default_and_needs_its_host_and_certificates_when_on(
    tmp_path: Path,
) -> None:
    qrs = load_config(None, environ={}).qrs
    assert (qrs.enabled, qrs.port, qrs.verify, qrs.allowed_tasks) == (False, 4242, True, [])
    assert (qrs.user_directory, qrs.user_id, qrs.max_starts_per_minute) == (
        "INTERNAL",
        "sa_repository",
        5,
    )
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "qrs:\n  enabled: true\n  client_key: /etc/hostname\n"), {})
    assert caught.value.problems == ["qrs: enabled needs qrs.host, qrs.client_cert"]


def test_qrs_certificates_are_read_from_the_config_files_folder(tmp_path: Path) -> None:
    for name in ("client.pem", "client_key.pem", "root.pem"):
        (tmp_path / name).write_text("-----BEGIN X-----\n")
    config = load_config(
        write(
            tmp_path,
            "mqtt: {host: broker.corp}\nudp: {allowed_sources: [10.20.0.11]}\n"
            "qrs:\n  enabled: true\n  host: qs.corp\n  client_cert: client.pem\n"
            "  client_key: client_key.pem\n  root_cert: root.pem\n",
        ),
        environ={},
    )
    assert config.qrs.client_key == tmp_path / "client_key.pem"
    assert config.qrs.root_cert == tmp_path / "root.pem"


def test_a_missing_or_unreadable_qrs_certificate_is_one_line_naming_its_key(
    tmp_path: Path,
) -> None:
    (tmp_path / "client.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "keys").mkdir()  # a folder: cannot be read as a file
    path = write(
        tmp_path,
        "qrs:\n  enabled: true\n  host: qs.corp\n  client_cert: client.pem\n"
        "  client_key: keys\n  root_cert: root.pem\n",
    )
    result = qlik2mqtt("run", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"qlik2mqtt: config error: qrs.client_key: no such file: {tmp_path / 'keys'} (got 'keys')",
        f"qlik2mqtt: config error: qrs.root_cert: no such file: {tmp_path / 'root.pem'} "
        "(got 'root.pem')",
    ]


def test_qrs_certificates_are_not_opened_while_qrs_is_off(tmp_path: Path) -> None:
    """`status` or `acknowledge` by a user who cannot read the key (here: it is not there)."""
    text = "qrs:\n  host: qs.corp\n  client_cert: client.pem\n  client_key: client_key.pem\n"
    config = load_config(write(tmp_path, text), environ={})
    assert config.qrs.client_key == tmp_path / "client_key.pem"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "qrs:\n  enabled: true\n" + text.removeprefix("qrs:\n")), {})
    assert [problem.split(":")[0] for problem in caught.value.problems] == [
        "qrs.client_cert",
        "qrs.client_key",
    ]


@pytest.mark.parametrize("host", ["qs.corp", "qlik-01.corp.example.", "10.0.0.5", "fd00::5"])
def test_qrs_host_takes_a_host_name_or_an_ip_address(tmp_path: Path, host: str) -> None:
    config = load_config(None, {"QLIK2MQTT_QRS__HOST": host})
    assert config.qrs.host == host


@pytest.mark.parametrize(
    "host", ["qlik.example:4242", "https://qlik.example", "qlik/evil", "a b", "", "fe80::1%eth0"]
)
def test_qrs_host_with_anything_more_is_refused_naming_it(host: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"QLIK2MQTT_QRS__HOST": host})
    assert caught.value.problems == [
        "qrs.host: must be a host name or an IP address only (no scheme, port or path) "
        f"(got {host!r}) (from QLIK2MQTT_QRS__HOST)"
    ]


def test_a_qrs_host_with_a_port_stops_run_with_one_line(tmp_path: Path) -> None:
    """The reviewer's case: real certificates, `host: "qlik.example:4242"`: exit 2, no
    traceback (it was httpx's InvalidURL, exit 1)."""
    certs = make_certificates(tmp_path)
    qrs = {
        "enabled": True,
        "host": "qlik.example:4242",
        "client_cert": str(certs.client_certfile),
        "client_key": str(certs.client_keyfile),
        "root_cert": str(certs.ca_file),
    }
    result = qlik2mqtt(
        "run",
        "--config",
        str(write(tmp_path, yaml.safe_dump({"qrs": qrs}))),
        env={"QLIK2MQTT_STATE_FILE": str(tmp_path / "state.json")},
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "qlik2mqtt: config error: qrs.host: must be a host name or an IP address only "
        "(no scheme, port or path) (got 'qlik.example:4242')"
    ]


@pytest.mark.parametrize("credentials", [{}, {"QLIK2MQTT_MQTT__USERNAME": "bridge"}])
def test_qrs_with_an_anonymous_embedded_broker_is_refused(
    tmp_path: Path, credentials: dict[str, str]
) -> None:
    """Anyone on the host could publish task/start to it: one line naming the keys."""
    key = tmp_path / "key.pem"
    key.write_text("not read while the config is checked")
    env = {
        "QLIK2MQTT_QRS__ENABLED": "true",
        "QLIK2MQTT_QRS__HOST": "qs",
        "QLIK2MQTT_QRS__CLIENT_CERT": str(key),
        "QLIK2MQTT_QRS__CLIENT_KEY": str(key),
        "QLIK2MQTT_UDP__ALLOWED_SOURCES": "[10.20.0.11]",
        **credentials,
    }
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ=env)
    (problem,) = caught.value.problems
    assert problem.startswith("qrs.enabled: with the embedded broker (no mqtt.host) QRS needs")
    assert "mqtt.username and mqtt.password (or mqtt.password_file)" in problem
    locked = {**env, "QLIK2MQTT_MQTT__USERNAME": "bridge", "QLIK2MQTT_MQTT__PASSWORD": "x"}
    assert load_config(None, environ=locked).qrs.enabled
    elsewhere = {**env, "QLIK2MQTT_MQTT__HOST": "broker.example"}  # check reports that one
    assert load_config(None, environ=elsewhere).qrs.enabled


@pytest.mark.parametrize("sources", [None, "[]"])
def test_qrs_with_every_sender_allowed_by_default_is_refused(
    tmp_path: Path, sources: str | None
) -> None:
    """A forged task-failure datagram chooses what Retry starts: QRS needs the senders listed,
    or every sender allowed in so many words."""
    key = tmp_path / "key.pem"
    key.write_text("not read while the config is checked")
    env = {
        "QLIK2MQTT_MQTT__HOST": "broker.corp",
        "QLIK2MQTT_QRS__ENABLED": "true",
        "QLIK2MQTT_QRS__HOST": "qs",
        "QLIK2MQTT_QRS__CLIENT_CERT": str(key),
        "QLIK2MQTT_QRS__CLIENT_KEY": str(key),
    }
    if sources is not None:
        env["QLIK2MQTT_UDP__ALLOWED_SOURCES"] = sources
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ=env)
    (problem,) = caught.value.problems
    assert problem.startswith("udp.allowed_sources: is empty (every sender) while qrs.enabled")
    assert "list the Qlik Sense nodes" in problem
    assert "0.0.0.0/0" in problem
    for listed in ("[10.20.0.11, 10.20.0.12]", "[0.0.0.0/0, '::/0']"):
        env["QLIK2MQTT_UDP__ALLOWED_SOURCES"] = listed
        assert load_config(None, environ=env).qrs.enabled
