"""The per-frame stream step of a Patchwork twin with an attention policy (paper Sec. 3.1).

A stream starts with `stream_start` (a key frame, or memories as they are) and then, per
frame, `stream_step`: the twin processes the window chosen before (`twin.step`), the
observer updates the action history `F_t` (Eq. 1) and the change cue, and a chooser
(`patchwork_tf.policy.choosers`) picks the next window from the new observation `S_t`.
The environment, the evaluation runner, the stage-3 loss, the rollout figure and the
exported module all step streams through these two functions.

Both are pure tensor code (they work eagerly, in `tf.function`s, in the SavedModel export
and under a gradient tape) over one of two kinds of twin memory:

* explicit state: `twin_state` is a dict of memories as `twin.initial_state` gives it (or
  of variables, which the cells update in place) and `twin.step_fn` returns the new one;
* stateful: `twin_state` is None and the memories are the twin's own variables
  (`twin.reset_states`, `twin.step`, `twin.memory`), as a driver loop uses them.
"""
import collections

import tensorflow as tf

StreamStep = collections.namedtuple(
    "StreamStep", ["outputs", "twin_state", "observer_state", "next_actions"])
StreamStep.__doc__ = """What a stream step (or start) returns.

Attributes:
  outputs: the twin's outputs on the frames (None for a start without a key frame).
  twin_state: the new memories, or None for a stateful twin.
  observer_state: the observer's new state (`AttentionObservation.state_spec`).
  next_actions: int32 [B], the window each stream processes next, or None without a chooser.
"""


def observe(twin, observer, twin_state, observer_state, observed_cell, mirrored=False):
    """The observation `S_t` (dict, see `AttentionObservation.observation`): the twin's memory
    of `observed_cell`, the action history and, with the cue, the change; with `mirrored`
    (a twin running mirror streams after the B observed ones) the first B streams only."""
    memory = (twin.memory(observed_cell) if twin_state is None
              else twin.memory_view(twin_state, observed_cell))
    if mirrored:
        memory = memory[:tf.shape(observer_state["history"])[0]]
    return observer.observation(memory, observer_state)


def _choose(twin, observer, chooser, twin_state, observer_state, observed_cell, last_actions,
            mirror):
    if chooser is None:
        return None
    observation = None
    if chooser.observes:
        if observed_cell is None:
            raise ValueError(f"The {chooser.name!r} chooser reads the observation: give the "
                             "observed_cell whose memory it sees.")
        observation = observe(twin, observer, twin_state, observer_state, observed_cell,
                              mirrored=mirror is not None)
    return chooser(observation, last_actions)


def _twin_frames(frames, mirror):
    return frames if mirror is None else tf.concat([frames, tf.reverse(frames, axis=[2])], 0)


def stream_start(twin, observer, frames=None, twin_state=None, key_frame=False, chooser=None,
                 observed_cell=None, mirror=None, batch_size=None, explicit_state=False):
    """Starts B streams.

    Args:
      twin: a Patchwork twin (`patchwork_tf.patchwork_model`).
      observer: the `AttentionObservation` of the chooser's observation.
      frames: float32 [B, H, W, 3], each stream's first frame in the twin's input range, or
        None: the observer starts from zeros (`initial_state(batch_size)`), as before any
        frame, and there is no key frame.
      twin_state: without a key frame, the memories the streams start from: a dict as
        `twin.initial_state` gives it (explicit state), or None for the twin's own variables
        (reset by the caller).
      key_frame: make a full-frame pass on `frames` first, which fills every memory; False
        keeps the memories (e.g. zeros).
      explicit_state: with a key frame, return its memories as a dict (`twin.warm_start_fn`)
        instead of filling the twin's variables (`twin.warm_start`).
      chooser: a `choosers.Chooser` for the first window, or None.
      observed_cell: the cell whose memory the chooser observes (layer L of Sec. 3.1).
      mirror: int32 [A], each window's mirror image: the twin also runs each frame's mirror
        image as a further stream (the flip variant, Sec. 4); the observer and chooser follow
        the unmirrored streams.
      batch_size: B, needed only without frames.

    Returns:
      A `StreamStep`: the key frame's outputs (or None), the memories, the observer's state
      and the first window of each stream (last action -1).
    """
    if key_frame and frames is None:
        raise ValueError("A key frame needs the streams' frames.")
    if key_frame and twin_state is not None:
        raise ValueError("A key frame overwrites every memory: pass explicit_state=True for "
                         "its memories as a dict, not twin_state.")
    if explicit_state and not key_frame:
        raise ValueError("explicit_state selects how a key frame returns its memories; "
                         "without a key frame, pass the memories as twin_state.")
    outputs = None
    if key_frame:
        twin_frames = _twin_frames(frames, mirror)
        if explicit_state:
            outputs, twin_state = twin.warm_start_fn(twin_frames)
        else:
            outputs = twin.warm_start(twin_frames)
    if frames is None:
        observer_state = observer.initial_state(batch_size)
    else:
        observer_state = observer.start(frames)
    no_action = tf.fill(tf.shape(observer_state["history"])[:1], -1)
    return StreamStep(outputs, twin_state, observer_state,
                      _choose(twin, observer, chooser, twin_state, observer_state,
                              observed_cell, no_action, mirror))


def stream_step(twin, observer, frames, actions, twin_state, observer_state, chooser=None,
                observed_cell=None, mirror=None):
    """One frame of B streams: window step, observer update, next window.

    Args:
      twin: a Patchwork twin.
      observer: the `AttentionObservation`.
      frames: float32 [B, H, W, 3] in the twin's input range.
      actions: int32 [B], the window each stream processes on `frames`.
      twin_state: the memories (dict, explicit state) or None (the twin's variables).
      observer_state: the observer's state after the previous frame.
      chooser: a `choosers.Chooser` for the next window, or None (e.g. a tf-agents driver
        chooses it, or this is the last frame).
      observed_cell: the cell whose memory the chooser observes.
      mirror: as in `stream_start`.

    Returns:
      A `StreamStep`: the twin's outputs (2B streams with `mirror`), the new memories, the
      observer's new state and the next windows (or None).
    """
    twin_actions = actions if mirror is None else tf.concat(
        [actions, tf.gather(mirror, actions)], 0)
    twin_frames = _twin_frames(frames, mirror)
    if twin_state is None:
        outputs = twin.step(twin_frames, twin_actions)
    else:
        outputs, twin_state = twin.step_fn(twin_frames, twin_actions, twin_state)
    observer_state = observer.advance(observer_state, frames, actions)
    return StreamStep(outputs, twin_state, observer_state,
                      _choose(twin, observer, chooser, twin_state, observer_state,
                              observed_cell, actions, mirror))
