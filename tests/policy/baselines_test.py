"""Tests for the random and scanning baseline policies (Tab. 1)."""
import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from patchwork_tf.policy import baselines

_NUM_ACTIONS = 4
_ACTION_SPEC = tensor_spec.BoundedTensorSpec((), tf.int32, 0, _NUM_ACTIONS - 1)
_TIME_STEP_SPEC = ts.time_step_spec(tensor_spec.TensorSpec((2,), tf.float32))


def _time_step(step_types):
    step_types = tf.constant(step_types, tf.int32)
    batch = step_types.shape[0]
    return ts.TimeStep(step_type=step_types, reward=tf.zeros([batch]),
                       discount=tf.ones([batch]), observation=tf.zeros([batch, 2]))


def _run(policy, step_types_per_step, batch):
    """The policy's actions [steps, batch] over `step_types_per_step` [steps][batch]."""
    state = policy.get_initial_state(batch)
    actions = []
    action_fn = tf.function(policy.action)
    for step_types in step_types_per_step:
        step = action_fn(_time_step(step_types), state)
        actions.append(step.action.numpy())
        state = step.state
    return np.stack(actions)


def test_scanning_each_window_once_per_cycle_per_stream():
    order = [2, 0, 3, 1]
    policy = baselines.ScanningPolicy(_TIME_STEP_SPEC, _ACTION_SPEC, order=order)
    cycles = 3
    step_types = [[ts.StepType.FIRST] * 2] + [[ts.StepType.MID] * 2] * (
        cycles * _NUM_ACTIONS - 1)
    actions = _run(policy, step_types, batch=2)
    for stream in range(2):
        for cycle in range(cycles):
            window = actions[cycle * _NUM_ACTIONS:(cycle + 1) * _NUM_ACTIONS, stream]
            assert sorted(window.tolist()) == list(range(_NUM_ACTIONS))
            assert window.tolist() == order


def test_scanning_first_step_restarts_only_that_stream():
    policy = baselines.ScanningPolicy(_TIME_STEP_SPEC, _ACTION_SPEC)
    first, mid = ts.StepType.FIRST, ts.StepType.MID
    actions = _run(policy, [[first, first], [mid, mid], [first, mid], [mid, mid]], batch=2)
    assert actions[:, 0].tolist() == [0, 1, 0, 1]
    assert actions[:, 1].tolist() == [0, 1, 2, 3]


def test_scanning_bad_order_is_refused():
    with pytest.raises(ValueError, match="permutation"):
        baselines.ScanningPolicy(_TIME_STEP_SPEC, _ACTION_SPEC, order=[0, 1, 1, 2])
    with pytest.raises(ValueError, match="permutation"):
        baselines.ScanningPolicy(_TIME_STEP_SPEC, _ACTION_SPEC, order=[0, 1, 2])


def test_random_actions_in_range_and_all_windows_drawn():
    tf.random.set_seed(0)
    policy = baselines.random_policy(_TIME_STEP_SPEC, _ACTION_SPEC)
    actions = np.concatenate([
        policy.action(_time_step([ts.StepType.MID] * 16)).action.numpy() for _ in range(8)])
    assert actions.dtype == np.int32
    assert np.all((actions >= 0) & (actions < _NUM_ACTIONS))
    assert np.unique(actions).tolist() == list(range(_NUM_ACTIONS))


def test_change_takes_the_window_that_changed_most():
    spec = dict(memory=tf.TensorSpec((2, 2, 1), tf.float32),
                history=tf.TensorSpec((4,), tf.float32),
                change=tf.TensorSpec((4,), tf.float32))
    action_spec = tensor_spec.BoundedTensorSpec((), tf.int32, 0, 3)
    policy = baselines.ChangePolicy(ts.time_step_spec(spec), action_spec)
    change = tf.constant([[0.0, 0.2, 0.1, 0.0], [0.3, 0.0, 0.0, 0.4], [0.0, 0.0, 0.0, 0.0]])
    time_step = ts.restart(dict(memory=tf.zeros([3, 2, 2, 1]), history=tf.zeros([3, 4]),
                                change=change), batch_size=3)
    np.testing.assert_array_equal(policy.action(time_step).action, [1, 3, 0])


def test_change_needs_the_change_cue():
    spec = dict(memory=tf.TensorSpec((2, 2, 1), tf.float32),
                history=tf.TensorSpec((4,), tf.float32))
    with pytest.raises(ValueError, match="change cue"):
        baselines.ChangePolicy(ts.time_step_spec(spec),
                               tensor_spec.BoundedTensorSpec((), tf.int32, 0, 3))
