"""Compile the C peers once per session with the system's cc."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

C_DIR = Path(__file__).parent / "c"


def _build(tmp: Path, name: str, *libs: str) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc) on this machine")
    exe = tmp / name
    subprocess.run(
        [cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(C_DIR / f"{name}.c"), *libs],
        check=True,
    )
    return exe


@pytest.fixture(scope="session")
def peer_sysv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("unimq_sysv")
    return _build(tmp_path_factory.mktemp("c"), "peer_sysv")


@pytest.fixture(scope="session")
def peer_posix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("unimq_posix")
    return _build(tmp_path_factory.mktemp("c"), "peer_posix", "-lrt")
