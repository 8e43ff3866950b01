"""Tests for the video stream environment: Eq. 2 rewards, episodes, specs, with a fake twin."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tf_agents.trajectories import time_step as ts

import patchwork_tf as pw
from patchwork_tf.policy import environment
from patchwork_tf.policy import q_network
from tests.policy.fake_twin import FakeTwin, frame_iou

# 8x8 frames, M=2, N=1: four 4x4 windows, row-major (0 top-left ... 3 bottom-right).
_SIZE = 8
_WINDOWS = [(0, 0, 4, 4), (0, 4, 4, 4), (4, 0, 4, 4), (4, 4, 4, 4)]


def _square(y, x):
    mask = np.zeros([_SIZE, _SIZE], np.uint8)
    mask[y:y + 2, x:x + 2] = 1
    return mask


def _clip(masks, shown=None):
    """One clip: `masks` [T] ground truth; `shown` [T] what the frames show (default: masks)."""
    shown = masks if shown is None else shown
    frames = np.repeat(np.stack(shown)[..., None] * 255, 3, axis=-1).astype(np.uint8)
    return {"frames": frames, "mask": np.stack(masks).astype(np.uint8),
            "clip_id": np.bytes_("c")}


def _dataset(clips, batch_size):
    stacked = {k: np.stack([c[k] for c in clips]) for k in clips[0]}
    return tf.data.Dataset.from_tensor_slices(stacked).batch(batch_size, drop_remainder=True)


def _env(clips, batch_size, cell="pixels", change_cue=False, pool_memory=False,
         reward="clipped"):
    return environment.VideoStreamEnvironment(
        FakeTwin(pw.WindowGrid((_SIZE, _SIZE), 2, 1)), _dataset(clips, batch_size), cell_name=cell,
        metric_fn=frame_iou, num_actions=len(_WINDOWS), alpha=0.5, change_cue=change_cue,
        pool_memory=pool_memory, reward=reward)


# Rewards (Eq. 2).


def test_reward_of_eq2_on_hand_made_cases():
    # The square moves from the top-left window (frame 0) to the bottom-right (frame 1).
    # Stream 0 looks at the bottom-right window: the prediction gains the new square but
    # keeps the stale one, f = IoU = 4 / 8 = 0.5, against f = 0 for the previous prediction:
    # R = 0.5. Stream 1 looks at the empty top-right window: the prediction is unchanged,
    # R = max(0, 0 - 0) = 0. Stream 2 looks at the top-left window: it clears the stale
    # square but still misses the new one, f = 0 before and after, R = 0.
    moving = _clip([_square(1, 1), _square(5, 5)])
    env = _env([moving] * 3, batch_size=3)
    first = env.current_time_step()
    np.testing.assert_array_equal(first.step_type, [ts.StepType.FIRST] * 3)
    np.testing.assert_array_equal(first.reward, [0.0] * 3)
    step = env.step(tf.constant([3, 1, 0]))
    np.testing.assert_allclose(step.reward, [0.5, 0.0, 0.0], rtol=1e-6, atol=1e-6)


def test_negative_gain_gives_zero_reward():
    # Ground truth keeps the top-left square only, but a distractor appears in the
    # bottom-right of the frame. Looking there adds a false positive: f drops from 1 to 0.5,
    # and Eq. 2 clamps the reward to 0. Looking at the top-left leaves f = 1: reward 0.
    masks = [_square(1, 1), _square(1, 1)]
    shown = [_square(1, 1), _square(1, 1) + _square(5, 5)]
    env = _env([_clip(masks, shown)] * 2, batch_size=2)
    step = env.step(tf.constant([3, 0]))
    np.testing.assert_allclose(step.reward, [0.0, 0.0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(frame_iou({"mask": tf.constant(masks[1:] * 2)},
                                         {"mask_logits": env._twin.memory("pixels")[..., 0]}),
                               [0.5, 1.0], rtol=1e-6, atol=1e-6)


def test_the_difference_reward_keeps_the_loss():
    # The case above without Eq. 2's clipping: the false positive costs 1 - 0.5.
    masks = [_square(1, 1), _square(1, 1)]
    shown = [_square(1, 1), _square(1, 1) + _square(5, 5)]
    env = _env([_clip(masks, shown)] * 2, batch_size=2, reward="difference")
    np.testing.assert_allclose(env.step(tf.constant([3, 0])).reward, [-0.5, 0.0],
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="reward must be one of"):
        _env([_clip(masks, shown)] * 2, batch_size=2, reward="squared")


# Episodes over clips.


def _episode_clips():
    # Clip a: square in the top-left for 4 frames; clip b: in the bottom-right.
    a = _clip([_square(1, 1)] * 4)
    b = _clip([_square(5, 5)] * 4)
    return [a, a, b, b]


def test_step_types_over_two_clips_and_reset_on_step_after_last():
    env = _env(_episode_clips(), batch_size=2)
    step_types = [env.current_time_step().step_type.numpy()]
    for _ in range(4):
        step_types.append(env.step(tf.constant([0, 1])).step_type.numpy())
    np.testing.assert_array_equal(
        np.stack(step_types)[:, 0],
        [ts.StepType.FIRST, ts.StepType.MID, ts.StepType.MID, ts.StepType.LAST,
         ts.StepType.FIRST])
    np.testing.assert_array_equal(np.stack(step_types)[:, 0], np.stack(step_types)[:, 1])
    assert env.clip_length == 4
    # The step after LAST warm-started clip b: its frame 0 is the memory, history is cleared.
    restarted = env.current_time_step()
    np.testing.assert_array_equal(restarted.observation["history"], np.zeros([2, 4]))
    np.testing.assert_array_equal(restarted.observation["memory"][..., 0] > 0,
                                  np.stack([_square(5, 5)] * 2) > 0)
    np.testing.assert_array_equal(restarted.reward, [0.0, 0.0])


def test_history_follows_eq1():
    env = _env(_episode_clips(), batch_size=2)
    env.step(tf.constant([0, 1]))
    obs = env.step(tf.constant([0, 3])).observation
    np.testing.assert_allclose(obs["history"], [[1.0, 0, 0, 0], [0, 0.5, 0, 1.0]],
                               rtol=1e-6, atol=1e-6)


def test_discount_is_one_also_at_clip_end():
    env = _env(_episode_clips(), batch_size=2)
    for _ in range(3):
        step = env.step(tf.constant([0, 0]))
    np.testing.assert_array_equal(step.step_type, [ts.StepType.LAST] * 2)
    np.testing.assert_array_equal(step.discount, [1.0, 1.0])


def test_steps_in_tf_function_match_eager():
    eager = _env(_episode_clips(), batch_size=2)
    graph = _env(_episode_clips(), batch_size=2)
    step_fn = tf.function(graph.step)
    actions = [[3, 1], [2, 0], [1, 1], [0, 3], [2, 2]]
    for action in actions:
        want = eager.step(tf.constant(action))
        got = step_fn(tf.constant(action))
        tf.nest.map_structure(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), want, got)
    assert step_fn.experimental_get_tracing_count() == 1


# Specs and observations.


def test_observation_spec_is_q_network_input_spec():
    # Full: the network's observation_spec; pooled: its input_tensor_spec.
    clips = [_clip([_square(1, 1)] * 3)] * 2
    env = _env(clips, batch_size=2, cell="pixels_half")
    pooled_env = _env(clips, batch_size=2, cell="pixels_half", pool_memory=True)
    assert env.observation_spec()["memory"].shape == (4, 4, 1)
    assert pooled_env.observation_spec()["pooled_memory"].shape == (4, 1)
    tf_keras.utils.set_random_seed(0)
    net = q_network.AttentionQNetwork(
        env.observation_spec(), env.action_spec(),
        [(y // 2, x // 2, h // 2, w // 2) for y, x, h, w in _WINDOWS])
    assert net.observation_spec == env.observation_spec()
    assert net.input_tensor_spec == pooled_env.observation_spec()
    for environ in (env, pooled_env):
        time_step = environ.current_time_step()
        tf.nest.assert_same_structure(time_step, environ.time_step_spec())
        for value, spec in zip(tf.nest.flatten(time_step),
                               tf.nest.flatten(environ.time_step_spec())):
            assert value.shape[1:] == spec.shape
            assert value.dtype == spec.dtype
        assert net(time_step.observation)[0].shape == (2, 4)


def test_pooled_memory_is_each_windows_mean_of_the_memory():
    # The same clips and actions in both environments; the pooled observation holds the
    # numpy mean of each 2x2 window (of the 4x4 half-resolution memory) and nothing else.
    clips = [_clip([_square(1, 1), _square(5, 5), _square(3, 4)])] * 2
    env = _env(clips, batch_size=2, cell="pixels_half", change_cue=True)
    pooled_env = _env(clips, batch_size=2, cell="pixels_half", change_cue=True,
                      pool_memory=True)
    for actions in (None, [3, 1], [0, 2]):
        if actions is None:
            full, pooled = env.current_time_step(), pooled_env.current_time_step()
        else:
            full, pooled = env.step(tf.constant(actions)), pooled_env.step(
                tf.constant(actions))
        assert set(pooled.observation) == {"pooled_memory", "history", "change"}
        memory = full.observation["memory"].numpy()
        want = np.stack([memory[:, y // 2:(y + h) // 2, x // 2:(x + w) // 2].mean(axis=(1, 2))
                         for y, x, h, w in _WINDOWS], axis=1)
        np.testing.assert_allclose(pooled.observation["pooled_memory"], want,
                                   rtol=1e-6, atol=1e-6)
        for key in ("history", "change"):
            np.testing.assert_array_equal(pooled.observation[key], full.observation[key])
        np.testing.assert_array_equal(pooled.reward, full.reward)


def test_change_cue_observes_where_the_frame_changed():
    # The square moves from window 0 to window 3; stream 0 processes window 3, stream 1
    # window 1. A window where the 2x2 square appeared or left (4 of its 16 pixels go from
    # -1 to 1 in every channel) has change 4 * 2 / 16 = 0.5 until it is processed.
    env = _env([_clip([_square(1, 1), _square(5, 5), _square(5, 5)])] * 2, batch_size=2,
               change_cue=True)
    first = env.current_time_step()
    np.testing.assert_allclose(first.observation["change"], np.zeros((2, 4)),
                               rtol=1e-6, atol=1e-6)
    step = env.step(tf.constant([3, 1]))
    np.testing.assert_allclose(step.observation["change"], [[0.5, 0, 0, 0], [0.5, 0, 0, 0.5]],
                               rtol=1e-6, atol=1e-6)
    step = env.step(tf.constant([0, 0]))
    np.testing.assert_allclose(step.observation["change"], [[0, 0, 0, 0], [0, 0, 0, 0.5]],
                               rtol=1e-6, atol=1e-6)
    assert env.observation_spec()["change"].shape == (4,)


def test_bad_clips_and_cell_are_refused():
    clip = _clip([_square(1, 1)] * 3)
    twin = FakeTwin(pw.WindowGrid((_SIZE, _SIZE), 2, 1))
    unbatched = _dataset([clip] * 2, 2).unbatch().batch(2)
    with pytest.raises(ValueError, match="drop_remainder"):
        environment.VideoStreamEnvironment(twin, unbatched, "pixels", frame_iou, 4)
    with pytest.raises(ValueError, match="not a cell"):
        environment.VideoStreamEnvironment(twin, _dataset([clip] * 2, 2), "nope", frame_iou, 4)
    with pytest.raises(ValueError, match="tf.data.Dataset"):
        environment.VideoStreamEnvironment(twin, iter([clip]), "pixels", frame_iou, 4)


@pytest.mark.slow
def test_rewards_memory_and_specs_with_real_twin():
    """The environment on the real twin of a tiny MobileNetV2 (alpha 0.35, 64x64, M=2, N=1)."""
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.applications.MobileNetV2(
        input_shape=(64, 64, 3), alpha=0.35, include_top=False, weights=None)
    grid = pw.WindowGrid((64, 64), 2, 1)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(2, 3, 64, 64, 3), dtype=np.uint8)
    # The metric's ground truth: the stock model's features of each frame, so f measures
    # how close the twin's full-frame output is to a fresh full-frame pass.
    stock = model(tf.reshape(tf.cast(frames, tf.float32) / 127.5 - 1.0, [6, 64, 64, 3]))
    features = tf.reshape(stock, [2, 3] + stock.shape[1:].as_list())
    clips = tf.data.Dataset.from_tensors({"frames": frames, "features": features}).repeat()

    def closeness(gt, predictions):
        return -tf.reduce_mean(tf.abs(predictions - gt["features"]), axis=[1, 2, 3])

    cell = "block_13_depthwise"
    env = environment.VideoStreamEnvironment(
        pw.patchwork_model(model, grid), clips, cell, closeness, grid.num_actions)
    actions = [tf.constant([3, 0]), tf.constant([1, 1])]
    steps = [env.step(a) for a in actions]

    reference = pw.patchwork_model(model, grid)
    reference.reset_states(2)
    previous = reference.warm_start(tf.cast(frames[:, 0], tf.float32) / 127.5 - 1.0)
    for t, (action, step) in enumerate(zip(actions, steps), start=1):
        current = reference.step(tf.cast(frames[:, t], tf.float32) / 127.5 - 1.0, action)
        gt = {"features": features[:, t]}
        want = tf.maximum(0.0, closeness(gt, current) - closeness(gt, previous))
        np.testing.assert_allclose(step.reward, want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(step.observation["memory"], reference.memory(cell),
                                   rtol=1e-6, atol=1e-6)
        previous = current
    assert float(tf.reduce_max(steps[0].reward)) > 0.0
    np.testing.assert_array_equal(steps[-1].step_type, [ts.StepType.LAST] * 2)

    net = q_network.AttentionQNetwork(
        env.observation_spec(), env.action_spec(),
        q_network.windows_in_memory(grid, env.observation_spec()["memory"].shape))
    assert net.observation_spec == env.observation_spec()
    assert env.observation_spec()["memory"].shape == (4, 4, 192)
    assert net(steps[-1].observation)[0].shape == (2, 4)
