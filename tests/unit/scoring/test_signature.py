"""The tensor names the scorer sends and reads (stream/scoring/signature.py) are
the ones the shipped model's config.pbtxt declares."""
import re

from stream.scoring import signature
from tests.fixtures.paths import EXPORT


def _declared(section: str) -> list[str]:
    text = (EXPORT.parent / "config.pbtxt").read_text()
    block = re.search(section + r"\s*\[(.*?)\n\]", text, re.S).group(1)
    return re.findall(r'name:\s*"([A-Z_]+)"', block)


def test_the_signature_names_are_the_served_models():
    assert _declared("input") == list(signature.INPUTS)
    assert _declared("output")[:3] == list(signature.OUTPUTS)
    assert _declared("output")[3:] == [signature.CHURN_AT_CHECKPOINTS]
