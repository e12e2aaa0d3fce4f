"""The pinned set installs where users build the image: pip's resolver accepts requirements.txt
for linux/x86_64 and linux/aarch64 (Apple Silicon, Graviton), wheels only, Python 3.11.

pip evaluates environment markers for the machine it runs on, not for ``--platform``, so each
line's marker is evaluated here for the target first (the TensorFlow line differs by machine).
Needs the package index (PyPI); run in its own virtualenv's pip with ``--isolated`` so that no
local pip configuration takes part.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# The image is Debian bookworm (glibc 2.36): manylinux wheels up to 2_36 install on it.
GLIBC_MINORS = range(17, 37)


def _name(project: str) -> str:
    return re.sub(r"[-_.]+", "-", project).lower()


def _for_machine(machine: str) -> list[str]:
    """requirements.txt's pins whose markers hold on Linux on ``machine``, markers dropped."""
    env = {**default_environment(), "platform_machine": machine, "sys_platform": "linux",
           "platform_system": "Linux", "os_name": "posix", "python_version": "3.11"}  # fmt: skip
    pins = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate(env):
                requirement.marker = None
                pins.append(str(requirement))
    return pins


@pytest.fixture(scope="module")
def pip(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The virtualenv's pip (``make install`` seeds it), else a fresh one's (ensurepip)."""
    found = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, check=False)
    if found.returncode == 0:
        return [sys.executable, "-m", "pip"]
    folder = tmp_path_factory.mktemp("pip-venv")
    venv.create(folder, with_pip=True)
    return [str(folder / "bin" / "python"), "-m", "pip"]


@pytest.mark.parametrize(("machine", "tensorflow"), [("x86_64", "tensorflow-cpu"), ("aarch64", "tensorflow")])
def test_the_lock_resolves_to_wheels_on_linux(
    pip: list[str], tmp_path: Path, machine: str, tensorflow: str
) -> None:
    pins = _for_machine(machine)
    assert f"{tensorflow}==2.21.0" in pins
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(pins) + "\n")
    platforms = [f"--platform=manylinux2014_{machine}"]
    platforms += [f"--platform=manylinux_2_{minor}_{machine}" for minor in GLIBC_MINORS]
    report = tmp_path / "report.json"
    done = subprocess.run(
        [*pip, "install", "--isolated", "--quiet", "--dry-run", "--only-binary=:all:",
         *platforms, "--python-version=3.11", "--implementation=cp", "--abi=cp311",
         f"--target={tmp_path / 'target'}", f"--report={report}", "-r", str(requirements)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    installs = json.loads(report.read_text())["install"]
    resolved = {_name(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}
    assert resolved[tensorflow] == "2.21.0"
    assert resolved["apache-airflow"] == "3.3.2"
    missing = {_name(pin.split("==")[0]) for pin in pins} - resolved.keys()
    assert not missing, missing
