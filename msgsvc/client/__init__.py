"""The msgsvc client: ``python -m msgsvc.client``."""
