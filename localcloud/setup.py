"""The package list of pyproject.toml here, which TOML cannot compute: this folder is the
package ``localcloud`` (``package-dir``), so its subpackages are found in it and prefixed
(``realcloud/`` -> ``localcloud.realcloud``). This file itself stays out of the package."""

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    def find_package_modules(self, package, package_dir):
        return [found for found in super().find_package_modules(package, package_dir)
                if found[:2] != ("localcloud", "setup")]


setup(packages=["localcloud", *(f"localcloud.{name}" for name in find_packages())],
      cmdclass={"build_py": BuildPy})
