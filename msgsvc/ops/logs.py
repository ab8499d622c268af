"""``--log-format json``: twisted.logger's events as JSON, one a line (``jsonFileLogObserver``), on
standard output (``twistd -n``'s log; the journal's under systemd): a log shipper reads each line as one
event, with all its fields."""

from __future__ import annotations

import sys

from twisted.logger import ILogObserver, jsonFileLogObserver

#: :func:`json_log`'s name, as twistd's ``--logger`` takes it.
JSON_LOGGER = f"{__name__}.json_log"


def json_log() -> ILogObserver:
    """twistd's log observer for ``--log-format json``: each event a line of JSON on standard output."""
    return jsonFileLogObserver(sys.stdout, recordSeparator="")
