import pytest
from pydantic import ValidationError

from stream.domain.inactivity import InactivitySchedule
from stream.settings import Settings


def test_checkpoint_days_have_one_order_for_everything_that_indexes_them():
    settings = Settings(_env_file=None, inactivity_checkpoints_days=[30, 7, 14, 7])
    assert settings.inactivity_checkpoints_days == [7, 14, 30]
    assert InactivitySchedule(settings.inactivity_checkpoints_days).days == settings.inactivity_checkpoints_days


@pytest.mark.parametrize("days", [[0, 7], [7, -1]])
def test_checkpoint_days_below_one_are_refused(days):
    with pytest.raises(ValidationError, match="at least 1"):
        Settings(_env_file=None, inactivity_checkpoints_days=days)
