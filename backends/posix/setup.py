"""The optional C hot path of unimq-posix; everything else is in pyproject.toml.

``optional=True``: if the extension cannot be compiled (no C compiler, no
Python headers) setuptools warns and installs the pure-Python package, which
behaves the same (the backend falls back to the wrapped module's calls).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "unimq_posix._fast",
            ["unimq_posix/_fast.c"],
            depends=["unimq_posix/_wake.h", "unimq_posix/_spin.h"],
            extra_compile_args=["-O2"],
            optional=True,
            libraries=["rt"],
        )
    ]
)
