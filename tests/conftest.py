"""Test set-up: Keras 2 for tf-agents, quiet TensorFlow logs, fixed seeds."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(config, items):
    """Drops `tf.test.TestCase.test_session`, a deprecated helper that pytest collects as a
    test and that always skips itself."""
    del config
    items[:] = [item for item in items if item.name != "test_session"]
