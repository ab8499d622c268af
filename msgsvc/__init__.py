"""msgsvc: a small, self-hostable message service built on Twisted."""

__version__ = "0.1.0"
