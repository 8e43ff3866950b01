"""The paper's ImageNet VID flag files end to end at toy scale, on fixture copies of the
official layouts and a local ImageNet weights file, as an offline machine runs them (DAVIS:
experiments_davis_test.py)."""
import pytest

from tests.training import experiments_test
from tests.training import toy_runs

FLAG_FILES = ("vid.flags", "vid_change.flags")
runs = toy_runs.paper_pair_fixture(FLAG_FILES)


@pytest.mark.slow
@pytest.mark.parametrize("name", FLAG_FILES)
def test_vid_flag_file_runs_every_stage_evaluates_and_exports(runs, name):
    experiments_test.check_run(runs[name], real=True)
