r"""Why the learned attention trails the change rule: counterfactual rewards of a trained run.

    python tools/attention_diagnostics.py --model_dir=runs/synthetic_det --split=validation \
        --num_clips=32 --follow=dqn

Streams held-out clips through the run's trained twin and Q-network, tries every window at
every frame from the same memories and prints, per chooser (the followed policy, the DQN, the
change rule, the oracle that knows each window's outcome, a uniform choice), the mean Eq. 2
reward and regret, how often choosers agree, the rank correlation of the Q-values and of the
change cue with the outcome, and the share of frames on which Eq. 2 gives every window 0
(`patchwork_tf.evaluation.attention_diagnostics`). `--output_json` keeps the numbers.
"""
import json

from absl import app
from absl import flags

FLAGS = flags.FLAGS
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "A train job's directory (stages 1 and 2 "
                                 "at least).", required=True)
_SPLIT = flags.DEFINE_enum("split", "validation", ["validation", "test", "train"],
                           "Held-out split whose clips are streamed.")
_NUM_CLIPS = flags.DEFINE_integer("num_clips", 32, "Clips streamed.")
_CLIP_LENGTH = flags.DEFINE_integer("clip_length", None, "Frames per clip; default: the run's "
                                    "stage-2 clip length.")
_FOLLOW = flags.DEFINE_enum("follow", "dqn", ["dqn", "change", "oracle"],
                            "The policy whose windows the stream takes.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 8, "Clips streamed together.")
_OUTPUT_JSON = flags.DEFINE_string("output_json", None, "Also write the numbers here.")


def _table(summary):
    lines = [f"frames scored: {summary['frames']}",
             f"{'chooser':<10} {'reward':>8} {'regret':>8}"]
    for name, reward in summary["reward"].items():
        lines.append(f"{name:<10} {reward:8.4f} {summary['regret'][name]:8.4f}")
    lines.append(f"reward std of the followed policy: {summary['reward_std_followed']:.4f}")
    lines.append(f"frames where every window earns 0: {summary['zero_signal_share']:.3f}")
    lines.append(f"mean best-minus-worst f over windows: {summary['stakes']:.4f}")
    lines.append(f"mean f of the followed stream: {summary['quality_followed']:.4f}")
    lines += [f"agreement {pair}: {value:.3f}" for pair, value in summary["agreement"].items()]
    lines += [f"rank correlation {pair}: {value:.3f}"
              for pair, value in summary["rank_correlation"].items()]
    return "\n".join(lines)


def main(argv):
    del argv
    from patchwork_tf import runs
    from patchwork_tf import tasks
    from patchwork_tf.evaluation import attention_diagnostics
    from patchwork_tf.policy import observation as observation_lib

    run = runs.TrainedRun.find(_MODEL_DIR.value)
    config, stage1_config = run.attention, run.stage1_config
    model = run.build_model()
    twin = run.build_twin(model, write="bands")
    q_network = run.restore_q_network(twin)
    observer = observation_lib.AttentionObservation(twin.grid, config.history_alpha,
                                                    config.change_cue)
    task = tasks.get(stage1_config.task).for_model(model, stage1_config)
    clips = config.source.evaluation_clips(
        _SPLIT.value, stage1_config.task, _NUM_CLIPS.value, stage1_config.frame_size,
        _CLIP_LENGTH.value or config.clip_length)
    records = attention_diagnostics.counterfactual_records(
        twin, observer, config.observed_cell, task.reward_metric, clips,
        follow=_FOLLOW.value, q_fn=lambda obs: q_network(obs)[0], batch_size=_BATCH_SIZE.value)
    summary = attention_diagnostics.summarize(records)
    summary.update(model_dir=_MODEL_DIR.value, split=_SPLIT.value, follow=_FOLLOW.value,
                   num_clips=_NUM_CLIPS.value)
    print(_table(summary))
    if _OUTPUT_JSON.value:
        with open(_OUTPUT_JSON.value, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    app.run(main)
