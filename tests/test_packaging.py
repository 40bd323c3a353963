"""The Dockerfile's build steps in a clean virtual environment (there is no Docker engine here):
build qlik2mqtt's wheel as its build stage does, install it offline as its final stage does, and
run what the image runs. Offline throughout: the wheels of its dependencies and of its build
backend are the ones `scripts/setup --test` fetched into `.venv/wheelhouse`."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
WHEELHOUSE = ROOT / ".venv/wheelhouse"
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=900, cwd=cwd
    )
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result


def test_dockerfile_shape() -> None:
    assert DOCKERFILE.count("FROM python:") == 2  # build stage, slim final stage
    assert "USER qlik2mqtt" in DOCKERFILE
    assert "EXPOSE 9997/udp 9998/udp" in DOCKERFILE
    assert "HEALTHCHECK --interval=30s --timeout=10s" in DOCKERFILE
    assert '"qlik2mqtt", "health"' in DOCKERFILE
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE, re.MULTILINE))
    assert copied == {"bridge", "discovery", "appenders"}  # every package in pyproject


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding what the image holds, built the way the Dockerfile builds it."""
    work = tmp_path_factory.mktemp("image")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):  # the build stage's COPY lines
        shutil.copy(ROOT / name, source / name)
    for package in ("bridge", "discovery", "appenders"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    assert (WHEELHOUSE / ".complete").exists(), "run scripts/setup --test (it fetches the wheels)"
    offline = ("--no-index", "--find-links", WHEELHOUSE)
    wheels = work / "wheels"
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    run(*pip, "wheel", "--quiet", "--no-deps", *offline, "--wheel-dir", wheels, ".", cwd=source)
    target = work / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    run(target / "bin/pip", "install", "--quiet", *offline, "--find-links", wheels, "qlik2mqtt")
    return target


def test_the_installed_package_runs_its_commands(image: Path, tmp_path: Path) -> None:
    qlik2mqtt = image / "bin/qlik2mqtt"
    assert run(qlik2mqtt, "--version").stdout.startswith("qlik2mqtt ")
    out = tmp_path / "appenders"
    run(qlik2mqtt, "appenders", "--bridge-host", "10.0.0.5", "--out", out)  # package data
    assert (out / "scheduler/LocalLogConfig.xml").read_text().count("10.0.0.5") >= 2
    unhealthy = subprocess.run([qlik2mqtt, "health"], capture_output=True, text=True, cwd=tmp_path)
    assert unhealthy.returncode == 1
    assert "no health file" in unhealthy.stdout
    # Every module of the source tree imports from the installed package (none left out).
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for folder in ("bridge", "discovery")
        for path in (ROOT / folder).rglob("*.py")
    )
    assert "bridge.qrs.client" in modules
    imports = "import " + ", ".join(module for module in modules if module != "bridge.__main__")
    run(image / "bin/python", "-c", imports)
    dev_tools = [name for name in ("pytest", "ruff", "mypy") if (image / "bin" / name).exists()]
    assert dev_tools == []  # no dev tools in the final image


SERVICE = ROOT / "contrib/qlik2mqtt.service"


def test_the_systemd_unit_runs_the_installed_package_as_its_own_user() -> None:
    unit = SERVICE.read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["User"] == "qlik2mqtt"
    assert settings["Restart"] == "on-failure"
    assert settings["RestartPreventExitStatus"] == "2"  # a config error is not retried
    assert settings["StateDirectory"] == "qlik2mqtt"
    assert "QLIK2MQTT_STATE_FILE=/var/lib/qlik2mqtt/state.json" in unit
    assert settings["ProtectSystem"] == "strict"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ExecStart"].startswith("/opt/qlik2mqtt/bin/qlik2mqtt run --config ")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verifies_the_unit(image: Path, tmp_path: Path) -> None:
    """The unit as shipped, its ExecStart pointed at the venv the wheel was installed in (as
    docs/operations.md installs it in /opt/qlik2mqtt)."""
    unit = tmp_path / "qlik2mqtt.service"
    unit.write_text(SERVICE.read_text().replace("/opt/qlik2mqtt", str(image)))
    result = subprocess.run(
        ["systemd-analyze", "verify", unit], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""  # no warning either
