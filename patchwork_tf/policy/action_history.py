"""Exponentially decaying action history, paper Eq. 1 (Sec. 3.1).

`F_t = min(alpha * F_{t-1} + onehot(A_t), 1)`: the attention network sees which windows it
looked at recently, which encourages diverse actions.
"""
import tensorflow as tf


def action_history(previous_history, actions, alpha):
    """One step of Eq. 1 for a batch of streams.

    Args:
      previous_history: float32 [B, num_actions], `F_{t-1}`, entries in [0, 1].
      actions: integer [B], `A_t`, each in [0, num_actions).
      alpha: Python float or float32 scalar in [0, 1], the decay factor.

    Returns:
      float32 [B, num_actions], `F_t`.

    Raises:
      ValueError: shapes that do not fit [B, num_actions] and [B], or alpha outside [0, 1].
    """
    previous_history = tf.convert_to_tensor(previous_history, tf.float32)
    actions = tf.convert_to_tensor(actions)
    if previous_history.shape.rank != 2:
        raise ValueError(
            f"previous_history must be [B, num_actions], got shape {previous_history.shape}.")
    if actions.shape.rank != 1:
        raise ValueError(f"actions must be [B] integers, got shape {actions.shape}.")
    if not actions.dtype.is_integer:
        raise ValueError(f"actions must be integers, got dtype {actions.dtype.name}.")
    if isinstance(alpha, (int, float)) and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}.")
    num_actions = previous_history.shape[-1]
    if num_actions is None:
        num_actions = tf.shape(previous_history)[-1]
    onehot = tf.one_hot(actions, num_actions, dtype=tf.float32)
    return tf.minimum(tf.cast(alpha, tf.float32) * previous_history + onehot, 1.0)
