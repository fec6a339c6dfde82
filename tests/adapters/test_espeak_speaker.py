"""espeak-ng speech: real audio when installed, a recorded reason when not."""

from __future__ import annotations

import shutil

import pytest

from vehicle_assessment.adapters.local.espeak_speaker import EspeakSpeaker
from vehicle_assessment.ports import SpeechUnavailable
from vehicle_assessment.settings import SpeechSettings

HAS_ESPEAK = shutil.which("espeak-ng") is not None


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed (.ci/run installs it)")
@pytest.mark.parametrize("language", ["en", "es"])
def test_espeak_makes_a_wav(language: str) -> None:
    clip = EspeakSpeaker(SpeechSettings()).synthesize("Ford F-150 2021; $32,918 & <more>", language)
    assert clip.content_type == "audio/wav" and clip.extension == "wav"
    assert clip.audio[:4] == b"RIFF" and clip.audio[8:12] == b"WAVE"
    assert len(clip.audio) > 10_000  # about a second of speech, not an empty header


def test_missing_engine_is_reported_not_hidden() -> None:
    speaker = EspeakSpeaker(SpeechSettings(executable="no-such-espeak-binary"))
    with pytest.raises(SpeechUnavailable, match="not installed"):
        speaker.synthesize("hello", "en")


def test_disabled_and_unknown_language() -> None:
    with pytest.raises(SpeechUnavailable, match="disabled"):
        EspeakSpeaker(SpeechSettings(enabled=False)).synthesize("hello", "en")
    if HAS_ESPEAK:
        with pytest.raises(SpeechUnavailable, match="xx"):
            EspeakSpeaker(SpeechSettings()).synthesize("hello", "xx")
