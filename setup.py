"""Build of the optional C extension; everything else is declared in pyproject.toml.

``mistmodel.backends._simd`` (the SIMD kernels of the ``"simd"`` inference backend) is
optional: where it cannot be compiled, the package installs without it and that backend
runs the torch backend instead, with a warning.
"""
from setuptools import Extension, setup

setup(ext_modules=[
    Extension("mistmodel.backends._simd", ["mistmodel/backends/_simd.c"],
              extra_compile_args=["-O3", "-fno-math-errno", "-Wno-psabi"], optional=True),
])
