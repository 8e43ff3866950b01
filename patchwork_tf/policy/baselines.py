"""Hand-designed attention policies of paper Tab. 1 (Sec. 4): random and scanning.

Both are tf-agents policies over the same time step and action specs as the learned DDQN
policy, so drivers, environments and evaluation treat all three alike.
"""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.policies import random_tf_policy
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step


def random_policy(time_step_spec, action_spec):
    """The Random baseline of Tab. 1: each stream picks a window uniformly at each step.

    Args:
      time_step_spec: the environment's `TimeStep` spec.
      action_spec: scalar integer `BoundedTensorSpec` of window indices.

    Returns:
      A `RandomTFPolicy`.
    """
    return random_tf_policy.RandomTFPolicy(time_step_spec, action_spec)


class ScanningPolicy(tf_policy.TFPolicy):
    """The Scanning baseline of Tab. 1: windows in a fixed order, each once per cycle.

    The policy state is an int32 counter per stream: the number of actions taken since the
    stream's episode began. A stream whose time step is FIRST (a new clip) restarts the scan at
    `order[0]`; otherwise it takes `order[counter % num_actions]`. So every window is visited
    exactly once in every `num_actions` consecutive steps of a stream, streams independently.
    """

    def __init__(self, time_step_spec, action_spec, order=None, name="ScanningPolicy"):
        """Builds the policy.

        Args:
          time_step_spec: the environment's `TimeStep` spec.
          action_spec: scalar integer `BoundedTensorSpec` with actions minimum .. maximum.
          order: a permutation of all actions (the scan pattern); None means ascending, i.e.
            row-major over the window grid.
          name: the policy's name.

        Raises:
          ValueError: an action spec that is not one bounded scalar integer, or an `order` that
            is not a permutation of all its actions.
        """
        if not (isinstance(action_spec, tensor_spec.BoundedTensorSpec)
                and action_spec.dtype.is_integer and action_spec.shape.rank == 0):
            raise ValueError(
                f"action_spec must be a scalar integer BoundedTensorSpec, got {action_spec}.")
        actions = np.arange(int(action_spec.minimum), int(action_spec.maximum) + 1)
        order = actions if order is None else np.asarray(order)
        if order.shape != actions.shape or not np.array_equal(np.sort(order), actions):
            raise ValueError(
                f"order must be a permutation of the actions {actions.tolist()}, got "
                f"{np.asarray(order).tolist()}.")
        super().__init__(
            time_step_spec,
            action_spec,
            policy_state_spec=tensor_spec.TensorSpec((), tf.int32, name="scan_counter"),
            name=name)
        self._order = tf.constant(order, action_spec.dtype)

    def _variables(self):
        return []

    def _distribution(self, time_step, policy_state):
        counter = tf.where(time_step.is_first(), tf.zeros_like(policy_state), policy_state)
        num_actions = tf.shape(self._order, out_type=counter.dtype)[0]
        actions = tf.gather(self._order, tf.math.floormod(counter, num_actions))
        return policy_step.PolicyStep(
            tfp.distributions.Deterministic(loc=actions), counter + 1, ())


class ChangePolicy(tf_policy.TFPolicy):
    """Looks where the frame changed most: `argmax_a change_a` of the observation's change cue.

    A hand-designed policy of ours, not the paper's: it reads the `change` entry that
    `patchwork_tf.policy.observation` adds (mean absolute change of each window's pixels since
    the window was last processed) and ignores the memory and history. Ties (e.g. right after
    a key frame, when every change is 0) go to the lowest window index.
    """

    def __init__(self, time_step_spec, action_spec, name="ChangePolicy"):
        observation_spec = time_step_spec.observation
        if not isinstance(observation_spec, dict) or "change" not in observation_spec:
            raise ValueError(
                "ChangePolicy reads observation['change']: build the observation with the change "
                f"cue (AttentionObservation(change_cue=True)); got {observation_spec}.")
        super().__init__(time_step_spec, action_spec, name=name)

    def _variables(self):
        return []

    def _distribution(self, time_step, policy_state):
        actions = tf.argmax(time_step.observation["change"], axis=-1,
                            output_type=self.action_spec.dtype)
        actions += tf.cast(self.action_spec.minimum, actions.dtype)
        return policy_step.PolicyStep(tfp.distributions.Deterministic(loc=actions), policy_state,
                                      ())
