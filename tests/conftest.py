"""Test set-up: Keras 2 for tf-agents, quiet TensorFlow logs, fixed seeds."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# The longest modules (every flag file end to end) start first, so that with parallel
# workers (`-n 2 --dist loadfile` in pytest.ini) they run beside the others.
LONGEST_FIRST = ("tests/training/experiments_test.py", "tests/training/experiments_vid_test.py",
                 "tests/training/experiments_davis_test.py")


def pytest_collection_modifyitems(config, items):
    """Drops `tf.test.TestCase.test_session`, a deprecated helper that pytest collects as a
    test and that always skips itself, and moves `LONGEST_FIRST` to the front."""
    del config
    items[:] = [item for item in items if item.name != "test_session"]
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))
