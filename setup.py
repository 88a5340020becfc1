"""Builds ark._C through CMake (the same build as the C++ library) for `pip install .`.

Only the extension target is built (no tests, no command-line program), in build-pip/ so the CMake folders of
the source checkout are left alone.
"""

import os
import pathlib
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = pathlib.Path(__file__).resolve().parent


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        build_dir = ROOT / "build-pip" / f"cmake-py{sys.version_info[0]}{sys.version_info[1]}"
        configure = [
            "cmake", "-S", str(ROOT), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
            "-DARK_BUILD_TESTS=OFF", "-DARK_BUILD_BENCH=OFF", "-DARK_BUILD_PYTHON=ON",
            f"-DPython3_EXECUTABLE={sys.executable}",
        ]
        subprocess.run(configure, check=True)
        jobs = str(os.cpu_count() or 2)
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "ark_python", "-j", jobs], check=True)
        built = sorted((build_dir / "python" / "ark").glob("_C*.so"))
        if not built:
            raise RuntimeError(f"the CMake build produced no ark/_C*.so under {build_dir}")
        target = pathlib.Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[-1], target)


setup(
    ext_modules=[Extension("ark._C", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
    options={"build": {"build_base": "build-pip/setuptools"}},
)
