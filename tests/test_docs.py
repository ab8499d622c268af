"""The documentation stays true to the code."""

from __future__ import annotations

import os
import re

from twisted.trial.unittest import SynchronousTestCase

from msgsvc.options import Options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read(*path: str) -> str:
    with open(os.path.join(ROOT, *path), encoding="utf-8") as f:
        return f.read()


def literal_after(text: str, heading: str) -> str:
    """The first indented literal line after ``heading``."""
    rest = text[text.index(heading) :]
    return re.search(r"::\n\n    (.+)\n", rest).group(1)  # type: ignore[union-attr]


class DocsTests(SynchronousTestCase):
    def test_ci_runs_exactly_the_readme_test_command(self) -> None:
        command = literal_after(read("README.rst"), "Run the whole test suite")
        last = [line for line in read(".ci", "run").splitlines() if line.strip()][-1]
        self.assertEqual(last, command)

    def test_readme_runs_the_plugin(self) -> None:
        command = literal_after(read("README.rst"), "Run the server")
        self.assertTrue(command.endswith("twistd -n --pidfile= msgsvc"), command)

    def test_readme_lists_every_option(self) -> None:
        readme = read("README.rst")
        for long, *_ in Options.optParameters + Options.optFlags:
            self.assertIn(f"--{long}", readme)
        for long in ["--listen", "--web", "--web-origin", "--irc"]:  # opt_ methods, not in the tables
            self.assertIn(long, readme)

    def test_protocol_doc_lists_every_error_code(self) -> None:
        from msgsvc.wire import Code

        doc = read("docs", "protocol.rst")
        for code in Code:
            self.assertIn(f"``{code.value}``", doc)

    def test_rst_is_well_formed(self) -> None:
        """A warning (a malformed table, say) raises docutils' SystemMessage."""
        import docutils.core

        for path in (
            "README.rst",
            *(os.path.join("docs", n) for n in os.listdir(os.path.join(ROOT, "docs")) if n.endswith(".rst")),
        ):
            docutils.core.publish_doctree(
                read(path), source_path=path, settings_overrides={"halt_level": 2, "report_level": 5}
            )

    def test_plugin_file_is_tiny(self) -> None:
        self.assertFalse(os.path.exists(os.path.join(ROOT, "twisted", "__init__.py")))
        self.assertFalse(os.path.exists(os.path.join(ROOT, "twisted", "plugins", "__init__.py")))
        source = read("twisted", "plugins", "msgsvc_plugin.py")
        self.assertIn('ServiceMaker(\n    "msgsvc",\n    "msgsvc.tap",', source)
        self.assertNotIn("reactor", source)

    def test_what_a_kill_9_loses_of_the_history_counts_what_waits_to_be_tried_again(self) -> None:
        """attack37 F4: the docs say a ``kill -9`` loses at most the last second or so of the history
        (the group commit's window), but what waits to be asked again while the store fails (up to a
        minute, 10,000 messages) is in memory only: real sockets, SQLite's file locked 20 s, kill -9
        15 s into it, restart: 200 of 204 messages answered SENT were not in the history (sent 0 to
        14.8 s into the lock).  Each sentence saying what a kill -9 loses of the history must say so."""
        for path in ("README.rst", os.path.join("docs", "protocol.rst")):
            text = " ".join(read(path).split())
            losing = [s for s in re.split(r"(?<=\.) ", text) if "kill -9" in s and "history" in s]
            self.assertTrue(losing, path)
            for sentence in losing:
                self.assertRegex(sentence, r"tried again|asked again|a minute", f"{path}: {sentence}")
