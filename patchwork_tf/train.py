r"""The Patchwork training job: stages 1 to 3 (Sec. 3.4), then evaluation and export.

  python -m patchwork_tf.train --flagfile=experiments/synthetic_det.flags
  python -m patchwork_tf.train --flagfile=experiments/vid.flags \
      --data_dir=/path/to/ILSVRC2015 --still_data_dir=/path/to/ILSVRC2015,/path/to/coco

`--data` picks the data source (`training.sources`): the embedded synthetic benchmark, or a
local copy of ImageNet VID (detection) or DAVIS 2016 (segmentation) under `--data_dir`, with
fake videos of still images (`--still_data`: a list of coco, voc, imagenet_det; their roots in
`--still_data_dir`) mixed into the training data; a missing or malformed copy is refused with
the expected layout. On real data the evaluation follows the official protocol (see
`patchwork_tf.evaluate`).

Stage 1 trains the single-frame model (`training.stage1`); stage 2 places it in the Patchwork
setting and trains the attention network by DDQN (`training.stage2`); stage 3 freezes batch
norm and fine-tunes the main network on unrolled clips jointly with DDQN (`training.stage3`).
Then the run is exported as a SavedModel with the greedy attention policy inside
(`<model_dir>/export`, see `patchwork_tf.export`).
Every stage checkpoints under `--model_dir` and resumes when run again; a finished stage is
skipped. `--seeds=0,1,2` also trains stages 2 and 3 with each seed on the same stage-1 model
(the run's own `--seed` is `--model_dir` itself, another seed S goes to
`<model_dir>/seeds/seed_S`, whose `stage1` links to the run's), evaluates each and writes
`<model_dir>/seeds/summary.json` and `.md`: every method's accuracy per seed with its
interval over videos, the mean and spread over seeds, and the paired differences per seed
(`experiments/synthetic_det_seeds.flags`). `main` maps the flags onto
`configs_from_flags()` (the three stage configs) and `train_and_evaluate`, which a test or a
notebook calls directly; flag files in `experiments/` hold the settings of each experiment.
"""
import dataclasses
import json
import os
import sys
from typing import Any, Dict, Optional, Sequence

from absl import app
from absl import flags
from absl import logging

from patchwork_tf import cli
from patchwork_tf import runs
from patchwork_tf.data import layout
from patchwork_tf.evaluation import api
from patchwork_tf.evaluation import results
from patchwork_tf.serving import exporter
from patchwork_tf.training import configs
from patchwork_tf.training import sources
from patchwork_tf.training import stage1
from patchwork_tf.training import stage2
from patchwork_tf.training import stage3

FLAGS = flags.FLAGS

flags.DEFINE_string("model_dir", None, "Output directory of the run (checkpoints, summaries, "
                    "config, evaluation, export).")
cli.define_data_flags()
cli.define_model_flags()
cli.define_grid_flags()
flags.DEFINE_string("still_data", "none",
                    "Still images made into fake videos that augment the training data of all "
                    "stages (Sec. 3.4; real sources only): none, or a comma-separated list of "
                    "coco (COCO 2017 train), voc (Pascal VOC trainval) and imagenet_det "
                    "(ImageNet DET train, detection only), e.g. imagenet_det,coco.")
flags.DEFINE_string("still_data_dir", None, "Roots of the still sources' local copies, "
                    "comma-separated in the order of --still_data.")
flags.DEFINE_float("still_fraction", 0.5, "Share of fake-video frames (stage 1) and clips "
                   "(stages 2 and 3) when --still_data is set.")
flags.DEFINE_list("stages", ["1", "2", "3"], "Stages to run, in order.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy of stage 1.")
# Model.
flags.DEFINE_integer("output_stride", 16, "DeepLab output stride (segmentation).")
# Stage 1.
flags.DEFINE_integer("stage1_steps", 1000, "Stage-1 training steps.")
flags.DEFINE_integer("stage1_batch_size", 32, "Stage-1 batch size (frames).")
flags.DEFINE_float("stage1_learning_rate", 2e-3, "Stage-1 peak learning rate.")
flags.DEFINE_integer("stage1_train_clips", 512, "Synthetic clips stage 1 draws frames from "
                     "(real sources read every training video).")
flags.DEFINE_float("stage1_max_seconds", None, "Stop stage 1 after this many seconds.")
flags.DEFINE_string("backbone_weights", "none", "MobileNetV2 weights a new stage-1 run "
                    "starts its backbone from: imagenet (the Keras ImageNet weights, the "
                    "paper's Sec. 4.1; offline, pass their file), none (from scratch) or "
                    "the path of a weights file of the stock MobileNetV2 without its top "
                    "(h5). See README.md for offline machines.")
flags.DEFINE_enum("detection_loss", "focal", ["focal", "ssd"], "Stage-1 detection loss (also "
                  "stage 3's): ssd, the paper's detector's (the OD API's "
                  "ssdlite_mobilenet_v2_coco.config: sigmoid and smooth-L1 with 3:1 hard "
                  "example mining), or focal.")
# Patchwork setting and attention (stages 2 and 3).
flags.DEFINE_string("observed_cell", None,
                    "The cell (layer L, Fig. 3) whose memory the attention network reads; "
                    "default: the one the model's builder names (tasks.Task.observed_cell).")
flags.DEFINE_float("history_alpha", 0.5, "Action-history decay, Eq. 1.")
flags.DEFINE_bool("change_cue", True, "The attention network also observes how much each "
                  "window changed since it was last processed (ours); --nochange_cue is the "
                  "paper's observation (memory and action history only).")
flags.DEFINE_enum("q_network", "ours", ["ours", "paper", "window"], "The attention "
                  "Q-network's head: 'paper' maps the observation straight to the Q-values "
                  "(Sec. 3.1), 'ours' adds a hidden layer, 'window' (ours) scores each window "
                  "from its own features alone.")
flags.DEFINE_enum("reward", "clipped", ["clipped", "difference"], "The attention's reward: "
                  "'clipped' is Eq. 2, max(0, f(p_t) - f(p_t-1)); 'difference' (ours) drops the "
                  "clipping, so frames where no window beats the kept prediction still rank "
                  "the windows.")
flags.DEFINE_bool("checkpoint_replay_buffer", False, "Keep the replay buffer in stage 2 and 3 "
                  "checkpoints (exact resumption, checkpoints as large as the buffer); "
                  "without it a resumed stage refills the buffer with initial collection.")
flags.DEFINE_float("gamma", 0.9, "DDQN discount, Eq. 5.")
flags.DEFINE_integer("n_step", 1, "Ours: n of the n-step TD target (n rewards, then the "
                     "target network's value; returns stop at a clip's end); 1 is the paper's "
                     "Eq. 5.")
flags.DEFINE_integer("target_update_period", 100, "Train steps between target updates.")
flags.DEFINE_float("epsilon_start", 1.0, "Initial collection epsilon.")
flags.DEFINE_float("epsilon_end", 0.05, "Final collection epsilon.")
flags.DEFINE_integer("epsilon_decay_steps", 500, "Train steps of the epsilon decay.")
flags.DEFINE_integer("num_streams", 8, "Clips streamed side by side during collection.")
flags.DEFINE_integer("clip_length", 16, "Frames per training clip.")
flags.DEFINE_integer("num_train_clips", 256, "Synthetic clips of stages 2 and 3 (real "
                     "sources read every training video).")
flags.DEFINE_integer("replay_capacity", 1000, "Replay buffer steps per stream.")
flags.DEFINE_integer("sample_batch_size", 64, "Transitions per DDQN train step.")
flags.DEFINE_integer("initial_collect_steps", 32, "Random-policy steps per stream before "
                     "DDQN training.")
flags.DEFINE_integer("imitation_steps", 0, "Ours: gradient steps of learning from the change "
                     "rule's demonstrations (DQfD's large-margin loss) before stage 2's DDQN; 0 "
                     "is the paper's DDQN alone.")
flags.DEFINE_float("demonstration_weight", 0.0, "Ours: weight of DQfD's large-margin loss on "
                   "the change rule's demonstrations, added to every DDQN train step of "
                   "stages 2 and 3; 0 is the paper's TD loss alone.")
flags.DEFINE_integer("counterfactual_steps", 0, "Ours: gradient steps of fitting the "
                     "Q-network to every window's reward (all windows tried per frame, gamma 0) "
                     "over one pass of the training clips, before stage 2's DDQN; 0 is the "
                     "paper's DDQN alone.")
flags.DEFINE_integer("stage2_steps", 600, "DDQN train steps of stage 2.")
flags.DEFINE_float("stage2_learning_rate", 1e-3, "Q-network learning rate in stage 2.")
flags.DEFINE_integer("stage3_steps", 900, "DDQN train step at which stage 3 ends "
                     "(counts on from stage 2).")
flags.DEFINE_float("stage3_learning_rate", 1e-4, "Main network learning rate in stage 3.")
flags.DEFINE_float("stage3_q_learning_rate", 2e-4, "Q-network learning rate in stage 3.")
flags.DEFINE_integer("stage3_finetune_every", 4, "DDQN steps between fine-tuning steps.")
flags.DEFINE_integer("stage3_clip_length", 6, "Frames of the unrolled fine-tuning clips.")
flags.DEFINE_integer("stage3_batch_size", 4, "Clips per fine-tuning step.")
flags.DEFINE_integer("seed", 0, "Seed of initialisation and data order.")
flags.DEFINE_list("seeds", [], "Also train stages 2 and 3 (those of --stages) with each of "
                  "these seeds on the run's stage-1 model, evaluate each and summarise mean "
                  "and spread in <model_dir>/seeds/summary.md (see the module doc).")
flags.DEFINE_bool("evaluate", True, "Evaluate the run on --eval_split: the single-frame model "
                  "and the Patchwork twin with the dqn, scanning and random policies.")
flags.DEFINE_enum("eval_split", "test", ["validation", "test"], "Split evaluated (the real "
                  "sources evaluate their annotated val split for either).")
flags.DEFINE_integer("eval_clips", 16, "Synthetic clips evaluated per policy.")
flags.DEFINE_integer("eval_max_videos", None, "Real data: evaluate only the first videos of "
                     "the val split (a quick look). Default: the official protocol, every frame "
                     "of every video.")
flags.DEFINE_enum("eval_stream_start", None, ["zeros", "key_frame"], "How each evaluated "
                  "video's stream starts; default zeros on real data, key_frame on synthetic.")
flags.DEFINE_bool("eval_jit_compile", True, "Evaluate with the Patchwork step compiled by XLA "
                  "(the inference preset); --noeval_jit_compile runs it as a plain graph: "
                  "the same outputs, no XLA compile per method, slower frames (toy runs).")
flags.DEFINE_bool("export", True, "Export the trained run as a SavedModel to "
                  "<model_dir>/export (the greedy attention policy inside).")
flags.mark_flag_as_required("model_dir")


def train_and_evaluate(
    model_dir: str,
    stage1_config: stage1.Stage1Config,
    attention: configs.AttentionConfig,
    finetune: configs.FinetuneConfig,
    stages: Sequence[int] = (1, 2, 3),
    evaluate: bool = True,
    export: bool = True,
    eval_split: str = "test",
    eval_clips: int = 16,
    eval_stream_start: Optional[str] = None,
    eval_max_videos: Optional[int] = None,
    eval_jit_compile: bool = True,
    seeds: Sequence[int] = (),
    strategy: str = "default",
    stage1_max_seconds: Optional[float] = None,
    checkpoint_replay_buffer: bool = False,
) -> Dict[str, Any]:
    """The train job: `stages` of 1 (`stage1_config`), 2 (`attention`) and 3 (`finetune`) in
    `model_dir` (layout: `runs`), then the evaluation and the SavedModel export.

    Every stage resumes from its checkpoints; a stage at its step count is skipped.

    Args:
      model_dir: the run's directory.
      stage1_config, attention, finetune: the settings of the stages (`attention.seed` is
        the run's own seed).
      stages: the stages to run, of 1, 2, 3.
      evaluate: evaluate every policy (`api.evaluate_train_run`) into `<model_dir>/eval`.
      export: export the run with its greedy attention policy to `<model_dir>/export`.
      eval_split, eval_clips, eval_stream_start, eval_max_videos, eval_jit_compile: of the
        evaluation (`api.evaluate`: split, synthetic clips, stream start, real videos, XLA).
      seeds: also train stages 2 and 3 with each of these seeds on the run's stage-1 model
        (`seed_dir`), evaluate each, and summarise them in `<model_dir>/seeds/summary.*`.
      strategy: the `tf.distribute` strategy of stage 1 (`distribute.get_strategy`).
      stage1_max_seconds: stop stage 1 after this many seconds (the later stages start from
        its checkpoint).
      checkpoint_replay_buffer: keep the replay buffer in stage 2 and 3 checkpoints.

    Returns:
      dict: `stage1`, `stage2`, `stage3` (each stage's result, None when it did not train),
      `eval` (the evaluation records or None), `export_dir` (or None), `seeds` (the seeds
      summary or None).
    """
    unknown = set(stages) - {1, 2, 3}
    if unknown:
        raise ValueError(f"stages are of 1, 2, 3; got {sorted(unknown)}.")
    configs.check_steps(attention, finetune)
    if seeds and len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds has repeated seeds: {list(seeds)}.")
    outcome = dict(stage1=None, stage2=None, stage3=None, eval=None, export_dir=None,
                   seeds=None)
    if 1 in stages:
        logging.info("Stage 1: single-frame %s model.", stage1_config.task)
        print(f"[stage 1/3] single-frame {stage1_config.task} model, "
              f"{stage1_config.num_steps} steps")
        result = stage1.train_stage1(os.path.join(model_dir, runs.STAGE1_DIR), stage1_config,
                                     strategy=strategy, max_seconds=stage1_max_seconds)
        logging.info("Stage 1 at step %d, losses %s", result["step"], result["losses"])
        if result["out_of_time"]:
            print(f"[stage 1/3] stopped at step {result['step']} of {stage1_config.num_steps}: "
                  f"the time limit of {stage1_max_seconds:g} s was reached; the later stages "
                  "start from this checkpoint.")
        outcome["stage1"] = result
    outcome.update(train_attention(model_dir, attention, finetune, stages,
                                   checkpoint_replay_buffer))
    evaluation = dict(split=eval_split, clips=eval_clips, stream_start=eval_stream_start,
                      max_videos=eval_max_videos, jit_compile=eval_jit_compile)
    if evaluate:
        outcome["eval"] = evaluate_run(model_dir, **evaluation)
    if export:
        export_dir = os.path.join(model_dir, runs.EXPORT_DIR)
        print(f"[export] SavedModel with the attention policy -> {export_dir}")
        exporter.export_trained_run(model_dir, export_dir)
        outcome["export_dir"] = export_dir
    if seeds:
        outcome["seeds"] = run_seeds(model_dir, attention, finetune, stages, list(seeds),
                                     outcome["eval"], evaluate, checkpoint_replay_buffer,
                                     evaluation)
    return outcome


def evaluate_run(model_dir, split="test", clips=16, stream_start=None, max_videos=None,
                 jit_compile=True):
    """Accuracy and latency of the run per policy on its own data source's held-out videos
    (real data: the official protocol), into `<model_dir>/eval` (JSON, Markdown), with the
    paired differences of DQN against the single-frame model and the rules and of the rules
    against the single-frame model; resumable per video. The grid, clip length and frame size
    are the run's. Runs in a fresh single-threaded process (`api.run_single_threaded`): the
    empirical latency is single-threaded, and this process's thread pools, set up for
    training, cannot change. `jit_compile`: of `api.build_runner`.

    Returns:
      the records (`StreamResult.to_json()` with `paired`).
    """
    run = runs.TrainedRun.find(model_dir)
    attention = run.attention or configs.AttentionConfig()
    records = api.run_single_threaded(
        api.evaluate_train_run, model_dir, attention.m, attention.n, split, clips,
        attention.clip_length, run.stage1_config.frame_size[0], stream_start, max_videos,
        jit_compile)
    results.write_results(records, os.path.join(model_dir, runs.EVAL_DIR), "summary")
    print(results.markdown_table(records))
    print(results.paired_table(records))
    return records


def seed_dir(model_dir, seed, own_seed):
    """Where stages 2 and 3 of `seed` go: the run itself for its `own_seed`, else
    `<model_dir>/seeds/seed_<seed>` with `stage1` linked to the run's (created)."""
    if seed == own_seed:
        return model_dir
    directory = os.path.join(model_dir, runs.SEEDS_DIR, f"seed_{seed}")
    link = os.path.join(directory, runs.STAGE1_DIR)
    if not os.path.lexists(link):
        os.makedirs(directory, exist_ok=True)
        os.symlink(os.path.join(os.pardir, os.pardir, runs.STAGE1_DIR), link)
    return directory


def train_attention(model_dir, attention, finetune, stages=(2, 3),
                    checkpoint_replay_buffer=False):
    """Stages 2 and 3 (those of `stages`) in `model_dir`. The settings are checked against a
    stored run first; a stage whose newest checkpoint has reached its step count is then
    skipped (a resume would only rebuild it).

    Returns:
      dict `stage2`, `stage3`: each stage's result, None when it did not train.
    """
    outcome = {}
    wanted = [(stage, steps, train) for stage, steps, train in (
        (2, attention.stage2_steps, stage2.train_stage2),
        (3, finetune.steps, stage3.train_stage3)) if stage in stages]
    if wanted:
        stage2.store_config(model_dir, attention, finetune)
    for stage, steps, train in wanted:
        outcome[f"stage{stage}"] = None
        done = runs.finished_step(model_dir, f"stage{stage}")
        if done is not None and done >= steps:
            print(f"[stage {stage}/3] already at train step {done} of {steps}: skipped")
            continue
        print(f"[stage {stage}/3] " + (
            f"attention by DDQN, M={attention.m} N={attention.n}, {steps} train steps"
            if stage == 2 else f"joint fine-tuning to DDQN step {steps}")
            + f", seed {attention.seed}")
        result = train(model_dir, attention, finetune,
                       checkpoint_replay_buffer=checkpoint_replay_buffer)
        logging.info("Stage %s at train step %d, loss %s", stage, result["train_step"],
                     result["loss"])
        outcome[f"stage{stage}"] = result
    return outcome


def run_seeds(model_dir, attention, finetune, stages, seeds, main_records, evaluate,
              checkpoint_replay_buffer, evaluation):
    """Stages 2 and 3 and the evaluation (`evaluate_run` with `evaluation`) of every seed,
    then `<model_dir>/seeds/summary.*`.

    `main_records` are the run's own evaluation when it has just been made (else read back
    from `<model_dir>/eval/summary.json`).

    Returns:
      the summary (`results.seeds_summary` with `model_dirs`).
    """
    records = {}
    for seed in seeds:
        directory = seed_dir(model_dir, seed, attention.seed)
        if directory == model_dir and main_records is not None:
            records[seed] = main_records
            continue
        if directory != model_dir:
            print(f"[seeds] seed {seed} -> {directory}")
            train_attention(directory, dataclasses.replace(attention, seed=seed), finetune,
                            stages, checkpoint_replay_buffer)
        if evaluate:
            records[seed] = evaluate_run(directory, **evaluation)
        else:
            with open(os.path.join(directory, runs.EVAL_DIR, "summary.json")) as f:
                records[seed] = json.load(f)
    summary = results.seeds_summary(records)
    summary["model_dirs"] = {str(seed): seed_dir(model_dir, seed, attention.seed)
                             for seed in seeds}
    output_dir = os.path.join(model_dir, runs.SEEDS_DIR)
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(output_dir, "summary.md"), "w") as f:
        f.write(results.seeds_table(summary))
    print(results.seeds_table(summary))
    return summary


def _check_flags():
    """Refuses bad --stages and --seeds, a frame not divisible by --m, and a data source that
    is misnamed, lacks labels for --task, or whose local copy is missing or malformed (naming
    the flags and the expected layout)."""
    source = sources.DataSource(FLAGS.data, FLAGS.data_dir, FLAGS.still_data,
                                FLAGS.still_data_dir, FLAGS.still_fraction)
    try:
        source.check(FLAGS.task)
    except layout.DataLayoutError as error:
        sys.exit(f"--data={FLAGS.data} --data_dir={FLAGS.data_dir!r} --still_data="
                 f"{FLAGS.still_data} --still_data_dir={FLAGS.still_data_dir!r}: {error}")
    except ValueError as error:
        raise app.UsageError(f"--data={FLAGS.data}: {error}") from error
    unknown = set(FLAGS.stages) - {"1", "2", "3"}
    if unknown:
        raise app.UsageError(f"--stages takes 1, 2, 3; got {sorted(unknown)}.")
    try:
        seeds = [int(seed) for seed in FLAGS.seeds]
    except ValueError:
        raise app.UsageError(f"--seeds takes integers, e.g. 0,1,2; got {FLAGS.seeds}.") from None
    if len(set(seeds)) != len(seeds):
        raise app.UsageError(f"--seeds has repeated seeds: {FLAGS.seeds}.")
    if FLAGS.frame_size % FLAGS.m:
        raise app.UsageError(
            f"--frame_size={FLAGS.frame_size} is not divisible by --m={FLAGS.m}.")


def configs_from_flags():
    """(`Stage1Config`, `AttentionConfig`, `FinetuneConfig`) of the flags."""
    data = dict(data=FLAGS.data, data_dir=FLAGS.data_dir, still_data=FLAGS.still_data,
                still_data_dir=FLAGS.still_data_dir, still_fraction=FLAGS.still_fraction)
    stage1_config = stage1.Stage1Config(
        FLAGS.task, frame_size=(FLAGS.frame_size, FLAGS.frame_size),
        alpha=FLAGS.depth_multiplier, output_stride=FLAGS.output_stride,
        num_steps=FLAGS.stage1_steps, batch_size=FLAGS.stage1_batch_size,
        learning_rate=FLAGS.stage1_learning_rate,
        num_train_clips=FLAGS.stage1_train_clips, seed=FLAGS.seed,
        backbone_weights=FLAGS.backbone_weights, detection_loss=FLAGS.detection_loss, **data)
    attention = configs.AttentionConfig(
        m=FLAGS.m, n=FLAGS.n, observed_cell=FLAGS.observed_cell,
        history_alpha=FLAGS.history_alpha, change_cue=FLAGS.change_cue,
        q_network=FLAGS.q_network, reward=FLAGS.reward, num_streams=FLAGS.num_streams,
        clip_length=FLAGS.clip_length, num_train_clips=FLAGS.num_train_clips,
        gamma=FLAGS.gamma, n_step=FLAGS.n_step, learning_rate=FLAGS.stage2_learning_rate,
        target_update_period=FLAGS.target_update_period,
        epsilon_start=FLAGS.epsilon_start, epsilon_end=FLAGS.epsilon_end,
        epsilon_decay_steps=FLAGS.epsilon_decay_steps,
        replay_capacity=FLAGS.replay_capacity, sample_batch_size=FLAGS.sample_batch_size,
        initial_collect_steps=FLAGS.initial_collect_steps, imitation_steps=FLAGS.imitation_steps,
        demonstration_weight=FLAGS.demonstration_weight,
        counterfactual_steps=FLAGS.counterfactual_steps, stage2_steps=FLAGS.stage2_steps,
        seed=FLAGS.seed, **data)
    finetune = configs.FinetuneConfig(
        steps=FLAGS.stage3_steps, learning_rate=FLAGS.stage3_learning_rate,
        q_learning_rate=FLAGS.stage3_q_learning_rate,
        finetune_every=FLAGS.stage3_finetune_every, clip_length=FLAGS.stage3_clip_length,
        batch_size=FLAGS.stage3_batch_size)
    return stage1_config, attention, finetune


def main(argv):
    del argv
    _check_flags()
    try:
        stage1_config, attention, finetune = configs_from_flags()
        configs.check_steps(attention, finetune)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    train_and_evaluate(
        FLAGS.model_dir, stage1_config, attention, finetune,
        stages=[int(stage) for stage in FLAGS.stages], evaluate=FLAGS.evaluate,
        export=FLAGS.export, eval_split=FLAGS.eval_split, eval_clips=FLAGS.eval_clips,
        eval_stream_start=FLAGS.eval_stream_start, eval_max_videos=FLAGS.eval_max_videos,
        eval_jit_compile=FLAGS.eval_jit_compile, seeds=[int(seed) for seed in FLAGS.seeds], strategy=FLAGS.strategy,
        stage1_max_seconds=FLAGS.stage1_max_seconds,
        checkpoint_replay_buffer=FLAGS.checkpoint_replay_buffer)


if __name__ == "__main__":
    app.run(main)
