"""The task registry, and the rule that only `patchwork_tf/tasks/` tells tasks apart by name."""
import os
import re

import pytest

from patchwork_tf import tasks

_PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "patchwork_tf")
_NAME = r"""["'](?:detection|segmentation)["']"""
# A task name compared with `==`/`!=` on either side, a `task` variable or attribute compared
# with anything, or a dict keyed by task names (a switch in disguise).
_COMPARISON = re.compile(
    rf"[!=]=\s*{_NAME}|{_NAME}\s*[!=]=|\btask(?:_name)?\s*[!=]=|\.task\s*[!=]=|"
    rf"[{{,]\s*{_NAME}\s*:")


def test_get_returns_each_task_and_refuses_unknown_names():
    assert tasks.TASKS == ("detection", "segmentation")
    assert tasks.get("detection") is tasks.DetectionTask
    assert tasks.get("segmentation") is tasks.SegmentationTask
    for name in tasks.TASKS:
        assert tasks.get(name).name == name
    with pytest.raises(ValueError, match=r"task must be one of \('detection', "
                                         r"'segmentation'\), got 'keypoints'"):
        tasks.get("keypoints")


def test_the_comparison_pattern_catches_switches():
    for line in ('if task == "detection":', "if config.task != 'segmentation':",
                 'x = a if "segmentation" == name else b', '{"detection": 1, "segmentation": 2}',
                 "task_name == other"):
        assert _COMPARISON.search(line), line
    for line in ('flags.DEFINE_enum("task", "detection", list(tasks.TASKS), "The task.")',
                 'tasks.get(config.task).uses_mask', 'name="detection", task="detection",'):
        assert not _COMPARISON.search(line), line


def test_no_module_outside_tasks_compares_a_task_name():
    found = []
    for directory, _, files in os.walk(_PACKAGE):
        if os.path.relpath(directory, _PACKAGE).split(os.sep)[0] == "tasks":
            continue
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        if _COMPARISON.search(line):
                            found.append(f"{os.path.relpath(path, _PACKAGE)}:{number}: "
                                         f"{line.strip()}")
    assert not found, ("Ask the task object (patchwork_tf.tasks.get(name)) instead of "
                       "comparing task names:\n" + "\n".join(found))
