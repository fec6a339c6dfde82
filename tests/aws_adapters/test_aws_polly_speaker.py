from __future__ import annotations

import io

import pytest
from botocore.response import StreamingBody

from vehicle_assessment.adapters.aws.polly_speaker import MAX_TOTAL_CHARS, PollySpeaker, split_text, to_ssml
from vehicle_assessment.adapters.aws.settings import PollyVoice, default_polly_voices
from vehicle_assessment.ports import SpeechUnavailable


def audio(data: bytes) -> dict:
    return {"AudioStream": StreamingBody(io.BytesIO(data), len(data)), "ContentType": "audio/mpeg"}


def polly_params(text: str, voice: str = "Joanna", language_code: str = "en-US") -> dict:
    return {
        "Engine": "neural",
        "LanguageCode": language_code,
        "OutputFormat": "mp3",
        "Text": text,
        "TextType": "ssml",
        "VoiceId": voice,
    }


def test_happy_path_escapes_ssml_and_returns_mp3(stub) -> None:
    client, stubber = stub("polly")
    stubber.add_response(
        "synthesize_speech",
        audio(b"ID3mp3"),
        polly_params("<speak>Red &amp; black &lt;b&gt;trim&lt;/b&gt;, 5 &gt; 4.</speak>"),
    )

    clip = PollySpeaker(client, default_polly_voices()).synthesize("Red & black <b>trim</b>, 5 > 4.", "en")

    stubber.assert_no_pending_responses()
    assert (clip.audio, clip.content_type, clip.extension) == (b"ID3mp3", "audio/mpeg", "mp3")


def test_spanish_uses_the_neural_us_spanish_voice(stub) -> None:
    client, stubber = stub("polly")
    stubber.add_response(
        "synthesize_speech", audio(b"es"), polly_params("<speak>Hola.</speak>", "Lupe", "es-US")
    )

    assert PollySpeaker(client, default_polly_voices()).synthesize("Hola.", "ES").audio == b"es"


def test_long_text_is_split_at_sentences_and_the_mp3_parts_concatenated(stub) -> None:
    client, stubber = stub("polly")
    sentence = "This truck has a minor scratch on the rear bumper and runs well. "  # 65 chars
    text = sentence * 100  # 6,500 characters: more than two requests' worth
    chunks = split_text(text, 2500)
    assert len(chunks) == 3
    assert all(chunk.endswith("well.") for chunk in chunks)  # cut between sentences only
    assert " ".join(chunks) == text.strip()
    for i, chunk in enumerate(chunks):
        stubber.add_response("synthesize_speech", audio(f"part{i};".encode()), polly_params(to_ssml(chunk)))

    clip = PollySpeaker(client, default_polly_voices()).synthesize(text, "en")

    stubber.assert_no_pending_responses()
    assert clip.audio == b"part0;part1;part2;"


def test_escaping_growth_is_bounded_by_the_total_character_limit() -> None:
    # "&" becomes "&amp;": 2,500 of them would make a 12,500-character request.
    chunks = split_text("& " * 2500, 2500)
    assert all(len(to_ssml(chunk)) <= MAX_TOTAL_CHARS and len(chunk) <= 2500 for chunk in chunks)
    assert "".join(chunks).count("&") == 2500


def test_an_overlong_word_is_cut_anywhere() -> None:
    chunks = split_text("x" * 6000, 2500)
    assert [len(c) for c in chunks] == [2500, 2500, 1000]


def test_unknown_language_is_speech_unavailable(stub) -> None:
    client, _ = stub("polly")
    with pytest.raises(SpeechUnavailable, match="no Polly voice configured for language 'ja'"):
        PollySpeaker(client, {"en": PollyVoice("Joanna", "en-US")}).synthesize("Hi.", "ja")


def test_empty_text_is_speech_unavailable(stub) -> None:
    client, _ = stub("polly")
    with pytest.raises(SpeechUnavailable, match="no text"):
        PollySpeaker(client, default_polly_voices()).synthesize("   ", "en")


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("TextLengthExceededException", 400), ("ServiceFailureException", 500)],
)
def test_client_errors_are_speech_unavailable_with_the_code(stub, code, status) -> None:
    client, stubber = stub("polly")
    stubber.add_client_error(
        "synthesize_speech", service_error_code=code, service_message="no", http_status_code=status
    )

    with pytest.raises(SpeechUnavailable, match=f"Polly failed: {code}: no"):
        PollySpeaker(client, default_polly_voices()).synthesize("Hello.", "en")


def test_voices_accept_plain_tuples(stub) -> None:
    client, stubber = stub("polly")
    stubber.add_response(
        "synthesize_speech", audio(b"fr"), polly_params("<speak>Bonjour.</speak>", "Lea", "fr-FR")
    )
    assert PollySpeaker(client, {"FR": ("Lea", "fr-FR")}).synthesize("Bonjour.", "fr").audio == b"fr"
