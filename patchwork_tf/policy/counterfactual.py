"""Learning the Q-network from full-information targets (ours).

DDQN (Sec. 3.3) learns from the reward of the one window it took, which under Eq. 2 is 0 on
most frames and noisy where it is not (`evaluation.attention_diagnostics`). Here the stream
instead tries every window at every frame from the same memories (`try_every_window`: the
twin's pure `step_fn`, all windows of all streams in one batched call), which gives each
window's reward `r_t(a)` under the run's reward (`metrics.rewards`; Eq. 2 by default:
`max(0, f(gt_t, p_t(a)) - f(gt_t, p_{t-1}))`). The Q-network is fit to all A targets at once,

  L(Q) = mean_a Huber(Q(S_{t-1}, a) - r_t(a)),

a full-information contextual bandit (gamma 0): `argmax_a Q` then estimates the window of
largest immediate reward, the quantity the regret of the diagnostics measures. Nothing is
sampled per action, so no exploration is needed for the targets; the stream follows an
epsilon-greedy choice over the current Q-network only so that the memories it learns from are
those its own greedy choice meets (a learner's own state distribution, as in DAgger), not the
change rule's. Collection and fitting alternate: one batch of B clips streamed, then a share
of the gradient steps on everything collected so far.

The observation stored is the one the Q-network read when the window for frame t was chosen,
`S_{t-1}`, pooled as stage 2's replay buffer holds it (`q_network.pool_observation`). The
paper learns the attention by DDQN alone; this is a warm start before stage 2's DDQN
(`AttentionConfig.counterfactual_steps`), and with no DDQN steps after it, the whole
attention training.
"""
import numpy as np
import tensorflow as tf
from absl import logging
from tf_agents.utils import common

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.metrics import rewards as rewards_lib
from patchwork_tf.policy import choosers
from patchwork_tf.policy import q_network as q_network_lib
from patchwork_tf.policy import stream

COLLECT_EPSILON = 0.1  # Share of random windows in the collecting stream.


def try_every_window(twin, metric_fn, frames, state, gt):
    """f(gt, p(a)) of every window a, each processed on `frames` from the same memories.

    Args:
      twin: a Patchwork twin with the pure API (`step_fn`, explicit state).
      metric_fn: `f(gt, outputs) -> float32 [B]` (`tasks.Task.reward_metric`).
      frames: float32 [B, H, W, 3] in the twin's input range.
      state: the memories before `frames` (a dict, `twin.initial_state` / `warm_start_fn`).
      gt: dict of the frames' ground-truth fields, each [B, ...].

    Returns:
      float32 [B, A]: row b, column a is f of stream b's prediction had it processed window a.
    """
    num_actions = twin.grid.num_actions
    repeat = lambda t: tf.repeat(t, num_actions, axis=0)  # noqa: E731
    batch = tf.shape(frames)[0]
    actions = tf.tile(tf.range(num_actions, dtype=tf.int32), [batch])
    outputs, _ = twin.step_fn(repeat(frames), actions, tf.nest.map_structure(repeat, state))
    quality = metric_fn(tf.nest.map_structure(repeat, gt), outputs)
    return tf.reshape(quality, [batch, num_actions])


def _is_numeric(value):
    dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    if isinstance(dtype, tf.DType):
        return dtype.is_bool or dtype.is_integer or dtype.is_floating
    return np.dtype(dtype).kind in "biuf"


def ground_truth_fields(clip):
    """The names of a clip dict's per-frame ground truth: every numeric field but `frames`
    (ids and other strings are left out)."""
    return [name for name, value in clip.items() if name != "frames" and _is_numeric(value)]


class EveryWindowStream:
    """Streams batches of clips with explicit state and scores every window at every frame.

    At each frame t >= 1, every window a is tried from the same memories
    (`try_every_window`): `quality` [B, A] is f(gt_t, p_t(a)) and `previous` [B] is
    f(gt_t, p_{t-1}) of the prediction kept from the frame before. Then
    `choose(observation, quality) -> (actions int32 [B], record)` picks the window each
    stream takes from the observation `S_{t-1}` (and, for an oracle, the windows' f), and the
    stream steps on it. The collector of full-information targets (`Collector`) and the
    attention diagnostics (`evaluation.attention_diagnostics`) are its two users.
    """

    def __init__(self, twin, observer, observed_cell, metric_fn, choose,
                 preprocess_fn=clips_lib.preprocess_frames):
        """Args:
          twin: a Patchwork twin with the pure API whose `observed_cell` writes whole windows.
          observer: the `AttentionObservation` of the policy's input.
          observed_cell: the cell whose memory the observation reads.
          metric_fn: `f(gt, outputs) -> float32 [B]` (`tasks.Task.reward_metric`), `gt` the
            dict of one frame's ground-truth fields, each [B, ...].
          choose: `(observation, quality) -> (actions, record)`, traced into the compiled
            frame function; `record` is a (nested) dict of tensors [B, ...] kept per frame.
          preprocess_fn: uint8 frames -> the twin's input.
        """
        self._preprocess_fn = preprocess_fn

        def start(frames):
            begun = stream.stream_start(twin, observer, frames, key_frame=True,
                                        explicit_state=True)
            return begun.outputs, begun.twin_state, begun.observer_state

        def frame(frames, gt, kept, state, observer_state):
            observation = stream.observe(twin, observer, state, observer_state, observed_cell)
            quality = try_every_window(twin, metric_fn, frames, state, gt)
            actions, record = choose(observation, quality)
            stepped = stream.stream_step(twin, observer, frames, actions, state, observer_state)
            record = dict(record, quality=quality, previous=metric_fn(gt, kept), chosen=actions)
            return record, stepped.outputs, stepped.twin_state, stepped.observer_state

        self._start = tf.function(start)
        self._frame = tf.function(frame)

    def records(self, clip):
        """Streams one batch of clips.

        Args:
          clip: dict: `frames` uint8 [B, T, H, W, 3] and the ground truth [B, T, ...]
            (non-numeric fields are ignored); tensors or numpy arrays.

        Returns:
          dict of numpy arrays [B * (T - 1), ...], ordered by frame, then stream: `quality`,
          `previous`, `chosen` and what `choose` recorded.
        """
        frames = tf.convert_to_tensor(clip["frames"])
        truth = {name: tf.convert_to_tensor(clip[name]) for name in ground_truth_fields(clip)}
        kept, state, observer_state = self._start(self._preprocess_fn(frames[:, 0]))
        per_frame = []
        for t in range(1, int(frames.shape[1])):
            record, kept, state, observer_state = self._frame(
                self._preprocess_fn(frames[:, t]), {k: v[:, t] for k, v in truth.items()},
                kept, state, observer_state)
            per_frame.append(tf.nest.map_structure(np.asarray, record))
        return tf.nest.map_structure(lambda *rows: np.concatenate(rows), *per_frame)


class Collector:
    """Streams batches of clips with explicit state and records every window's reward.

    Each frame t >= 1 of a clip gives one row per stream: the pooled observation `S_{t-1}`
    the Q-network read, the reward vector `r_t(a)` [A] and the window taken.
    """

    def __init__(self, twin, observer, observed_cell, metric_fn, q_network,
                 reward=rewards_lib.CLIPPED, epsilon=COLLECT_EPSILON, seed=0,
                 preprocess_fn=clips_lib.preprocess_frames):
        """Args:
          twin: a Patchwork twin with the pure API whose `observed_cell` writes whole windows.
          observer: the `AttentionObservation` of the Q-network's input.
          observed_cell: the cell whose memory the Q-network reads.
          metric_fn: `f(gt, outputs) -> float32 [B]`.
          q_network: the `AttentionQNetwork` whose epsilon-greedy choice the stream follows.
          reward: `rewards.REWARDS`, how f becomes the reward (Eq. 2: "clipped").
          epsilon: share of uniformly random windows.
          seed: seed of the random windows.
          preprocess_fn: uint8 frames -> the twin's input.
        """
        if reward not in rewards_lib.REWARDS:
            raise ValueError(f"reward must be one of {rewards_lib.REWARDS}, got {reward!r}.")
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}.")
        num_actions = twin.grid.num_actions
        generator = tf.random.Generator.from_seed(seed)
        self._reward = reward

        def epsilon_greedy(observation, quality):
            del quality
            pooled = q_network_lib.pool_observation(observation, q_network.windows)
            q_values, _ = q_network(pooled)
            batch = tf.shape(q_values)[0]
            explore = generator.uniform([batch]) < epsilon
            actions = tf.where(explore, generator.uniform([batch], 0, num_actions, tf.int32),
                               choosers.greedy_actions(q_values))
            return actions, {"observation": pooled}

        self._stream = EveryWindowStream(twin, observer, observed_cell, metric_fn,
                                         epsilon_greedy, preprocess_fn)

    def collect(self, clip):
        """Streams one batch of clips.

        Args:
          clip: dict of tensors: `frames` uint8 [B, T, H, W, 3] and the ground truth [B, T, ...]
            (non-numeric fields are ignored).

        Returns:
          (observations, rewards, actions): the pooled observations (dict of numpy arrays
          [B * (T - 1), ...]), float32 [B * (T - 1), A] and int32 [B * (T - 1)], ordered by
          frame, then stream.
        """
        records = self._stream.records(clip)
        rewards = rewards_lib.improvement_reward(records["quality"],
                                                 records["previous"][:, None], self._reward)
        return records["observation"], rewards.numpy(), records["chosen"]


def fit_step_fn(q_network, optimizer):
    """A compiled gradient step `(observations, targets) -> loss` of the Huber loss between
    Q(s, .) [B, A] and the reward vectors [B, A], averaged over streams and windows."""
    variables = q_network.trainable_variables

    @tf.function
    def step(observations, targets):
        with tf.GradientTape() as tape:
            q_values, _ = q_network(observations, training=True)
            loss = tf.reduce_mean(common.element_wise_huber_loss(targets, q_values))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss
    return step


def best_window_share(q_values, rewards):
    """Share of rows whose argmax Q is a window of the largest reward, over rows where the
    rewards are not all equal (NaN when there is none).

    Args:
      q_values, rewards: float [N, A].
    """
    rewards = np.asarray(rewards)
    informative = np.ptp(rewards, axis=-1) > 0
    if not informative.any():
        return float("nan")
    chosen = np.asarray(choosers.greedy_actions(tf.convert_to_tensor(q_values)))
    best = rewards[np.arange(len(rewards)), chosen] == rewards.max(axis=-1)
    return float(best[informative].mean())


def train(collector, q_network, optimizer, clip_batches, num_rounds, num_steps,
          sample_batch_size=64, seed=0):
    """Alternates `num_rounds` collections with gradient steps; `num_steps` in all.

    Args:
      collector: a `Collector` following `q_network`.
      q_network: the Q-network fit.
      optimizer: its optimizer (e.g. the DDQN agent's).
      clip_batches: an iterator over clip batches (`Collector.collect`'s input).
      num_rounds: batches of clips streamed; after round r the steps up to
        `num_steps * (r + 1) // num_rounds` are taken, each on `sample_batch_size` rows
        drawn uniformly from all rows collected so far.
      num_steps: gradient steps in all.
      sample_batch_size: rows per step.
      seed: seed of the row sampling.

    Returns:
      dict(rows, loss (of the last step), best_window_share (`best_window_share` of the
      greedy choice on each round's rows before it trained on them, a list), reward (mean
      reward of the windows taken), best_reward (mean largest reward)).
    """
    if num_rounds < 1 or num_steps < 0 or sample_batch_size < 1:
        raise ValueError(f"Need num_rounds >= 1, num_steps >= 0 and sample_batch_size >= 1, got "
                         f"{num_rounds}, {num_steps}, {sample_batch_size}.")
    step = fit_step_fn(q_network, optimizer)
    rng = np.random.default_rng(seed)
    observations, rewards, actions, shares = [], [], [], []
    loss, done = None, 0
    for round_index in range(num_rounds):
        observation, reward, action = collector.collect(next(clip_batches))
        q_values, _ = q_network(tf.nest.map_structure(tf.constant, observation))
        shares.append(best_window_share(q_values, reward))
        observations.append(observation)
        rewards.append(reward)
        actions.append(action)
        stored = {key: np.concatenate([o[key] for o in observations]) for key in observation}
        targets = np.concatenate(rewards)
        target_step = num_steps * (round_index + 1) // num_rounds
        for _ in range(target_step - done):
            rows = rng.integers(0, len(targets), sample_batch_size)
            loss = step({key: tf.constant(value[rows]) for key, value in stored.items()},
                        tf.constant(targets[rows]))
        done = target_step
        logging.info("Full-information targets, round %d/%d: %d rows, greedy picks a best "
                     "window on %.3f of the new rows, loss %s.", round_index + 1, num_rounds,
                     len(targets), shares[-1], "-" if loss is None else f"{float(loss):.5f}")
    targets, taken = np.concatenate(rewards), np.concatenate(actions)
    return {"rows": int(len(targets)), "loss": None if loss is None else float(loss),
            "best_window_share": shares,
            "reward": float(targets[np.arange(len(taken)), taken].mean()),
            "best_reward": float(targets.max(axis=-1).mean())}


def warm_start(patchwork, agent, clips, num_steps, num_rounds, sample_batch_size=64,
               epsilon=COLLECT_EPSILON):
    """`train` on a stage-2 setting's Patchwork model, with the agent's Q-network and
    optimizer; then the target network is set to the online one. The agent's train step
    counter does not move.

    Args:
      patchwork: the `training.stage2.Patchwork` (twin, observer, task, config).
      agent: the DDQN agent whose Q-network is fit.
      clips: a `tf.data.Dataset` of clip batches (`stage2.training_clips`).
      num_steps: gradient steps; 0 leaves the agent as it is.
      num_rounds: batches of clips streamed.
      sample_batch_size: rows per step.
      epsilon: the collecting stream's share of random windows.

    Returns:
      `train`'s dict, or None when `num_steps` is 0.
    """
    if num_steps == 0:
        return None
    config = patchwork.config
    # pylint: disable=protected-access
    q_network, target_network = agent._q_network, agent._target_q_network
    collector = Collector(patchwork.twin, patchwork.observer, config.observed_cell,
                          patchwork.task.reward_metric, q_network, reward=config.reward,
                          epsilon=epsilon, seed=config.seed)
    result = train(collector, q_network, agent._optimizer, iter(clips), num_rounds, num_steps,
                   sample_batch_size, seed=config.seed)
    common.soft_variables_update(q_network.variables, target_network.variables, tau=1.0)
    logging.info("Full-information targets, %d steps on %d rows: loss %.5f, reward of the "
                 "windows taken %.4f (best %.4f).", num_steps, result["rows"], result["loss"],
                 result["reward"], result["best_reward"])
    return result
