"""The optional C hot path of unimq-redis; everything else is in pyproject.toml.

``optional=True``: if the extension cannot be compiled (no C compiler, no
Python headers) setuptools warns and installs the pure-Python package, which
behaves the same (unimq_redis._build builds the Messages in Python).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "unimq_redis._fast",
            ["unimq_redis/_fast.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
