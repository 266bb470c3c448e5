"""Developer sessions: ``nox`` runs lint, typecheck, docs and tests (the README's
test command); ``nox -s reliability`` and ``nox -s bench`` are run on demand.

Every session installs the uv workspace (unimq + unimq-posix + unimq-sysv)
with the dev dependency group into its own virtual environment.
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "typecheck", "docs", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


def install_workspace(session: nox.Session, *groups: str) -> None:
    """Install the three distributions (editable) and the dev group into the session."""
    extra = [arg for group in groups for arg in ("--group", group)]
    session.run_install(
        "uv",
        "sync",
        "--all-packages",
        "--group",
        "dev",
        *extra,
        "--frozen" if session.env.get("UV_FROZEN") else "--quiet",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
    )


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The full test suite (conformance over every backend, per-backend, examples)."""
    install_workspace(session)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def reliability(session: nox.Session) -> None:
    """The reliability suite alone: ``nox -s reliability`` (CI size, a few minutes) or
    ``nox -s reliability -- --large`` (8x8 processes, 400k messages)."""
    install_workspace(session)
    session.run("pytest", "tests/reliability", "-s", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation site with ``mkdocs build --strict`` into site/."""
    install_workspace(session, "docs")
    session.run("mkdocs", "build", "--strict", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    install_workspace(session)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks: ``nox -s bench`` (full, a few minutes) or ``nox -s bench -- --quick``.

    Writes bench-results/*.json; a full run also redraws docs/img/bench.png and
    rewrites the tables of docs/benchmarks.md from the same run.
    """
    install_workspace(session, "bench")  # matplotlib for the chart, pyzmq as a reference
    full = "--quick" not in session.posargs  # a full run redraws the chart and the page
    outputs = ["--chart", "docs/img/bench.png", "--docs", "docs/benchmarks.md"] if full else []
    session.run("python", "-m", "bench.run", *outputs, *session.posargs)
    # unimq.aio against sync receive and to_thread(receive): bench-results/aio.json
    session.run("python", "-m", "bench.aio", *(a for a in session.posargs if a == "--quick"))


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the packages, the tests, the examples and this file."""
    install_workspace(session)
    session.run("mypy")
