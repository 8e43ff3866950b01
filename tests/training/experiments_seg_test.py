"""The synthetic segmentation flag file end to end at toy scale (the detection file, its seeds
and its report: experiments_test.py), in a module of its own so that it runs on either
pytest-xdist worker."""
import pytest

from tests.training import experiments_test

runs = experiments_test.synthetic_fixture("synthetic_seg.flags")


@pytest.mark.slow
def test_synthetic_seg_flag_file_runs_every_stage_evaluates_and_exports(runs):
    experiments_test.check_run(runs["synthetic_seg.flags"], real=False)
