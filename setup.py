"""Build of the optional C kernels; everything else is declared in pyproject.toml.

``mistmodel._kernels`` (row attention and pooling for CPU inference) is optional:
where it cannot be compiled, the package installs without it and the network runs its
torch path.
"""
from setuptools import Extension, setup

setup(ext_modules=[
    Extension("mistmodel._kernels", ["mistmodel/_kernels.c"],
              extra_compile_args=["-O3", "-fno-math-errno", "-Wno-psabi"], optional=True),
])
