"""The one stream step: explicit and stateful memories, the flip variant, hand-worked frames,
and a check that no other module re-implements it."""
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import patchwork_tf as pw
from patchwork_tf.policy import choosers
from patchwork_tf.policy import observation as observation_lib
from patchwork_tf.policy import stream

SIZE = 8
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _twin():
    """A 1x1 conv whose logit is the red channel: its output shows which frame each pixel saw."""
    inputs = tf_keras.Input((SIZE, SIZE, 3))
    conv = tf_keras.layers.Conv2D(1, 1, name="logits")
    model = tf_keras.Model(inputs, {"mask_logits": conv(inputs)})
    conv.set_weights([np.array([1.0, 0.0, 0.0]).reshape(1, 1, 3, 1), np.zeros(1)])
    return pw.patchwork_model(model, pw.WindowGrid((SIZE, SIZE), 2, 1))


def _frames(count, batch=1):
    return tf.constant(np.random.default_rng(0).uniform(-1, 1, (count, batch, SIZE, SIZE, 3)),
                       tf.float32)


def _window(action):
    """Pixels of window `action` (4x4 quadrants, row-major)."""
    row, col = divmod(action, 2)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[4 * row:4 * row + 4, 4 * col:4 * col + 4] = True
    return mask


def test_scanning_stream_by_hand_explicit_and_stateful_agree():
    twin = _twin()
    observer = observation_lib.AttentionObservation(twin.grid, 0.5, change_cue=False)
    chooser = choosers.scanning(4)
    frames = _frames(4)
    explicit = stream.stream_start(twin, observer, frames[0], key_frame=True,
                                   explicit_state=True, chooser=chooser)
    twin.reset_states(1)
    stateful = stream.stream_start(twin, observer, frames[0], key_frame=True, chooser=chooser)
    assert stateful.twin_state is None
    np.testing.assert_allclose(explicit.outputs["mask_logits"], frames[0][..., :1],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(explicit.next_actions, [0])
    seen = frames[0][0, ..., 0].numpy()
    history = np.zeros(4)
    for t in range(1, 4):
        action = int(explicit.next_actions[0])
        explicit = stream.stream_step(twin, observer, frames[t], explicit.next_actions,
                                      explicit.twin_state, explicit.observer_state, chooser)
        stateful = stream.stream_step(twin, observer, frames[t], stateful.next_actions,
                                      None, stateful.observer_state, chooser)
        # The window step refreshes the chosen quadrant only; Eq. 1 with alpha 0.5.
        seen = np.where(_window(action), frames[t][0, ..., 0], seen)
        history = np.minimum(0.5 * history + np.eye(4)[action], 1.0)
        np.testing.assert_allclose(explicit.outputs["mask_logits"][0, ..., 0], seen,
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(stateful.outputs["mask_logits"],
                                   explicit.outputs["mask_logits"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(explicit.observer_state["history"][0], history,
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(stateful.observer_state["history"], history[None],
                                   rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(explicit.next_actions, [t % 4])
        np.testing.assert_array_equal(stateful.next_actions, [t % 4])


def test_mirror_streams_follow_the_observed_stream():
    twin = _twin()
    cell = list(twin.state_spec())[-1]
    observer = observation_lib.AttentionObservation(twin.grid, 0.5, change_cue=False)
    batches = []

    def q_fn(observation):
        batches.append(observation["memory"].shape[0])
        return tf.one_hot([3], 4)

    chooser = choosers.greedy(q_fn, 4)
    mirror = tf.constant([1, 0, 3, 2])
    frames = _frames(2)
    twin.reset_states(2)
    start = stream.stream_start(twin, observer, frames[0], key_frame=True, chooser=chooser,
                                observed_cell=cell, mirror=mirror)
    step = stream.stream_step(twin, observer, frames[1], start.next_actions, None,
                              start.observer_state, chooser, cell, mirror=mirror)
    assert batches == [1, 1]
    np.testing.assert_array_equal(step.next_actions, [3])
    logits = step.outputs["mask_logits"][..., 0].numpy()
    mirrored = tf.reverse(frames, axis=[3])[..., 0].numpy()
    # Stream 0 refreshed window 3 of the frame, stream 1 window 2 of its mirror image.
    np.testing.assert_allclose(
        logits[0], np.where(_window(3), frames[1][0, ..., 0], frames[0][0, ..., 0]), rtol=1e-6)
    np.testing.assert_allclose(
        logits[1], np.where(_window(2), mirrored[1, 0], mirrored[0, 0]), rtol=1e-6)


def test_differentiates_through_explicit_state():
    # Stage 3's unrolled loss; its tf.function is exercised by tests/training/stages_test.py.
    twin = _twin()
    observer = observation_lib.AttentionObservation(twin.grid, 0.5, change_cue=True)
    chooser = choosers.change(4)
    cell = list(twin.state_spec())[-1]
    frames = _frames(3, batch=2)
    variables = twin.keras_model.trainable_variables
    with tf.GradientTape() as tape:
        step = stream.stream_start(twin, observer, frames[0], key_frame=True,
                                   explicit_state=True, chooser=chooser, observed_cell=cell)
        for t in (1, 2):
            step = stream.stream_step(twin, observer, frames[t], step.next_actions,
                                      step.twin_state, step.observer_state, chooser, cell)
        loss = tf.reduce_sum(step.outputs["mask_logits"])
    gradients = tape.gradient(loss, variables)
    assert step.next_actions.shape == [2]
    assert all(g is not None and np.any(g.numpy() != 0) for g in gradients)


def test_a_key_frame_needs_frames_and_no_memories():
    twin = _twin()
    observer = observation_lib.AttentionObservation(twin.grid, 0.5, change_cue=False)
    with pytest.raises(ValueError, match="needs the streams' frames"):
        stream.stream_start(twin, observer, None, key_frame=True, explicit_state=True)
    with pytest.raises(ValueError, match="explicit_state=True"):
        stream.stream_start(twin, observer, _frames(1)[0], twin.initial_state(1),
                            key_frame=True)
    with pytest.raises(ValueError, match="pass the memories as twin_state"):
        stream.stream_start(twin, observer, batch_size=1, explicit_state=True)


def _sources():
    root = os.path.join(REPO, "patchwork_tf")
    for directory, _, names in os.walk(root):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                with open(path) as f:
                    yield os.path.relpath(path, REPO), f.read()


def test_the_stream_step_and_the_choosers_exist_once():
    # Every per-frame loop updates the observer; only the stream step may do that. Greedy
    # argmax over Q-values and the scan order's positions are defined once, in the choosers.
    patterns = {
        r"observer\.(advance|start)\(": {"patchwork_tf/policy/stream.py",
                                         "patchwork_tf/policy/observation.py"},
        r"argmax\(\s*q_values": {"patchwork_tf/policy/choosers.py"},
        r"argsort\(\s*order": {"patchwork_tf/policy/choosers.py"},
    }
    found = {pattern: set() for pattern in patterns}
    for path, text in _sources():
        for pattern in patterns:
            if re.search(pattern, text):
                found[pattern].add(path)
    for pattern, allowed in patterns.items():
        assert found[pattern] <= allowed, (pattern, found[pattern] - allowed)
        assert found[pattern] & allowed, pattern
