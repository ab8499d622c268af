"""The twistd plugin: ``twistd -n msgsvc``."""

from twisted.application.service import ServiceMaker

msgsvc = ServiceMaker(
    "msgsvc",
    "msgsvc.tap",
    "A message server: unique usernames, unicast, multicast and broadcast text messages.",
    "msgsvc",
)
