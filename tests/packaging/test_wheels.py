"""Build the three distributions, install the wheels into a fresh virtual
environment, and run the demo there, so a broken package is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv")
CC = shutil.which("cc") or shutil.which("gcc")
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
    "unimq": {
        "unimq/__init__.py",
        "unimq/py.typed",
        "unimq/cli/__init__.py",
        "unimq/cstruct.py",
        "unimq/testing/__init__.py",
    },
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
    if name != "unimq" and CC is not None:  # the optional C hot path was compiled
        assert any(n.startswith(f"{name}/_fast.") and n.endswith(".so") for n in files), files


@pytest.mark.parametrize("name", ["unimq_posix", "unimq_sysv"])
def test_sdist_carries_the_c_source(dist: Path, name: str) -> None:
    (sdist,) = dist.glob(f"{name}-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    assert {"setup.py", f"{name}/_fast.c", f"{name}/_fast.pyi", f"{name}/py.typed"} <= names


def test_install_without_a_compiler_falls_back_to_pure_python(dist: Path, tmp_path: Path) -> None:
    """From the sdists with CC=false: the build warns, installs, and works."""
    assert UV is not None
    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    (core,) = dist.glob("unimq-0*.whl")
    sdists = [str(p) for p in sorted(dist.glob("unimq_*.tar.gz"))]
    env = {**os.environ, "CC": "false", "UV_NO_CACHE": "1"}
    subprocess.run(
        [UV, "pip", "install", "--quiet", "--python", str(python), str(core), *sdists],
        check=True,
        timeout=300,
        env=env,
    )
    code = (
        "import unimq, unimq_posix, unimq_sysv\n"
        "print(unimq_posix.ACCELERATED, unimq_sysv.ACCELERATED)\n"
        "for url, opts in (('posix:///unimq-nocc-%d', dict(max_messages=2, max_message_size=64)),"
        " ('sysv://%d', {})):\n"
        "    import os; u = url % (0x5C000000 + os.getpid() % 0xFFFFFF)\n"
        "    with unimq.open(u, create=True, **opts) as q:\n"
        "        q.send(b'pure'); assert q.receive(timeout=1).data == b'pure'; q.remove()\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["False", "False", "ok"]


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
    if CC is not None:
        fast = subprocess.run(
            [
                str(python),
                "-c",
                "import unimq_posix as p, unimq_sysv as s; print(p.ACCELERATED, s.ACCELERATED)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert fast.stdout.split() == ["True", "True"]


def test_the_contract_kit_runs_from_the_wheel(dist: Path, tmp_path: Path) -> None:
    """unimq[testing] installed from the wheel alone (no tests/ directory anywhere)
    runs the queue contract against memory://."""
    assert UV is not None
    venv = tmp_path / "venv"
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    (core,) = dist.glob("unimq-0*.whl")
    subprocess.run(
        [
            UV,
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            f"unimq[testing] @ {core.as_uri()}",
        ],
        check=True,
        timeout=300,
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_memory_contract.py").write_text(
        "import pytest, unimq, unimq.testing\n"
        "class TestMemory(unimq.testing.QueueContract):\n"
        "    @pytest.fixture\n"
        "    def backend(self):\n"
        "        return unimq.testing.Backend(\n"
        "            make_url=lambda: 'memory://' + unimq.testing.unique_name(),\n"
        "            capabilities=unimq.Capability.MTYPE | unimq.Capability.PRIORITY\n"
        "            | unimq.Capability.NATIVE_TIMEOUT)\n"
    )
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "failed" not in proc.stdout
