# The C core is compiled with cffi (API mode, out of line) when the project is installed.
from setuptools import setup

setup(cffi_modules=["csrc/build_core.py:ffibuilder"])
