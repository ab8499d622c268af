"""``python -m msgsvc.bench``: load msgsvc and its peers over loopback and measure them.

Modules: :mod:`.stats` (latency histograms), :mod:`.dialects` (the msgsvc
and IRC lines a load client writes and reads), :mod:`.loadclient` (one
load connection), :mod:`.worker` (a load process), :mod:`.servers` (the
servers under test), :mod:`.run` (one measured run), :mod:`.report` (the
table and the plot).
"""
