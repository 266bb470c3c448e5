"""Developer sessions. ``nox`` (the README's test command) runs lint, typecheck,
docs, the tests on every supported Python (3.11, 3.12, 3.13) and the tests as
an unprivileged user; ``nox -s reliability`` and ``nox -s bench`` run on demand.

A supported Python this machine lacks is skipped, and nox lists it as skipped
in its summary; nothing is downloaded. Under pyenv, every installed 3.11, 3.12
and 3.13 is found even when only one is active. Every session installs the uv
workspace (unimq + unimq-posix + unimq-sysv) with the dev dependency group
into its own virtual environment, building the C channels for its Python.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "typecheck", "docs", "tests", "unprivileged"]
nox.options.reuse_existing_virtualenvs = True
# A missing Python is a skip, also where CI is set (nox would fail there), and
# is never downloaded: the tests run on the interpreters this machine has.
nox.options.error_on_missing_interpreters = False
nox.options.download_python = "never"

ROOT = Path(__file__).resolve().parent
#: pytest-xdist workers for the suite: most tests wait (on queues, processes,
#: servers) rather than compute, so four workers halve the run on 2 cores.
#: Every test makes its own uniquely named queues, so workers never collide.
#: ``nox -s tests -- -n 0 ...`` runs in one process.
WORKERS = ["-n", "4"]
SUPPORTED = ("3.11", "3.12", "3.13")
#: The user the unprivileged session runs as (nobody), with no capabilities.
NOBODY = 65534


def _expose_pyenv_versions() -> None:
    """Make pyenv's shims run the newest installed patch of each supported version.

    pyenv's ``python3.12`` shim runs only when 3.12 is an active version; this
    adds each installed one after the active ones in ``PYENV_VERSION``, as
    ``pyenv shell 3.11.7 3.12.1 3.13.0`` would (``python3`` is unchanged).
    """
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return
    root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=False)
    name = subprocess.run([pyenv, "version-name"], capture_output=True, text=True, check=False)
    if root.returncode != 0:
        return
    active = name.stdout.strip().split(":") if name.returncode == 0 else []
    versions = Path(root.stdout.strip()) / "versions"
    wanted = [v for v in active if v]
    for version in SUPPORTED:
        pattern = re.compile(rf"{re.escape(version)}\.(\d+)")
        patches = [
            (int(m.group(1)), path.name)
            for path in (versions.iterdir() if versions.is_dir() else [])
            if (m := pattern.fullmatch(path.name)) and (path / "bin" / f"python{version}").exists()
        ]
        if patches and max(patches)[1] not in wanted:
            wanted.append(max(patches)[1])
    if wanted != active:
        os.environ["PYENV_VERSION"] = ":".join(wanted)


_expose_pyenv_versions()


def install_workspace(session: nox.Session, *groups: str, venv: str | None = None) -> None:
    """Install the three distributions (editable) and the dev group into the session
    (or into ``venv``)."""
    extra = [arg for group in groups for arg in ("--group", group)]
    session.run_install(
        "uv",
        "sync",
        "--all-packages",
        "--group",
        "dev",
        *extra,
        "--frozen" if session.env.get("UV_FROZEN") else "--quiet",
        env={"UV_PROJECT_ENVIRONMENT": venv or session.virtualenv.location},
        external=venv is not None,
    )


@nox.session(python=SUPPORTED)
def tests(session: nox.Session) -> None:
    """The full test suite (the contract over every backend, per-backend, examples)."""
    install_workspace(session)
    session.run("pytest", *WORKERS, *session.posargs)


@nox.session(venv_backend="none")
def unprivileged(session: nox.Session) -> None:
    """The full test suite as uid 65534 (nobody) with no capabilities.

    Runs from a copy of this tree in a fresh directory that user may read, with
    its own HOME, TMPDIR and caches there, in a virtual environment made (as
    root) from an interpreter that user can run. Tests that need root skip,
    saying why. Needs root and setpriv; skipped, saying so, without them.
    """
    if os.geteuid() != 0:
        session.skip(f"already unprivileged (uid {os.geteuid()}): 'tests' ran without root")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        session.skip("setpriv (util-linux) is needed to drop to an unprivileged user")
    with _scratch() as scratch:
        tree, venv = scratch / "tree", scratch / "venv"
        _copy_tree(ROOT, tree)
        python, env_extra = _interpreter_for_nobody(session, scratch)
        session.run("uv", "venv", "--quiet", "--python", python, str(venv), external=True)
        with session.chdir(tree):
            install_workspace(session, venv=str(venv))
        home, tmp, cache = scratch / "home", scratch / "tmp", scratch / "cache"
        for path in (home, tmp, cache):
            path.mkdir()
        for path in (tree, home, tmp, cache):
            _chown_tree(path, NOBODY)
        env = {
            "PATH": os.pathsep.join([str(venv / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
            "HOME": str(home),
            "TMPDIR": str(tmp),
            "XDG_CACHE_HOME": str(cache),
            "UV_CACHE_DIR": str(cache / "uv"),
            "LANG": "C.UTF-8",
            **env_extra,
            **{k: v for k, v in os.environ.items() if k in ("CI", "TERM", "UNIMQ_PURE_PYTHON")},
        }
        with session.chdir(tree):
            session.run(
                setpriv,
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                "env",
                "-i",
                *(f"{k}={v}" for k, v in env.items()),
                str(venv / "bin" / "python"),
                "-m",
                "pytest",
                *WORKERS,
                *session.posargs,
                external=True,
            )


@contextmanager
def _scratch() -> Iterator[Path]:
    """A fresh directory every user can reach (mode 0755), removed afterwards."""
    base = next(
        (d for d in (tempfile.gettempdir(), "/tmp", "/var/tmp") if _reachable_by_all(Path(d))),
        None,
    )
    path = Path(tempfile.mkdtemp(prefix="unimq-unprivileged-", dir=base))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _reachable_by_all(path: Path) -> bool:
    """Whether every user may enter ``path`` (o+x on it and each parent)."""
    path = path.resolve()
    return path.is_dir() and all(p.stat().st_mode & 0o001 for p in (path, *path.parents))


def _copy_tree(source: Path, target: Path) -> None:
    """Copy the working tree: tracked and new files, none that git ignores
    (no virtual environments, build output or caches)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        check=False,
    )
    if listed.returncode != 0:  # not a git checkout: copy all but the usual litter
        litter = shutil.ignore_patterns(
            ".git", ".venv", ".nox", "__pycache__", "*.so", "build", "dist", "site", ".*_cache"
        )
        shutil.copytree(source, target, ignore=litter, symlinks=True)
        return
    for name in sorted(set(listed.stdout.decode().split("\0")) - {""}):
        src = source / name
        if src.is_file() or src.is_symlink():  # a deleted tracked file is skipped
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / name, follow_symlinks=False)


def _chown_tree(path: Path, uid: int) -> None:
    os.chown(path, uid, uid, follow_symlinks=False)
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(parent, name), uid, uid, follow_symlinks=False)


_VERSION = "import sys, os; print(sys.version, os.access(sys.prefix, os.R_OK | os.X_OK))"


def _runs_as(exe: str, uid: int | None) -> str | None:
    """``exe``'s version line when run as ``uid`` (None: as this process), or None."""
    drop = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    cmd = [*drop, "env", "-i", "PATH=/usr/bin:/bin", exe, "-I", "-c", _VERSION]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = proc.stdout.strip()
    return out if proc.returncode == 0 and out.endswith("True") else None


def _interpreter_for_nobody(session: nox.Session, scratch: Path) -> tuple[str, dict[str, str]]:
    """A supported Python that uid 65534 can run, and the environment it needs.

    An interpreter counts only if it runs as that user *as itself*: one under a
    directory the user cannot enter (pyenv's in /root) may still start, with
    another libpython or none. Failing all, a copy of the session's own
    interpreter is made in the scratch directory.
    """
    seen: set[str] = set()
    for version in SUPPORTED:
        for folder in os.environ.get("PATH", "").split(os.pathsep):
            exe = os.path.join(folder, f"python{version}")
            real = os.path.realpath(exe)
            if real in seen or not os.access(exe, os.X_OK):
                continue
            seen.add(real)
            own = _runs_as(real, None)
            if own is not None and _runs_as(real, NOBODY) == own:
                session.log(f"running the suite as uid {NOBODY} on {real}")
                return real, {}
    # No such interpreter: copy the one nox runs on (without its site-packages).
    prefix = Path(sys.base_prefix)
    copy = scratch / "python"
    shutil.copytree(
        prefix,
        copy,
        symlinks=True,
        ignore=shutil.ignore_patterns("site-packages", "test", "__pycache__", "*.a"),
    )
    session.log(f"no Python here that uid {NOBODY} can run; using a copy of {prefix}")
    copied = copy / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return str(copied), {"LD_LIBRARY_PATH": str(copy / "lib")}


@nox.session
def reliability(session: nox.Session) -> None:
    """The reliability suite alone: ``nox -s reliability`` (CI size, a few minutes) or
    ``nox -s reliability -- --large`` (8x8 processes, 400k messages)."""
    install_workspace(session)
    session.run("pytest", "tests/reliability", "-s", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with ``mkdocs build --strict`` into site/."""
    install_workspace(session, "docs")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    install_workspace(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: ``nox -s bench`` (full, a few minutes) or ``nox -s bench -- --quick``.

    Writes bench-results/*.json; a full run also redraws docs/img/bench.png and
    rewrites the tables of docs/benchmarks.md from the same run. The batches run
    twice: at this machine's kernel limits, and through ``unshare --ipc`` with the
    limits of a private IPC namespace raised to match faster-fifo's 1 MiB buffer
    (bench.matched; skipped, saying why, where unshare is refused).
    """
    install_workspace(session, "bench")  # matplotlib for the chart, pyzmq as a reference
    full = "--quick" not in session.posargs  # a full run redraws the chart and the page
    outputs = ["--chart", "docs/img/bench.png", "--docs", "docs/benchmarks.md"] if full else []
    session.run("python", "-m", "bench.run", *outputs, *session.posargs)
    quick = [a for a in session.posargs if a == "--quick"]
    # unimq.aio against sync receive and to_thread(receive): bench-results/aio.json
    session.run("python", "-m", "bench.aio", *quick)
    # redis:// against raw redis-py on a valkey-server of its own (prints its figures)
    session.run("python", "-m", "tests.redis.bench", *quick)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the packages, the tests, the examples and this file."""
    install_workspace(session)
    session.run("mypy")
