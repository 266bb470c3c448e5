"""Build the three distributions, install the wheels into a fresh virtual
environment, and run the demo there, so a broken package is caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv")
pytestmark = pytest.mark.skipif(UV is None, reason="uv is not installed")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    assert UV is not None
    subprocess.run(
        [UV, "build", "--quiet", "--all-packages", "--out-dir", str(out)],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    return out


EXPECTED = {
    "unimq": {"unimq/__init__.py", "unimq/py.typed", "unimq/cli/__init__.py", "unimq/cstruct.py"},
    "unimq_posix": {"unimq_posix/__init__.py", "unimq_posix/py.typed"},
    "unimq_sysv": {"unimq_sysv/__init__.py", "unimq_sysv/py.typed"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_wheel_contents(dist: Path, name: str) -> None:
    (wheel,) = dist.glob(f"{name}-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        files = set(zf.namelist())
        entry_points = next((n for n in files if n.endswith("entry_points.txt")), None)
        assert entry_points is not None
        text = zf.read(entry_points).decode()
    assert EXPECTED[name] <= files
    assert not any(n.startswith("tests/") for n in files)
    assert "[unimq.backends]" in text
    assert list(dist.glob(f"{name}-*.tar.gz"))


def test_fresh_install_runs_the_demo(dist: Path, tmp_path: Path) -> None:
    assert UV is not None
    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    wheels = [str(w) for w in sorted(dist.glob("*.whl"))]
    subprocess.run(
        [UV, "pip", "install", "--quiet", "--python", str(python), *wheels],
        check=True,
        timeout=300,
    )
    demo = subprocess.run(
        [str(venv / "bin" / "unimq"), "demo"], capture_output=True, text=True, timeout=120
    )
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.count("3 typed messages round-tripped: ok") == 3
    # The installed package resolves backends through its entry points.
    check = subprocess.run(
        [str(python), "-c", "import unimq; print(sorted(unimq.available_backends().items()))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "('posix', True)" in check.stdout
    assert "('sysv', True)" in check.stdout
