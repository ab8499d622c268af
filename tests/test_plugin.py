"""The twistd plugin is found after a plain (non-editable) install."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["setup.py", "pyproject.toml", "README.rst", "msgsvc", "twisted"]

CHECK = """
import msgsvc, twisted.plugins.msgsvc_plugin as plugin
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "msgsvc"]
assert len(makers) == 1, makers
print(msgsvc.__file__)
print(plugin.__file__)
"""


class InstalledPluginTests(SynchronousTestCase):
    def test_found_after_pip_install(self) -> None:
        # Outside the checkout, which trial's and pytest's temporary folders are not.
        scratch = tempfile.mkdtemp(prefix="msgsvc-plugin-test-")
        self.addCleanup(shutil.rmtree, scratch)
        target = os.path.join(scratch, "site")
        elsewhere = os.path.join(scratch, "elsewhere")
        os.makedirs(elsewhere)
        # Build from a fresh copy of the sources: a stale build/ in the checkout could hide a packaging bug.
        source = os.path.abspath(self.mktemp())
        os.makedirs(source)
        for name in SOURCES:
            path = os.path.join(ROOT, name)
            if os.path.isdir(path):
                shutil.copytree(
                    path, os.path.join(source, name), ignore=shutil.ignore_patterns("__pycache__", "*.so")
                )
            else:
                shutil.copy(path, source)
        # No build isolation: the build uses this environment's setuptools, offline; pure Python (the
        # plugin's packaging is the same either way, and the compiled build is the suite's).
        install = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
            + ["--target", target, source],
            capture_output=True,
            text=True,
            env=dict(os.environ, MSGSVC_COMPILE="0"),
        )
        self.assertEqual(install.returncode, 0, install.stderr)
        # Installing must not add package markers that would shadow Twisted's own.
        self.assertFalse(os.path.exists(os.path.join(target, "twisted", "__init__.py")))
        self.assertFalse(os.path.exists(os.path.join(target, "twisted", "plugins", "__init__.py")))

        env = dict(os.environ, PYTHONPATH=target)
        found = subprocess.run(
            [sys.executable, "-c", CHECK], cwd=elsewhere, env=env, capture_output=True, text=True
        )
        self.assertEqual(found.returncode, 0, found.stderr)
        # Found in an installed copy (this one, or the environment's own when the
        # suite runs after `pip install .`), never in the checkout.
        self.assertTrue(os.path.exists(os.path.join(target, "twisted", "plugins", "msgsvc_plugin.py")))
        # The browser page (--web) is installed with the code.
        static = os.path.join(target, "msgsvc", "fronts", "web", "static")
        self.assertEqual(sorted(os.listdir(static)), ["app.js", "icon.svg", "index.html", "style.css"])
        sources = tuple(os.path.join(ROOT, name) + os.sep for name in ("msgsvc", "twisted"))
        for path in found.stdout.split():
            self.assertFalse(path.startswith(sources), path)

        usage = subprocess.run(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "msgsvc", "--help"],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
        )
        self.assertEqual(usage.returncode, 0, usage.stderr)
        self.assertIn("--listen=", usage.stdout)
        self.assertIn("--web=", usage.stdout)
