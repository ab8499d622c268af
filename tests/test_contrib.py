"""contrib/msgsvc.service names only options the server really has, and systemd accepts it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

from twisted.scripts._twistd_unix import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from msgsvc import backup
from msgsvc.options import Options
from msgsvc.state.sqlite import Database

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT = os.path.join(ROOT, "contrib", "msgsvc.service")


def settings() -> dict[str, str]:
    with open(UNIT, encoding="utf-8") as unit:
        return dict(
            line.split("=", 1)
            for line in unit.read().splitlines()
            if "=" in line and not line.startswith("#")
        )


class UnitTests(SynchronousTestCase):
    def test_exec_start_parses_as_twistd_and_msgsvc_options(self) -> None:
        command = shlex.split(settings()["ExecStart"])
        self.assertEqual(os.path.basename(command[0]), "twistd")
        split = command.index("msgsvc")
        twistd = ServerOptions()
        # twistd's own options, then the plugin's: both must know every one.
        for arg in command[1:split]:
            name = arg.lstrip("-").split("=")[0]
            self.assertIn(name, {f for f, *_ in twistd.optFlags} | {p[0] for p in twistd.optParameters}, arg)
        options = Options()
        options.parseOptions(command[split + 1 :])
        self.assertEqual(options["db"], "/var/lib/msgsvc/msgsvc.sqlite3")
        self.assertEqual(options["listen"], ["tcp:8123"])

    def test_the_unit_runs_it_as_a_service_should(self) -> None:
        unit = settings()
        self.assertEqual(unit["Restart"], "on-failure")
        self.assertEqual(unit["DynamicUser"], "yes")  # an unprivileged user of its own
        self.assertEqual(unit["StateDirectory"], "msgsvc")  # /var/lib/msgsvc, writable for it alone
        self.assertEqual(unit["ProtectSystem"], "strict")
        self.assertEqual(unit["NoNewPrivileges"], "yes")
        self.assertGreaterEqual(int(unit["LimitNOFILE"]), 1000 + 64)

    def test_systemd_accepts_the_unit(self) -> None:
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise AssertionError("systemd-analyze is missing (.ci/run installs systemd)")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        with open(UNIT, encoding="utf-8") as unit:
            text = re.sub(r"/opt/msgsvc/bin/twistd", twistd, unit.read())
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, "msgsvc.service")
        with open(path, "w", encoding="utf-8") as copy:
            copy.write(text)
        result = subprocess.run([analyze, "verify", path], capture_output=True, text=True)
        self.assertEqual((result.returncode, result.stderr), (0, ""))


class BackupTests(SynchronousTestCase):
    def test_a_copy_of_a_database_in_use(self) -> None:
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        live, copy = os.path.join(folder, "live.sqlite3"), os.path.join(folder, "copy.sqlite3")
        database = Database(live)  # open, in WAL mode, as the server holds it
        self.addCleanup(database.close)
        database.record_seen([("alice", 1.0), ("Bob", 2.0)])
        self.assertEqual(backup.main([live, copy]), 0)
        self.assertEqual([r.name for r in Database(copy).load()], ["alice", "Bob"])

    def test_a_missing_database_is_an_error(self) -> None:
        self.assertEqual(backup.main(["/nonexistent/db.sqlite3", os.devnull]), 1)
