"""A Patchwork twin run over one clip, recorded step by step for the figures.

`rollout` starts from zero memories (so the figures show the patchwork forming, Fig. 2), lets
an attention policy pick one window per frame (Sec. 3.1) and keeps, per step, the window, the
memory of one observed cell and the predictions. The policy conventions are those of the
serving module (`patchwork_tf.serving.exportable`): a learned policy sees the memory of its
cell and the action history `F_t` (Eq. 1) after the previous step (and, if it was trained
with it, the change cue of `patchwork_tf.policy.observation`) and the window is its greedy
action; 'scanning' visits the windows row-major, 'random' draws them uniformly (the
baselines of Tab. 1; `patchwork_tf.policy.choosers`). Each frame is one
`patchwork_tf.policy.stream.stream_step`.
"""
import dataclasses

import numpy as np

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.policy import choosers
from patchwork_tf.policy import observation as observation_lib
from patchwork_tf.policy import stream

POLICIES = ("scanning", "random")


@dataclasses.dataclass
class Rollout:
    """What happened in each of the `T` steps of a rollout.

    Attributes:
      frames: uint8 `[T, H, W, 3]`, the clip's frames.
      actions: int32 `[T]`, the window processed at each step.
      grid: the twin's `WindowGrid` (the actions' windows).
      cell_name: the observed cell, or None.
      memories: float32 `[T, H_l, W_l, C]`, the observed cell's memory (full-frame view)
        after each step, or None without a cell.
      predictions: `T` dicts of numpy arrays without the batch dimension: the
        post-processing callable's outputs, or the model's outputs under `predictions`.
    """

    frames: np.ndarray
    actions: np.ndarray
    grid: object
    cell_name: str
    memories: np.ndarray
    predictions: list

    def window(self, t):
        """The window of step `t` in frame pixels."""
        return self.grid.window(int(self.actions[t]))


def _as_dict(outputs):
    if isinstance(outputs, dict):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        return {f"predictions_{i}": t for i, t in enumerate(outputs)}
    return {"predictions": outputs}


def rollout(twin, frames, policy="scanning", cell_name=None, postprocess=None, alpha=0.5,
            seed=0, warm_start=False, change_cue=False):
    """Runs `twin` over `frames` from zero memories (or, with `warm_start`, memories filled by
    a full-frame pass over the first frame, a key frame), one window per frame.

    Args:
      twin: a `patchwork_tf.PatchworkModel`; the observed cell must write whole windows (the
        default `write='window'`, or listed in `full_memory_cells`).
      frames: uint8 `[T, H, W, 3]`, e.g. a synthetic clip's `frames`.
      policy: 'scanning', 'random', or a callable from `dict(memory=float32 [1, H_l, W_l,
        C], history=float32 [1, num_actions])` to Q-values `[1, num_actions]` (or to
        `(q_values, state)` as a tf-agents `Network` returns); it reads `cell_name`.
      cell_name: the cell whose memory is recorded (and that a callable policy reads).
      postprocess: optional callable from the twin's outputs to a dict of tensors, e.g.
        a task object (`patchwork_tf.tasks`), whose predictions the figures draw.
      alpha: the action history's decay (Eq. 1).
      seed: the random policy's seed (`choosers.random`).
      warm_start: start from a key frame instead of zero memories (Fig. 4, the GIF).
      change_cue: a callable policy also observes the change cue.

    Returns:
      A `Rollout`.

    Raises:
      ValueError: frames that are not uint8 `[T, H, W, 3]` at the twin's frame size, an
        unknown policy name, or a callable policy without a cell.
    """
    frames = np.asarray(frames)
    height, width = twin.frame_size
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (height, width, 3):
        raise ValueError(
            f"frames must be uint8 [T, {height}, {width}, 3] for the twin, got "
            f"{frames.dtype} {frames.shape}; generate the clip at the twin's frame size.")
    if not callable(policy) and policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES} or a callable, got {policy!r}.")
    if callable(policy) and cell_name is None:
        raise ValueError("A learned policy reads a cell's memory: pass its cell_name.")
    num_actions = twin.grid.num_actions
    chooser = (choosers.greedy(policy, num_actions) if callable(policy)
               else choosers.by_name(policy, num_actions, seed=seed))
    twin.reset_states(1)
    observer = observation_lib.AttentionObservation(twin.grid, alpha, change_cue)
    step = stream.stream_start(
        twin, observer, clips_lib.preprocess_frames(frames[:1]) if warm_start else None,
        key_frame=warm_start, chooser=chooser, observed_cell=cell_name, batch_size=1)

    actions, memories, predictions = [], [], []
    for t in range(frames.shape[0]):
        action = step.next_actions
        step = stream.stream_step(twin, observer, clips_lib.preprocess_frames(frames[t:t + 1]),
                                  action, None, step.observer_state, chooser=chooser,
                                  observed_cell=cell_name)
        outputs = step.outputs if postprocess is None else postprocess(step.outputs)
        actions.append(int(action[0]))
        if cell_name is not None:
            memories.append(twin.memory(cell_name).numpy()[0])
        predictions.append({k: np.asarray(v)[0] for k, v in _as_dict(outputs).items()})
    return Rollout(frames=frames, actions=np.array(actions, np.int32), grid=twin.grid,
                   cell_name=cell_name,
                   memories=np.stack(memories) if memories else None,
                   predictions=predictions)
