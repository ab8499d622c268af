"""Tk on the Twisted reactor.

The only module that touches :mod:`twisted.internet.tksupport` (which may be
deprecated upstream): the reactor runs, and Tk's events are serviced from it.
Never call Tk's ``mainloop`` and never open a modal dialog under it.
"""

from __future__ import annotations

import tkinter

from twisted.internet import tksupport
from twisted.internet.interfaces import IReactorTime


def attach(root: tkinter.Tk, reactor: IReactorTime) -> None:
    """Service ``root``'s events from ``reactor`` until :func:`detach`."""
    tksupport.install(root, reactor=reactor)


def detach() -> None:
    tksupport.uninstall()


def display_problem() -> str:
    """Why Tk cannot open a window here, or '' if it can."""
    try:
        tkinter.Tk().destroy()
    except tkinter.TclError as e:
        return str(e)
    return ""
