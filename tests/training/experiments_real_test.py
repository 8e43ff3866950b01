"""The paper's flag files end to end at toy scale, on fixture copies of the official layouts
(ImageNet VID with DET in one ILSVRC2015 folder, DAVIS 2016, COCO 2017, Pascal VOC 2012) and
a local ImageNet weights file, as an offline machine runs them."""
import pytest

from tests.data import fixtures
from tests.models import backbone_files
from tests.training import experiments_test
from tests.training import toy_runs


@pytest.fixture(scope="module")
def official_copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    weights = str(root / "mobilenet_v2_weights_0.35_no_top.h5")
    backbone_files.write_weights_file(weights)
    ilsvrc = fixtures.write_vid(str(root / "ILSVRC2015"))
    fixtures.write_det(ilsvrc)
    return {"imagenet_vid": ilsvrc, "davis": fixtures.write_davis(str(root / "DAVIS")),
            "coco": fixtures.write_coco(str(root / "coco")),
            "voc": fixtures.write_voc(str(root / "VOC2012")), "weights": weights}


def _data_flags(name, copies):
    """--data_dir, --still_data_dir (the flag file's still sources, in its order) and the
    local backbone weights."""
    if name.startswith("vid"):
        data_dir, stills = copies["imagenet_vid"], [copies["imagenet_vid"], copies["coco"]]
    else:
        data_dir, stills = copies["davis"], [copies["coco"], copies["voc"]]
    return [f"--data_dir={data_dir}", f"--still_data_dir={','.join(stills)}",
            f"--backbone_weights={copies['weights']}"]


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory, official_copies):
    return {name: toy_runs.train_flag_file(
        name, str(tmp_path_factory.mktemp(name.split(".")[0]) / "run"),
        *_data_flags(name, official_copies)) for name in experiments_test.REAL_FLAG_FILES}


@pytest.mark.slow
@pytest.mark.parametrize("name", experiments_test.REAL_FLAG_FILES)
def test_paper_flag_file_runs_every_stage_evaluates_and_exports(real_runs, name):
    experiments_test.check_run(real_runs[name], real=True)
