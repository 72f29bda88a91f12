import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def store(tmp_path):
    import forklog

    return forklog.Store(tmp_path / "store")
