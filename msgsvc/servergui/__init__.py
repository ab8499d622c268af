"""The server's window: ``twistd -n msgsvc --gui``."""
