"""Builds the optional C accelerator of the line-protocol decoder (cccommon._lpscan).

Everything else is in pyproject.toml. Without a C compiler the build of the extension fails
softly and cccommon uses its pure-Python decoder (same results, about 8x slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "cccommon._lpscan",
            sources=["src/cccommon/_lpscan.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
