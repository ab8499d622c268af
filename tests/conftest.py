"""pytest: run the trial suite from a scratch folder, as trial runs it from _trial_temp.

``TestCase.mktemp`` makes paths relative to the working directory; without
this they would land in the checkout.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def _scratch_working_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("trial"))
    try:
        yield
    finally:
        os.chdir(previous)
