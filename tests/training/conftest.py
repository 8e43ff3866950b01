"""Fixtures of the data-source tests: fixture copies of the real data sets, small buffers."""
import pytest

from patchwork_tf.training import sources
from tests.data import fixtures


@pytest.fixture(scope="module", autouse=True)
def small_shuffle_buffers():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sources, "SHUFFLE_FRAMES", 32)   # a full buffer of 1024 frames is slow
        patch.setattr(sources, "SHUFFLE_CLIPS", 4)
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Fixture copies of ImageNet VID, DAVIS, COCO, VOC and ImageNet DET: dict name -> root
    directory. DET shares VID's root, as in the ILSVRC2015 download."""
    root = tmp_path_factory.mktemp("data")
    return {"vid": fixtures.write_vid(str(root / "vid")),
            "det": fixtures.write_det(str(root / "vid")),
            "davis": fixtures.write_davis(str(root / "davis")),
            "coco": fixtures.write_coco(str(root / "coco")),
            "voc": fixtures.write_voc(str(root / "voc"))}
