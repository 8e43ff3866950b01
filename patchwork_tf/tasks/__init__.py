"""Tasks: one object per task owns its model builder, loss, predictions, reward metric
(Eq. 2, 3), evaluation metric, flip merge and serving post-processing (`tasks.base.Task`).

`get(name)` is the registry and the only place a task name is looked up; everything else asks
the task object.
"""
from patchwork_tf.tasks.base import Task
from patchwork_tf.tasks.detection import DetectionTask
from patchwork_tf.tasks.segmentation import SegmentationTask

_REGISTRY = {task.name: task for task in (DetectionTask, SegmentationTask)}
TASKS = tuple(_REGISTRY)


def get(name):
    """The `Task` class of `name`, one of `TASKS`."""
    if name not in _REGISTRY:
        raise ValueError(f"task must be one of {TASKS}, got {name!r}.")
    return _REGISTRY[name]


__all__ = ["DetectionTask", "SegmentationTask", "TASKS", "Task", "get"]
