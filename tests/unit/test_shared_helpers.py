"""Helpers written once and shared: the one-line reason, the untrained-encoder note, AWS error codes."""

from __future__ import annotations

from datetime import UTC, datetime

from vehicle_assessment.adapters.aws.errors import error_code
from vehicle_assessment.domain.models import UNTRAINED_ENCODER_WARNING, AssessmentInputs, EncoderIdentity
from vehicle_assessment.domain.text import one_line
from vehicle_assessment.pipeline import new_assessment, note_untrained_encoder

UNTRAINED = EncoderIdentity(model_name="m", pretrained=None, untrained=True, dimension=4)
TRAINED = EncoderIdentity(model_name="m", pretrained="laion2b", untrained=False, dimension=4)


def test_one_line_flattens_and_cuts_with_an_ellipsis() -> None:
    assert one_line("a\n  b\tc ") == "a b c"
    cut = one_line("line one\nline two " + "x" * 500, 40)
    assert len(cut) == 40 and cut.endswith("…") and cut.startswith("line one line two x")
    assert one_line("short", 40) == "short"


def test_the_untrained_note_is_added_first_and_once() -> None:
    class NoObjects:
        def put(self, key: str, data: bytes, content_type: str) -> None: ...
        def get(self, key: str, version_id: str | None = None) -> bytes:
            raise KeyError(key)

        def exists(self, key: str) -> bool:
            return False

    now = datetime(2025, 6, 1, tzinfo=UTC)
    opened = new_assessment(AssessmentInputs(vin="1FTMW1T88MFA00001"), (), NoObjects(), now)
    base = opened.model_copy(update={"warnings": ["other"]})
    assert note_untrained_encoder(base) is base  # no encoder yet
    assert note_untrained_encoder(base.model_copy(update={"encoder": TRAINED})).warnings == ["other"]
    noted = note_untrained_encoder(base.model_copy(update={"encoder": UNTRAINED}))
    assert noted.warnings == [UNTRAINED_ENCODER_WARNING, "other"]
    assert note_untrained_encoder(noted).warnings == noted.warnings


def test_error_code_reads_a_botocore_client_error() -> None:
    from botocore.exceptions import ClientError

    exc = ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": "no"}}, "UpdateItem")
    assert error_code(exc) == "ConditionalCheckFailedException"
    assert error_code(ValueError("plain")) is None
    assert error_code(ClientError({}, "GetItem")) is None
