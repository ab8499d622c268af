"""msgsvc's tests: ``test_<path>.py`` tests the module ``msgsvc/<path>.py`` or the package ``msgsvc/<path>/``,
its folders joined by ``_`` (``test_hub_core.py`` tests ``msgsvc/hub/core.py``), and a suite across modules is
named after what it exercises (``*_end_to_end``, ``test_hostile_*``, ``test_twistd``); what they share is in
``tests/support/``."""
