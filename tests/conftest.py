"""Test set-up: Keras 2 for tf-agents, quiet TensorFlow logs, fixed seeds."""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# The longest modules (every flag file end to end), longest first, start before the others, so
# that the two workers (`-n 2 --dist loadfile --no-loadscope-reorder` in pytest.ini: files are
# handed out in this order, not by their number of tests) share them and finish together.
LONGEST_FIRST = ("tests/training/experiments_test.py", "tests/training/experiments_vid_test.py",
                 "tests/training/experiments_davis_test.py",
                 "tests/training/experiments_seg_test.py", "tests/training/stage1_test.py",
                 "tests/serving/exportable_test.py", "tests/training/real_data_test.py",
                 "tests/export_test.py")


def pytest_collection_modifyitems(config, items):
    """Moves `LONGEST_FIRST` to the front."""
    del config

    def rank(item):
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)
