"""Runs a train flag file of experiments/ at toy scale, in this process: only sizes are
overridden (steps, frame size, depth multiplier, clip and buffer sizes, video counts), where
the data and the outputs live, and the evaluation's Patchwork step runs as a plain graph
(`TOY_EVALUATION`)."""
import os
import shutil

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENTS = os.path.join(REPO, "experiments")
TOY_SIZES = [
    "--frame_size=128", "--depth_multiplier=0.35", "--stage1_steps=2", "--stage1_batch_size=2",
    "--stage1_train_clips=4", "--num_streams=2", "--clip_length=4", "--num_train_clips=4",
    "--replay_capacity=8", "--sample_batch_size=4", "--initial_collect_steps=2",
    "--target_update_period=2", "--epsilon_decay_steps=2", "--stage2_steps=2",
    "--stage3_steps=4", "--stage3_finetune_every=2", "--stage3_clip_length=2",
    "--stage3_batch_size=1", "--eval_clips=1", "--eval_max_videos=1"]
# The evaluation without XLA: an XLA compile costs ~6 s of CPU per Patchwork runner (three
# per evaluation) and tells a toy run nothing; the XLA preset is tested in
# tests/core/twin_test.py and tests/evaluate_test.py.
TOY_EVALUATION = ["--noeval_jit_compile"]


# Segmenters run at 64 px: their observed cell has stride 16, so M=4 slices of 16 px hold it
# (the detectors' has stride 32 and needs 128 px).
SEGMENTATION_FLAG_FILES = ("synthetic_seg.flags", "davis.flags", "davis_change.flags")


def train_flag_file(name, model_dir, *overrides):
    """`python -m patchwork_tf.train --flagfile=experiments/<name>` at toy scale, run from the
    repository root (flag files include others by paths relative to it)."""
    if name in SEGMENTATION_FLAG_FILES:
        overrides = ("--frame_size=64",) + overrides
    from absl import flags
    from patchwork_tf import train
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        flags.FLAGS(["train", f"--flagfile={os.path.join('experiments', name)}",
                     f"--model_dir={model_dir}", *TOY_SIZES, *TOY_EVALUATION, *overrides])
        train.main([])
    finally:
        flags.FLAGS.unparse_flags()
        os.chdir(cwd)
    return model_dir


def write_official_copies(root):
    """Fixture copies of the official layouts (ImageNet VID with DET in one ILSVRC2015
    folder, DAVIS 2016, COCO 2017, Pascal VOC 2012) and a local ImageNet weights file, as an
    offline machine has them: name -> path."""
    from tests.data import fixtures
    from tests.models import backbone_files
    weights = os.path.join(root, "mobilenet_v2_weights_0.35_no_top.h5")
    backbone_files.write_weights_file(weights)
    ilsvrc = fixtures.write_vid(os.path.join(root, "ILSVRC2015"))
    fixtures.write_det(ilsvrc)
    return {"imagenet_vid": ilsvrc, "davis": fixtures.write_davis(os.path.join(root, "DAVIS")),
            "coco": fixtures.write_coco(os.path.join(root, "coco")),
            "voc": fixtures.write_voc(os.path.join(root, "VOC2012")), "weights": weights}


def paper_data_flags(name, copies):
    """--data_dir, --still_data_dir (the flag file's still sources, in its order) and the
    local backbone weights of a paper flag file (vid*, davis*)."""
    if name.startswith("vid"):
        data_dir, stills = copies["imagenet_vid"], [copies["imagenet_vid"], copies["coco"]]
    else:
        data_dir, stills = copies["davis"], [copies["coco"], copies["voc"]]
    return [f"--data_dir={data_dir}", f"--still_data_dir={','.join(stills)}",
            f"--backbone_weights={copies['weights']}"]


def train_paper_pair(name, change_name, tmp_path_factory, copies):
    """A paper flag file and its `*_change` variant at toy scale. The variant differs from the
    paper's file after stage 1 only, so it starts from a copy of the paper run's stage 1 (the
    train job skips a finished stage), as a user comparing the two would."""
    paper = train_flag_file(name, str(tmp_path_factory.mktemp(name.split(".")[0]) / "run"),
                            *paper_data_flags(name, copies))
    change = str(tmp_path_factory.mktemp(change_name.split(".")[0]) / "run")
    shutil.copytree(os.path.join(paper, "stage1"), os.path.join(change, "stage1"))
    train_flag_file(change_name, change, *paper_data_flags(change_name, copies))
    return {name: paper, change_name: change}


def paper_pair_fixture(flag_files):
    """A module fixture: `train_paper_pair` of `flag_files` (a paper file and its `*_change`
    variant) on fresh official-layout copies, flag file name -> model_dir."""
    import pytest

    @pytest.fixture(scope="module")
    def runs(tmp_path_factory):
        copies = write_official_copies(str(tmp_path_factory.mktemp("official")))
        return train_paper_pair(*flag_files, tmp_path_factory, copies)

    return runs
