"""Attention policies for stream evaluation: DQN (greedy), scanning and random (Tab. 1).

All three are tf-agents `TFPolicy`s over the time steps that
`patchwork_tf.policy.environment.VideoStreamEnvironment` produces (observation
`dict(memory=[B, Hl, Wl, C], history=[B, num_actions])`), so the policy evaluated is the
policy trained:

* 'dqn': `GreedyQPolicy`, the argmax of a Q-function. The Q-function is any callable that
  maps the observation to Q-values `[B, num_actions]`, e.g. `lambda obs: q_network(obs)[0]`
  for the `AttentionQNetwork` that stage 2 trains;
* 'scanning': `patchwork_tf.policy.baselines.ScanningPolicy`, row-major over the grid;
* 'random': `patchwork_tf.policy.baselines.random_policy`, uniform over the windows;
* 'change': `patchwork_tf.policy.baselines.ChangePolicy`, the window whose pixels changed
  most since it was last processed (ours, not the paper's; needs the change cue).
"""
import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.policies import tf_policy
from tf_agents.trajectories import policy_step
from tensorflow.python.profiler import model_analyzer
from tensorflow.python.profiler import option_builder

from patchwork_tf.policy import baselines

POLICIES = ("dqn", "scanning", "random", "change")


class GreedyQPolicy(tf_policy.TFPolicy):
    """Takes `argmax_a Q(S_t, a)` of a Q-function; stateless."""

    def __init__(self, time_step_spec, action_spec, q_fn, name="GreedyQPolicy"):
        """Builds the policy.

        Args:
          time_step_spec: the environment's `TimeStep` spec.
          action_spec: scalar integer `BoundedTensorSpec` of window indices 0 .. A - 1.
          q_fn: callable, observation (batched as in `time_step_spec`) -> float Q-values [B, A].
          name: the policy's name.
        """
        if not callable(q_fn):
            raise TypeError(
                f"q_fn must be a callable observation -> Q-values [B, A], got {q_fn!r}.")
        super().__init__(time_step_spec, action_spec, name=name)
        self._q_fn = q_fn
        self._num_actions = int(action_spec.maximum) - int(action_spec.minimum) + 1

    def _variables(self):
        return []

    def _distribution(self, time_step, policy_state):
        q_values = tf.convert_to_tensor(self._q_fn(time_step.observation))
        if q_values.shape.rank != 2 or q_values.shape[-1] != self._num_actions:
            raise ValueError(f"q_fn must return Q-values [B, {self._num_actions}], got shape "
                             f"{q_values.shape}.")
        actions = tf.argmax(q_values, axis=-1, output_type=self.action_spec.dtype)
        actions += tf.cast(self.action_spec.minimum, actions.dtype)
        return policy_step.PolicyStep(tfp.distributions.Deterministic(loc=actions), policy_state,
                                      ())


def make_policy(name, time_step_spec, action_spec, q_fn=None):
    """The attention policy called `name` (one of `POLICIES`).

    Args:
      name: one of `POLICIES`.
      time_step_spec: the environment's `TimeStep` spec.
      action_spec: scalar integer `BoundedTensorSpec` of window indices.
      q_fn: for 'dqn' only, observation -> Q-values [B, A].

    Returns:
      A tf-agents `TFPolicy`.
    """
    if name not in POLICIES:
        raise ValueError(f"Unknown policy {name!r}; choose one of {POLICIES}.")
    if (name == "dqn") != (q_fn is not None):
        raise ValueError(f"q_fn is needed by the 'dqn' policy and only by it; got policy {name!r} "
                         f"with q_fn={'set' if q_fn is not None else 'None'}.")
    if name == "dqn":
        return GreedyQPolicy(time_step_spec, action_spec, q_fn)
    if name == "scanning":
        return baselines.ScanningPolicy(time_step_spec, action_spec)
    if name == "change":
        return baselines.ChangePolicy(time_step_spec, action_spec)
    return baselines.random_policy(time_step_spec, action_spec)


def function_flops(fn, *input_signature):
    """FLOPs of one call of a TF function on inputs of fixed shape, by the TF profiler.

    The profiler's `float_operation` count (2 per multiply-add of MatMul and Conv2D, 1 per
    element of element-wise arithmetic), on the graph traced for `input_signature`. Used for the
    attention network, whose cost the paper includes in Patchwork's MFLOPs (Tab. 1).

    Args:
      fn: a Python or `tf.function` callable of tensors.
      *input_signature: `tf.TensorSpec`s (or nests of them) with fully defined shapes.

    Returns:
      int FLOPs.
    """
    for spec in tf.nest.flatten(input_signature):
        if not spec.shape.is_fully_defined():
            raise ValueError(f"function_flops needs fully defined shapes, got {spec}.")
    graph = tf.function(fn).get_concrete_function(*input_signature).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(model_analyzer.profile(graph, options=options).total_float_ops)


def decision_flops(observer, memory_shape, q_fn=None):
    """FLOPs of one attention decision at batch 1: the observer's change cue (analytic) plus,
    with a Q-function, its TF profiler count on the observation of a `memory_shape` memory."""
    if q_fn is None:
        return observer.flops()
    specs = {key: tf.TensorSpec((1,) + tuple(spec.shape), spec.dtype)
             for key, spec in observer.spec(memory_shape).items()}
    return observer.flops() + function_flops(q_fn, specs)
