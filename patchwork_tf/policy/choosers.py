"""Window choosers: the attention policies of Tab. 1 as pure tensor functions.

A chooser picks the window each stream processes next. It is a `Chooser` whose `choose` maps
the observation `S_t` (`patchwork_tf.policy.observation`: `memory` [B, H_l, W_l, C] or
`pooled_memory`, `history` [B, A], optionally `change` [B, A]) and the last action of each
stream (int32 [B], -1 for a stream that has taken none since it started) to int32 actions
[B] in 0 .. A - 1. The last action is the only state any chooser needs, and every stream
keeps it anyway: the environment's driver, the evaluation runner, the stage-3 loss, the
rollout figure and the exported module (`next_action`) all hold it.

* `greedy(q_fn, num_actions)`: `argmax_a Q(S_t, a)`, the learned DDQN policy (Sec. 3.3);
* `scanning(order)`: the windows in a fixed order, each once per cycle; the next window is
  the one after the last action in `order` (the first of `order` for a new stream);
* `change(num_actions)`: the window whose pixels changed most since it was last processed
  (ours, not the paper's; needs the change cue);
* `random(num_actions, seed)`: uniform over the windows, from a `tf.random.Generator`
  seeded with `seed` (the only chooser with state of its own, a variable).

`patchwork_tf.policy.stream.stream_step` calls them; `patchwork_tf.policy.baselines` wraps
them as tf-agents policies.
"""
import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf

GREEDY = "dqn"
SCANNING = "scanning"
RANDOM = "random"
CHANGE = "change"
NAMES = (GREEDY, SCANNING, RANDOM, CHANGE)


@dataclasses.dataclass(frozen=True)
class Chooser:
    """A window chooser.

    Attributes:
      name: one of `NAMES`.
      num_actions: A, the number of windows.
      choose: `(observation, last_actions) -> actions`; `observation` is None when
        `observes` is False, `last_actions` and the result are int32 [B].
      observes: whether `choose` reads the observation (callers skip building it if not).
      reads_last_action: whether `choose` reads `last_actions` (the others ignore it).
      variables: variables of the chooser's own (the random chooser's generator state); a
        Q-network's are its owner's to track.
    """

    name: str
    num_actions: int
    choose: Callable
    observes: bool
    reads_last_action: bool = False
    variables: tuple = ()

    def __call__(self, observation, last_actions):
        return self.choose(observation, tf.convert_to_tensor(last_actions, tf.int32))


def _check_num_actions(num_actions):
    if int(num_actions) != num_actions or num_actions < 1:
        raise ValueError(f"num_actions must be a positive integer, got {num_actions!r}.")
    return int(num_actions)


def greedy(q_fn, num_actions):
    """`argmax_a Q(S_t, a)` of a Q-function.

    Args:
      q_fn: observation -> float Q-values [B, A], or `(q_values, network_state)` as a
        tf-agents `Network` returns.
      num_actions: A.

    Raises:
      TypeError: `q_fn` is not callable. Q-values of another shape than [B, A] raise
        ValueError when traced.
    """
    if not callable(q_fn):
        raise TypeError(f"q_fn must be a callable observation -> Q-values [B, A], got {q_fn!r}.")
    num_actions = _check_num_actions(num_actions)

    def choose(observation, last_actions):
        del last_actions
        q_values = q_fn(observation)
        if isinstance(q_values, tuple):
            q_values = q_values[0]
        q_values = tf.convert_to_tensor(q_values)
        if q_values.shape.rank != 2 or q_values.shape[-1] != num_actions:
            raise ValueError(
                f"The policy returned Q-values of shape {q_values.shape}; expected "
                f"[batch, {num_actions}], one per window.")
        return greedy_actions(q_values)

    return Chooser(GREEDY, num_actions, choose, observes=True)


def greedy_actions(q_values):
    """The window of highest Q per stream: int32 [B] of Q-values [B, A]."""
    return tf.argmax(q_values, axis=-1, output_type=tf.int32)


def scan_order(order, num_actions):
    """`order` as an int32 numpy permutation of `range(num_actions)`; None is row-major.

    Raises:
      ValueError: `order` is not a permutation of all the windows.
    """
    actions = np.arange(_check_num_actions(num_actions))
    checked = actions if order is None else np.asarray(order)
    if checked.shape != actions.shape or not np.array_equal(np.sort(checked), actions):
        raise ValueError(
            f"The scan order must be a permutation of range({len(actions)}), got "
            f"{np.asarray(order).tolist()}.")
    return checked.astype(np.int32)


def scanning(num_actions, order=None):
    """The Scanning baseline of Tab. 1: the window after the last action in `order`.

    A new stream (last action -1) starts at `order[0]`, so every window is processed exactly
    once in every A consecutive steps of a stream.

    Args:
      num_actions: A.
      order: a permutation of `range(A)`, the scan pattern; None is row-major.
    """
    order = scan_order(order, num_actions)
    position = np.argsort(order).astype(np.int32)

    def choose(observation, last_actions):
        del observation
        last = tf.gather(position, tf.maximum(last_actions, 0))
        last = tf.where(last_actions < 0, -1, last)
        return tf.gather(order, (last + 1) % len(order))

    return Chooser(SCANNING, len(order), choose, observes=False, reads_last_action=True)


def change(num_actions):
    """`argmax_a change_a` of the observation's change cue; ties go to the lowest window
    (e.g. right after a key frame, when every change is 0)."""
    num_actions = _check_num_actions(num_actions)

    def choose(observation, last_actions):
        del last_actions
        if "change" not in observation:
            raise ValueError(
                "The change chooser reads observation['change']: build the observation with "
                f"the change cue (AttentionObservation(change_cue=True)); got {sorted(observation)}.")
        return tf.argmax(observation["change"], axis=-1, output_type=tf.int32)

    return Chooser(CHANGE, num_actions, choose, observes=True)


def random(num_actions, seed=None):
    """The Random baseline of Tab. 1: each stream draws a window uniformly at each step.

    Args:
      num_actions: A.
      seed: int seed of the generator (the same seed draws the same windows); None seeds it
        from the operating system.
    """
    num_actions = _check_num_actions(num_actions)
    generator = (tf.random.Generator.from_non_deterministic_state() if seed is None
                 else tf.random.Generator.from_seed(int(seed)))

    def choose(observation, last_actions):
        del observation
        return generator.uniform(tf.shape(last_actions), 0, num_actions, dtype=tf.int32)

    return Chooser(RANDOM, num_actions, choose, observes=False, variables=(generator.state,))


def by_name(name, num_actions, q_fn=None, order=None, seed=None):
    """The chooser called `name` (one of `NAMES`); `q_fn` for 'dqn' only.

    Raises:
      ValueError: an unknown name, or `q_fn` given to another chooser than 'dqn' or missing
        for it.
    """
    if name not in NAMES:
        raise ValueError(f"Unknown policy {name!r}; choose one of {NAMES}.")
    if (name == GREEDY) != (q_fn is not None):
        raise ValueError(f"q_fn is needed by the 'dqn' policy and only by it; got policy {name!r} "
                         f"with q_fn={'set' if q_fn is not None else 'None'}.")
    if name == GREEDY:
        return greedy(q_fn, num_actions)
    if name == SCANNING:
        return scanning(num_actions, order)
    if name == CHANGE:
        return change(num_actions)
    return random(num_actions, seed)
