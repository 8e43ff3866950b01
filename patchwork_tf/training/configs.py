"""The settings of stages 2 and 3 (Sec. 3.4), stored with a run as `patchwork_config.json`.

`Stage1Config` (the single-frame model) lives with its trainer in `training.stage1`.
"""
import dataclasses
from typing import Optional

from patchwork_tf import tasks
from patchwork_tf.metrics import rewards
from patchwork_tf.policy import q_network as q_network_lib
from patchwork_tf.training import sources


@dataclasses.dataclass(frozen=True)
class PatchworkConfig:
    """The Patchwork setting and the attention training of stages 2 and 3.

    Attributes:
      m, n: the window grid (Sec. 3.1).
      observed_cell: the cell (layer L, Fig. 3) whose memory the Q-network reads; None takes
        the one the stage-1 model's builder names (`tasks.Task.observed_cell`).
      history_alpha: decay of the action history, Eq. 1.
      change_cue: the Q-network also observes how much each window changed since it was
        last processed (`policy.observation`); False is the paper's observation.
      q_network: the Q-network's head (`q_network.Q_NETWORKS`): "ours" adds a hidden layer of
        64 ReLU units between the concatenation of window features and history and the
        Q-value layer; "paper" has the final fully connected layer alone (Sec. 3.1, Fig. 3).
      num_streams: clips streamed side by side (the environment's batch).
      clip_length: frames per training clip.
      num_train_clips: synthetic training clips (cycled; real sources read every video).
      data, data_dir, still_data, still_data_dir, still_fraction: the data source of the
        training clips (`sources.DataSource`); `data` must be the stage-1 model's.
      reward: `rewards.REWARDS`: "clipped" is Eq. 2; "difference" (ours) drops its clipping
        at 0, so frames where no window beats the kept prediction still rank the windows.
      gamma: discount of Eq. 5.
      learning_rate: Adam learning rate of the Q-network in stage 2.
      target_update_period: train steps between target-network updates (Eq. 5's Theta').
      epsilon_start, epsilon_end, epsilon_decay_steps: the epsilon-greedy schedule.
      replay_capacity: replay buffer steps per stream.
      sample_batch_size: transitions per DDQN train step.
      initial_collect_steps: random-policy steps per stream before training.
      stage2_steps: DDQN train steps of stage 2.
      stage3_steps: DDQN train steps of stage 3 (absolute count, continuing stage 2's).
      stage3_learning_rate: learning rate of the fine-tuned main network in stage 3.
      stage3_q_learning_rate: the Q-network's learning rate in stage 3 (lower than stage 2).
      stage3_finetune_every: DDQN train steps between supervised fine-tuning steps.
      stage3_clip_length: frames of the unrolled clips of the supervised loss.
      stage3_batch_size: clips per supervised fine-tuning step.
      seed: seed of the clip order and the networks' initialisation.
    """

    m: int = 4
    n: int = 2
    observed_cell: Optional[str] = None
    history_alpha: float = 0.5
    change_cue: bool = True
    q_network: str = "ours"
    num_streams: int = 8
    clip_length: int = 16
    num_train_clips: int = 256
    reward: str = rewards.CLIPPED
    gamma: float = 0.9
    learning_rate: float = 1e-3
    target_update_period: int = 100
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_steps: int = 500
    replay_capacity: int = 1000
    sample_batch_size: int = 64
    initial_collect_steps: int = 32
    stage2_steps: int = 600
    stage3_steps: int = 900
    stage3_learning_rate: float = 1e-4
    stage3_q_learning_rate: float = 2e-4
    stage3_finetune_every: int = 4
    stage3_clip_length: int = 6
    stage3_batch_size: int = 4
    seed: int = 0
    data: str = sources.SYNTHETIC
    data_dir: Optional[str] = None
    still_data: str = sources.NO_STILLS
    still_data_dir: Optional[str] = None
    still_fraction: float = 0.5

    def __post_init__(self):
        _ = self.source  # Refuses bad data fields where they enter.
        if self.reward not in rewards.REWARDS:
            raise ValueError(f"reward must be one of {rewards.REWARDS}, got {self.reward!r}.")
        if self.q_network not in q_network_lib.Q_NETWORKS:
            raise ValueError(f"q_network must be one of {sorted(q_network_lib.Q_NETWORKS)}, "
                             f"got {self.q_network!r}.")
        if self.stage3_steps < self.stage2_steps:
            raise ValueError(
                f"stage3_steps ({self.stage3_steps}) counts on from stage 2's "
                f"{self.stage2_steps} DDQN steps and must not be smaller.")

    @property
    def source(self):
        """The `sources.DataSource` of the training clips."""
        return sources.DataSource(self.data, self.data_dir, self.still_data,
                                  self.still_data_dir, self.still_fraction)



def with_observed_cell(config, stage1_config):
    """`config` with an `observed_cell` of None replaced by the stage-1 model's
    (`tasks.Task.observed_cell`)."""
    if config.observed_cell is not None:
        return config
    return dataclasses.replace(config, observed_cell=tasks.get(stage1_config.task).observed_cell)
