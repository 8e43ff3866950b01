"""The window choosers of `patchwork_tf.policy.choosers` as tf-agents policies (Tab. 1).

`ChooserPolicy` wraps any chooser over the same time step and action specs as the learned
DDQN policy, so drivers, environments and evaluation treat all of them alike:

* 'dqn': `GreedyQPolicy`, the argmax of a Q-function (any callable observation -> Q-values
  [B, A], e.g. the `AttentionQNetwork` that stage 2 trains);
* 'scanning': `ScanningPolicy`, row-major over the grid or in a given order;
* 'random': `random_policy`, uniform over the windows;
* 'change': `ChangePolicy`, the window whose pixels changed most since it was last
  processed (ours, not the paper's; needs the change cue).

A chooser that reads the last action (scanning) keeps it as the policy state, int32 per
stream; a FIRST time step (a new clip) restarts that stream as if it had taken none.
"""
import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step

from patchwork_tf.policy import choosers

POLICIES = choosers.NAMES


def _num_actions(action_spec):
    if not (isinstance(action_spec, tensor_spec.BoundedTensorSpec)
            and action_spec.dtype == tf.int32 and action_spec.shape.rank == 0
            and int(action_spec.minimum) == 0):
        raise ValueError("action_spec must be a scalar int32 BoundedTensorSpec of windows "
                         f"0 .. A - 1 (q_network.window_action_spec), got {action_spec}.")
    return int(action_spec.maximum) + 1


class ChooserPolicy(tf_policy.TFPolicy):
    """A `choosers.Chooser` as a deterministic tf-agents policy."""

    def __init__(self, time_step_spec, action_spec, chooser, name=None):
        """Builds the policy.

        Args:
          time_step_spec: the environment's `TimeStep` spec.
          action_spec: scalar int32 `BoundedTensorSpec` of window indices 0 .. A - 1.
          chooser: a `choosers.Chooser` over A windows.
          name: the policy's name; None names it after the chooser.

        Raises:
          ValueError: another action spec, or a chooser over another number of windows.
        """
        num_actions = _num_actions(action_spec)
        if chooser.num_actions != num_actions:
            raise ValueError(f"The {chooser.name!r} chooser has {chooser.num_actions} windows but "
                             f"the action spec {num_actions}.")
        self._chooser = chooser
        self._stateful = chooser.reads_last_action
        super().__init__(
            time_step_spec, action_spec,
            policy_state_spec=(tensor_spec.TensorSpec((), tf.int32, name="last_action")
                               if self._stateful else ()),
            name=name or f"{chooser.name.capitalize()}Policy")

    @property
    def chooser(self):
        return self._chooser

    def _variables(self):
        return list(self._chooser.variables)

    def _get_initial_state(self, batch_size):
        if not self._stateful:
            return ()
        return tf.fill(tf.reshape(batch_size, [1]), -1)

    def _distribution(self, time_step, policy_state):
        if self._stateful:
            last_actions = tf.where(time_step.is_first(), -1, policy_state)
        else:
            last_actions = tf.fill(tf.shape(time_step.step_type), -1)
        actions = self._chooser(time_step.observation, last_actions)
        return policy_step.PolicyStep(tfp.distributions.Deterministic(loc=actions),
                                      actions if self._stateful else policy_state, ())


class GreedyQPolicy(ChooserPolicy):
    """`argmax_a Q(S_t, a)` of `q_fn`, observation -> Q-values [B, A]; stateless."""

    def __init__(self, time_step_spec, action_spec, q_fn, name="GreedyQPolicy"):
        super().__init__(time_step_spec, action_spec,
                         choosers.greedy(q_fn, _num_actions(action_spec)), name)


class ScanningPolicy(ChooserPolicy):
    """The Scanning baseline of Tab. 1: windows in `order` (a permutation; None is row-major),
    each once in every A consecutive steps of a stream, streams independently."""

    def __init__(self, time_step_spec, action_spec, order=None, name="ScanningPolicy"):
        super().__init__(time_step_spec, action_spec,
                         choosers.scanning(_num_actions(action_spec), order), name)


class ChangePolicy(ChooserPolicy):
    """`argmax_a change_a` of the observation's change cue."""

    def __init__(self, time_step_spec, action_spec, name="ChangePolicy"):
        """Raises ValueError for an observation spec without `change`."""
        observation_spec = time_step_spec.observation
        if not isinstance(observation_spec, dict) or "change" not in observation_spec:
            raise ValueError(
                "ChangePolicy reads observation['change']: build the observation with the "
                f"change cue (AttentionObservation(change_cue=True)); got {observation_spec}.")
        super().__init__(time_step_spec, action_spec,
                         choosers.change(_num_actions(action_spec)), name)


def random_policy(time_step_spec, action_spec, seed=None):
    """The Random baseline of Tab. 1: each stream picks a window uniformly at each step."""
    chooser = choosers.random(_num_actions(action_spec), seed)
    return ChooserPolicy(time_step_spec, action_spec, chooser, "RandomPolicy")


def make_policy(name, time_step_spec, action_spec, q_fn=None, seed=None):
    """The attention policy called `name` (one of `POLICIES`) as a tf-agents `TFPolicy`.

    Args:
      name: one of `POLICIES`.
      time_step_spec: the environment's `TimeStep` spec.
      action_spec: scalar int32 `BoundedTensorSpec` of window indices 0 .. A - 1.
      q_fn: for 'dqn' only, observation -> Q-values [B, A].
      seed: the random policy's seed.
    """
    if name == choosers.CHANGE:
        return ChangePolicy(time_step_spec, action_spec)
    chooser = choosers.by_name(name, _num_actions(action_spec), q_fn=q_fn, seed=seed)
    return ChooserPolicy(time_step_spec, action_spec, chooser)
