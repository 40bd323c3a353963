"""What the docs tell a user to create inside the checkout (a `config.yaml` with the broker's
password, Qlik's certificates under `certs/`, the state under `data/`) is never offered for a
commit."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent

SECRETS = [
    "config.yaml",  # README: mqtt.password goes here
    "certs/client.pem",  # docs/qrs.md: the QMC's exported certificates
    "certs/client_key.pem",
    "certs/root.pem",
    "data/state.json",
    "qlik-client.key",
]


pytestmark = [
    pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout"),
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
]


@pytest.mark.parametrize("path", SECRETS)
def test_secrets_in_the_checkout_are_ignored(path: str) -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "--quiet", path], cwd=ROOT, check=False
    )
    assert result.returncode == 0, f"{path} is not covered by .gitignore"


def test_the_example_config_is_still_tracked() -> None:
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "--quiet", "config.example.yaml"],
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
