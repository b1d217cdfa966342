"""The wheel's build step: CMake builds libleakguard, the extension and the
`leakguard` command, and installs them into one package directory.

pyproject.toml holds the metadata; this file only replaces build_ext.
Environment:
  LEAKGUARD_WHEEL_BUILD_DIR  the CMake build directory (default
                             build/wheel-<python tag> in the source tree;
                             kept, so a second install rebuilds only changes)
  LEAKGUARD_CMAKE_ARGS       extra CMake arguments (e.g. -DCMAKE_CXX_COMPILER=clang++)
  LEAKGUARD_JOBS             parallel build jobs (default: all cores)
"""

import glob
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))


class CMakeBuild(build_ext):
    """Builds and stages the whole package with CMake."""

    def run(self):
        tag = "cp%d%d" % sys.version_info[:2]
        build_dir = os.environ.get("LEAKGUARD_WHEEL_BUILD_DIR") or os.path.join(
            ROOT, "build", "wheel-" + tag)
        build_dir = os.path.abspath(build_dir)
        stage = os.path.join(build_dir, "stage")
        jobs = os.environ.get("LEAKGUARD_JOBS") or str(os.cpu_count() or 1)
        configure = [
            "cmake", "-S", ROOT, "-B", build_dir,
            "-DPython3_EXECUTABLE=" + sys.executable,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLEAKGUARD_BUILD_TESTS=OFF", "-DLEAKGUARD_BUILD_BENCHMARKS=OFF",
            "-DLEAKGUARD_BUILD_EXAMPLES=OFF", "-DLEAKGUARD_BUILD_DOCS=OFF",
            "-DLEAKGUARD_WERROR=OFF",
            # Everything in the package directory: leakguard/libleakguard.so.0,
            # leakguard/_leakguard*.so (RPATH $ORIGIN), leakguard/bin/leakguard
            # (RPATH $ORIGIN/..).
            "-DCMAKE_INSTALL_LIBDIR=leakguard", "-DCMAKE_INSTALL_BINDIR=leakguard/bin",
            "-DLEAKGUARD_PYTHON_INSTALL_DIR=.",
        ] + shlex.split(os.environ.get("LEAKGUARD_CMAKE_ARGS", ""))
        self._run(configure)
        self._run(["cmake", "--build", build_dir, "-j", jobs])
        shutil.rmtree(stage, ignore_errors=True)
        self._run(["cmake", "--install", build_dir, "--prefix", stage])
        self._copy_package(os.path.join(stage, "leakguard"))

    def _run(self, command):
        print(" ".join(shlex.quote(c) for c in command), flush=True)
        subprocess.run(command, check=True)

    def _copy_package(self, staged):
        target = os.path.join(self.build_lib, "leakguard")
        os.makedirs(os.path.join(target, "bin"), exist_ok=True)
        files = glob.glob(os.path.join(staged, "_leakguard*.so"))
        files.append(os.path.join(staged, "_paths.py"))
        # The library under its SONAME (what the module and the command
        # load); wheels hold no symlinks, so the real file gets that name.
        sonames = [p for p in glob.glob(os.path.join(staged, "libleakguard.so.*"))
                   if p.count(".so.") == 1 and "." not in p.rsplit(".so.", 1)[1]]
        if len(files) < 2 or len(sonames) != 1:
            raise RuntimeError("leakguard: the CMake install in %s lacks the module "
                               "or libleakguard.so.N" % staged)
        for path in files + sonames:
            shutil.copyfile(os.path.realpath(path),
                            os.path.join(target, os.path.basename(path)))
        binary = os.path.join(target, "bin", "leakguard")
        shutil.copyfile(os.path.join(staged, "bin", "leakguard"), binary)
        os.chmod(binary, 0o755)
        if self.inplace:
            raise RuntimeError("leakguard: in-place (editable) builds are not supported; "
                               "use PYTHONPATH=build/DIR/python after a CMake build")


setup(
    ext_modules=[Extension("leakguard._leakguard", sources=[])],
    cmdclass={"build_ext": CMakeBuild},
)
