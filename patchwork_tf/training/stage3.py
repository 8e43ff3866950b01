"""Stage 3 (Sec. 3.4): BN frozen, the main network fine-tuned with the attention network.

The Patchwork twin is unrolled over short clips: a key frame (full-frame warm start) and then
one window per frame, chosen greedily by the current Q-network; the task loss of every
window step's full-frame prediction trains the main network (all weights but batch norm,
whose statistics stay those of stage 1). Between these supervised steps DDQN keeps training
the attention network on the same environment at a lower learning rate, so both adapt to
each other. Checkpoints hold the agent, the replay buffer, the model and its optimizer.
"""
import os

import tensorflow as tf
import tf_keras

from patchwork_tf.data import clips as clips_lib
from patchwork_tf.policy import choosers
from patchwork_tf.policy import stream
from patchwork_tf.policy import trainer
from patchwork_tf.training import stage2


def freeze_batch_norm(model):
    """Batch norm layers keep their stage-1 statistics and run in inference mode."""
    for layer in model.layers:
        if isinstance(layer, tf_keras.layers.BatchNormalization):
            layer.trainable = False


def unrolled_clip_loss(setting, clip):
    """Mean task loss of the window steps of a clip batch `[B, T, ...]` (T >= 2).

    Frame 0 is a key frame; frame t >= 1 is processed on the window that the Q-network
    chooses greedily from the observation after frame t - 1.
    """
    patchwork = setting.patchwork
    twin, task, cell = patchwork.twin, patchwork.task, patchwork.config.observed_cell
    observer = patchwork.observer
    chooser = choosers.greedy(patchwork.q_network, observer.num_actions)
    frames = clips_lib.preprocess_frames(clip["frames"])
    step = stream.stream_start(twin, observer, frames[:, 0], key_frame=True, explicit_state=True,
                               chooser=chooser, observed_cell=cell)
    losses = []
    for t in range(1, frames.shape[1]):
        last = t == frames.shape[1] - 1
        step = stream.stream_step(twin, observer, frames[:, t], step.next_actions,
                                  step.twin_state, step.observer_state,
                                  chooser=None if last else chooser, observed_cell=cell)
        labels = {k: v[:, t] for k, v in clip.items() if k != "frames"}
        losses.append(task.loss(step.outputs, labels)["total"])
    return tf.add_n(losses) / len(losses)


def train_stage3(model_dir, config, finetune, verbose=1, **trainer_kwargs):
    """Stage 3: joint fine-tuning of the main network (task loss) and attention (DDQN).

    Starts from the stage-2 agent (`model_dir/stage2`) and resumes from `model_dir/stage3`;
    `config` is the run's `configs.AttentionConfig`, `finetune` its `configs.FinetuneConfig`
    (stored with it, `stage2.store_config`).

    Returns:
      dict(train_step, loss) of the DDQN part, and `finetune_loss` of the last supervised step.
    """
    config, finetune = stage2.store_config(model_dir, config, finetune)
    setting = stage2.build_setting(model_dir, config, finetune.q_learning_rate,
                                   train_step_offset=config.stage2_steps)
    stage3_dir = os.path.join(model_dir, "stage3")
    if tf.train.latest_checkpoint(os.path.join(stage3_dir, "checkpoints")) is None:
        stage2_checkpoint = tf.train.latest_checkpoint(
            os.path.join(model_dir, "stage2", "checkpoints"))
        if stage2_checkpoint is None:
            raise FileNotFoundError(
                f"No stage-2 checkpoint under {model_dir}/stage2/checkpoints; run stage 2 "
                "before stage 3.")
        tf.train.Checkpoint(agent=setting.agent).restore(stage2_checkpoint).expect_partial()
        # The restored optimizer carries stage 2's learning rate; stage 3's is lower.
        setting.agent._optimizer.learning_rate.assign(  # pylint: disable=protected-access
            finetune.q_learning_rate)

    freeze_batch_norm(setting.patchwork.model)
    optimizer = tf_keras.optimizers.Adam(finetune.learning_rate)
    variables = setting.patchwork.model.trainable_variables
    optimizer.build(variables)
    finetune_clips = iter(stage2.training_clips(
        setting.patchwork.stage1_config.task, config, setting.patchwork.stage1_config.frame_size,
        config.num_train_clips, finetune.clip_length, finetune.batch_size,
        config.seed + 1, setting.patchwork.stage1_config.max_objects))

    @tf.function
    def finetune_step(clip):
        with tf.GradientTape() as tape:
            loss = unrolled_clip_loss(setting, clip)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    progress = stage2.progress_callback(finetune.steps, verbose)
    last = {"loss": None}

    def on_train_step(step, loss):
        if step % finetune.finetune_every == 0:
            last["loss"] = float(finetune_step(next(finetune_clips)))
        if progress is not None:
            progress(step, loss)

    result = trainer.collect_and_train(
        stage3_dir, setting.env, setting.agent, setting.replay_buffer, finetune.steps,
        epsilon_fn=setting.epsilon, initial_collect_steps=config.initial_collect_steps,
        sample_batch_size=config.sample_batch_size,
        extra_trackables={"model": setting.patchwork.model, "model_optimizer": optimizer},
        on_train_step=on_train_step, **trainer_kwargs)
    result["finetune_loss"] = last["loss"]
    return result
