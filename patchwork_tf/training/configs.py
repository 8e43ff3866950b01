"""The settings of stages 2 and 3 (Sec. 3.4): `AttentionConfig` (the Patchwork setting and
the DDQN training of stage 2) and `FinetuneConfig` (stage 3's joint fine-tuning).

A run stores both in one flat JSON file, `patchwork_config.json` (`to_json` / `from_json`),
the fine-tuning fields prefixed `stage3_`, as runs stored them before the split.
`Stage1Config` (the single-frame model) lives with its trainer in `training.stage1`.
"""
import dataclasses
from typing import Optional

from patchwork_tf import tasks
from patchwork_tf.metrics import rewards
from patchwork_tf.policy import q_network as q_network_lib
from patchwork_tf.training import sources

# The prefix of `FinetuneConfig`'s fields in the stored JSON.
FINETUNE_PREFIX = "stage3_"


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
    """The Patchwork setting and the attention training of stage 2 (stage 3 goes on with it).

    Attributes:
      m, n: the window grid (Sec. 3.1).
      observed_cell: the cell (layer L, Fig. 3) whose memory the Q-network reads; None takes
        the one the stage-1 model's builder names (`tasks.Task.observed_cell`).
      history_alpha: decay of the action history, Eq. 1.
      change_cue: the Q-network also observes how much each window changed since it was
        last processed (`policy.observation`); False is the paper's observation.
      q_network: the Q-network's head (`q_network.Q_NETWORKS`): "ours" adds a hidden layer of
        64 ReLU units between the concatenation of window features and history and the
        Q-value layer; "paper" has the final fully connected layer alone (Sec. 3.1, Fig. 3);
        "window" (ours) scores each window from its own features, no layer across windows.
      num_streams: clips streamed side by side (the environment's batch).
      clip_length: frames per training clip.
      num_train_clips: synthetic training clips (cycled; real sources read every video).
      data, data_dir, still_data, still_data_dir, still_fraction: the data source of the
        training clips (`sources.DataSource`); `data` must be the stage-1 model's.
      reward: `rewards.REWARDS`: "clipped" is Eq. 2; "difference" (ours) drops its clipping
        at 0, so frames where no window beats the kept prediction still rank the windows.
      gamma: discount of Eq. 5.
      n_step: n of the n-step TD target (ours; tf-agents' `n_step_update`): n discounted
        rewards, then gamma^n times the target network's value; 1 (the paper's Eq. 5)
        bootstraps after one reward. Returns stop at a clip's end (`agent.train`).
      learning_rate: Adam learning rate of the Q-network in stage 2.
      target_update_period: train steps between target-network updates (Eq. 5's Theta').
      epsilon_start, epsilon_end, epsilon_decay_steps: the epsilon-greedy schedule.
      replay_capacity: replay buffer steps per stream.
      sample_batch_size: transitions per DDQN train step.
      initial_collect_steps: random-policy steps per stream before training.
      imitation_steps: gradient steps of learning from the change rule's demonstrations
        (`policy.imitation`, DQfD's large-margin loss plus TD) before stage 2's DDQN; 0 (the
        paper's setting) learns by DDQN alone. Needs `change_cue`.
      demonstration_weight: lambda_E of DQfD's large-margin loss on the change rule's
        demonstrations, added to every DDQN train step of stages 2 and 3
        (`policy.imitation.demonstration_loss`); 0 (the paper's setting) is the TD loss
        alone. Needs `change_cue`.
      counterfactual_steps: gradient steps of fitting the Q-network to every window's reward
        (`policy.counterfactual`: the stream tries all windows per frame, a full-information
        contextual bandit, gamma 0) before stage 2's DDQN, over one pass of the training clips
        (`num_train_clips // num_streams` batches streamed, after imitation if both are on);
        0 (the paper's setting) learns by DDQN alone.
      stage2_steps: DDQN train steps of stage 2.
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
    n_step: int = 1
    learning_rate: float = 1e-3
    target_update_period: int = 100
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    epsilon_decay_steps: int = 500
    replay_capacity: int = 1000
    sample_batch_size: int = 64
    initial_collect_steps: int = 32
    imitation_steps: int = 0
    demonstration_weight: float = 0.0
    counterfactual_steps: int = 0
    stage2_steps: int = 600
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
        if self.imitation_steps < 0 or (self.imitation_steps and not self.change_cue):
            raise ValueError(
                f"imitation_steps ({self.imitation_steps}) must be >= 0, and > 0 only with the "
                "change cue the demonstrating rule reads (change_cue=True).")
        if self.demonstration_weight < 0 or (self.demonstration_weight and not self.change_cue):
            raise ValueError(
                f"demonstration_weight ({self.demonstration_weight}) must be >= 0, and > 0 only "
                "with the change cue the demonstrating rule reads (change_cue=True).")
        if not 1 <= self.n_step < self.clip_length:
            raise ValueError(f"n_step must lie in [1, clip_length - 1 = {self.clip_length - 1}] "
                             f"(1: Eq. 5's one-step target), got {self.n_step}.")
        if self.counterfactual_steps < 0:
            raise ValueError(f"counterfactual_steps must be >= 0 (0: off), got "
                             f"{self.counterfactual_steps}.")

    @property
    def counterfactual_rounds(self):
        """Batches of training clips streamed for the full-information targets: one pass."""
        return max(1, self.num_train_clips // self.num_streams)
    @property
    def source(self):
        """The `sources.DataSource` of the training clips."""
        return sources.DataSource(self.data, self.data_dir, self.still_data,
                                  self.still_data_dir, self.still_fraction)

@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """Stage 3: the main network fine-tuned on unrolled clips jointly with DDQN (Sec. 3.4).

    Attributes:
      steps: DDQN train step at which stage 3 ends (an absolute count, continuing stage 2's
        `AttentionConfig.stage2_steps`).
      learning_rate: learning rate of the fine-tuned main network.
      q_learning_rate: the Q-network's learning rate (lower than stage 2's).
      finetune_every: DDQN train steps between supervised fine-tuning steps.
      clip_length: frames of the unrolled clips of the supervised loss.
      batch_size: clips per supervised fine-tuning step.
    """

    steps: int = 900
    learning_rate: float = 1e-4
    q_learning_rate: float = 2e-4
    finetune_every: int = 4
    clip_length: int = 6
    batch_size: int = 4

def check_steps(attention, finetune):
    """Refuses a stage 3 that would end before stage 2 does."""
    if finetune.steps < attention.stage2_steps:
        raise ValueError(
            f"stage 3's steps ({finetune.steps}) count on from stage 2's "
            f"{attention.stage2_steps} DDQN steps and must not be smaller.")

def to_json(attention, finetune):
    """The flat dict a run stores: `attention`'s fields and `finetune`'s prefixed `stage3_`."""
    values = dataclasses.asdict(attention)
    values.update({FINETUNE_PREFIX + k: v for k, v in dataclasses.asdict(finetune).items()})
    return values

def from_json(values):
    """(`AttentionConfig`, `FinetuneConfig`) of a stored dict (`to_json`).

    Raises:
      ValueError: a key neither config has (a file of another version), naming it.
    """
    attention_fields = {f.name for f in dataclasses.fields(AttentionConfig)}
    finetune_fields = {FINETUNE_PREFIX + f.name for f in dataclasses.fields(FinetuneConfig)}
    unknown = sorted(set(values) - attention_fields - finetune_fields)
    if unknown:
        raise ValueError(f"unknown settings {unknown}: not fields of AttentionConfig or (prefixed "
                         f"{FINETUNE_PREFIX!r}) FinetuneConfig; the file was written by another "
                         "version of patchwork_tf.")
    return (AttentionConfig(**{k: v for k, v in values.items() if k in attention_fields}),
            FinetuneConfig(**{k[len(FINETUNE_PREFIX):]: v for k, v in values.items()
                              if k in finetune_fields}))

def with_observed_cell(config, stage1_config):
    """`config` (an `AttentionConfig`) with an `observed_cell` of None replaced by the
    stage-1 model's (`tasks.Task.observed_cell`)."""
    if config.observed_cell is not None:
        return config
    return dataclasses.replace(config, observed_cell=tasks.get(stage1_config.task).observed_cell)
