"""Property-based tests of the panel's inputs: any value typed into a field gives either a
working action or one sentence in the panel — never an exception out of a click, never a
half-launched cluster."""

import pytest
from helpers import worker_pids
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from elastic_nb import ControlPanel
from elastic_nb.cluster import check_local_capacity, check_memory_limit
from elastic_nb.ui.controls import parse_learning_rate


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=12) | st.floats().map(str) | st.integers().map(str))
def test_any_learning_rate_text_parses_or_names_the_field(text):
    try:
        rate = parse_learning_rate(text)
    except ValueError as err:
        assert "learning rate" in str(err)
    else:
        assert rate is None or rate > 0


def _invalid_launch(minimum, maximum, memory):
    try:
        check_local_capacity(maximum, 1, check_memory_limit(memory.strip() or "auto"))
    except (ValueError, TypeError):
        return True
    return minimum > maximum


@pytest.fixture(scope="module")
def panel():
    panel = ControlPanel()
    yield panel
    panel.close()


@settings(max_examples=60, deadline=None)
@given(
    minimum=st.integers(-10, 1000),
    maximum=st.integers(-10, 1000),
    memory=st.sampled_from(
        ["auto", "", "-1GB", "lots", "0", "1e400", "2GiB", "512 MB", "1kB", "100 TiB"]
    )
    | st.text(max_size=6),
)
def test_an_invalid_launch_is_one_sentence_and_starts_nothing(panel, minimum, maximum, memory):
    panel.minimum.value, panel.maximum.value, panel.memory.value = minimum, maximum, memory
    # the fields clamp what they can hold; the rest must be caught before anything starts
    assume(_invalid_launch(panel.minimum.value, panel.maximum.value, memory))
    before = worker_pids()
    panel.launch_button.click()  # must not raise
    assert panel.cluster is None
    assert "⚠" in panel.message.value and "Traceback" not in panel.message.value.split("<pre>")[0]
    assert worker_pids() == before
