"""The build that runs is the one asked for: compiled with mypyc, or pure Python (msgsvc/build.py)."""

from __future__ import annotations

import importlib
import os
from importlib.machinery import EXTENSION_SUFFIXES

from twisted.trial.unittest import SynchronousTestCase

from msgsvc import build


class RunningBuildTests(SynchronousTestCase):
    def test_the_build_running_is_the_one_asked_for(self) -> None:
        """``MSGSVC_COMPILE=1`` (.ci/run, README's test command): every module of the hot path runs
        compiled, from an extension module built from the sources as they are; ``0``: each from its
        ``.py``; unset: one or the other, never a mix."""
        asked = os.environ.get("MSGSVC_COMPILE")
        files = {m: importlib.import_module(m).__file__ or "" for m in build.COMPILED}
        if asked == "1":
            self.assertEqual(build.running(), build.MYPYC)
            for module, path in files.items():
                self.assertTrue(path.endswith(tuple(EXTENSION_SUFFIXES)), (module, path))
        elif asked == "0":
            self.assertEqual(build.running(), build.PURE)
            for module, path in files.items():
                self.assertTrue(path.endswith(".py"), (module, path))
        else:
            self.assertIn(build.running(), (build.MYPYC, build.PURE))

    def test_the_build_says_a_module_it_does_not_run_compiled(self) -> None:
        """Extensions of an older list of modules: the build is a mix, and says which run compiled."""
        compiled = [m for m in build.COMPILED if build.is_compiled(m)]
        self.patch(build, "COMPILED", (*build.COMPILED, "msgsvc.build"))  # never compiled
        if compiled:
            self.assertEqual(
                build.running(), f"mixed: compiled {', '.join(compiled)}; the rest pure Python"
            )
        else:
            self.assertEqual(build.running(), build.PURE)


class ChoiceTests(SynchronousTestCase):
    """What setup.py builds."""

    def setUp(self) -> None:
        self.headers = self.mktemp()  # Python's headers, as python3-dev installs them
        os.makedirs(self.headers)
        with open(os.path.join(self.headers, "Python.h"), "w"):
            pass
        self.path = os.environ["PATH"]

    def test_a_c_compiler_and_pythons_headers_present_compile(self) -> None:
        self.assertTrue(build.compile_wanted({"CC": "sh", "PATH": self.path}, self.headers))

    def test_no_c_compiler_builds_pure_python(self) -> None:
        self.assertFalse(build.compile_wanted({"CC": "no-such-cc", "PATH": self.path}, self.headers))
        self.assertFalse(build.compile_wanted({"CC": "sh -x", "PATH": "/nonexistent"}, self.headers))

    def test_no_headers_build_pure_python(self) -> None:
        self.assertFalse(build.compile_wanted({"CC": "sh", "PATH": self.path}, os.path.dirname(self.headers)))

    def test_the_variable_forces_either(self) -> None:
        compiler_missing = {"MSGSVC_COMPILE": "1", "CC": "no-such-cc", "PATH": self.path}
        self.assertTrue(build.compile_wanted(compiler_missing, "/nonexistent"))
        self.assertFalse(build.compile_wanted({"MSGSVC_COMPILE": "0", "CC": "sh", "PATH": self.path}, self.headers))

    def test_any_other_value_is_an_error(self) -> None:
        with self.assertRaises(ValueError) as raised:
            build.compile_wanted({"MSGSVC_COMPILE": "yes"})
        self.assertIn("MSGSVC_COMPILE is 1 (compiled), 0 (pure Python) or unset", str(raised.exception))
