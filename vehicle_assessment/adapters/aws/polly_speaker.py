"""Speaker on Amazon Polly: neural voices, SSML-escaped text, long texts split into several requests."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any
from xml.sax.saxutils import escape

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from vehicle_assessment.adapters.aws.clients import make_boto3_client, one_line_reason
from vehicle_assessment.adapters.aws.settings import PollySettings, PollyVoice
from vehicle_assessment.ports import SpeechClip, SpeechUnavailable

# SynthesizeSpeech takes at most 3,000 billed characters (text, tags not counted) and 6,000
# characters in all; chunks stay well under both.
MAX_BILLED_CHARS = 3000
MAX_TOTAL_CHARS = 6000
_SENTENCE_END = re.compile(r"(?<=[.!?…。])\s+")


# Characters XML 1.0 forbids (https://www.w3.org/TR/xml/#charsets): C0 controls other than tab, LF
# and CR, surrogates, U+FFFE and U+FFFF. Polly refuses SSML that contains them as not well-formed.
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def to_ssml(text: str) -> str:
    # Escaping &, < and > makes user words (a colour like "Red & <b>") plain text, never markup.
    # Intake already refuses control characters in user text; a model's text is cleaned here.
    return f"<speak>{escape(_NOT_XML_CHAR.sub(' ', text))}</speak>"


def split_text(text: str, max_chars: int = 2500, max_total_chars: int = MAX_TOTAL_CHARS) -> list[str]:
    """Chunks at sentence boundaries (then words, then characters) that each fit one Polly request."""
    if not 0 < max_chars <= MAX_BILLED_CHARS:
        raise ValueError(f"max_chars must be 1..{MAX_BILLED_CHARS}")

    def fits(chunk: str) -> bool:
        return len(chunk) <= max_chars and len(to_ssml(chunk)) <= max_total_chars

    def units() -> Iterator[str]:
        for sentence in _SENTENCE_END.split(" ".join(text.split())):
            if fits(sentence):
                yield sentence
                continue
            for word in sentence.split(" "):
                if fits(word):
                    yield word
                    continue
                part = ""
                for char in word:  # a "word" longer than a request: cut it anywhere
                    if part and not fits(part + char):
                        yield part
                        part = ""
                    part += char
                if part:
                    yield part

    chunks: list[str] = []
    current = ""
    for unit in units():
        candidate = f"{current} {unit}" if current else unit
        if fits(candidate):
            current = candidate
        else:
            chunks.append(current)
            current = unit
    if current:
        chunks.append(current)
    return chunks


class PollySpeaker:
    def __init__(
        self,
        client: Any,
        voices: Mapping[str, PollyVoice | tuple[str, str]],
        *,
        engine: str = "neural",
        max_chunk_chars: int = 2500,
    ) -> None:
        self.client = client
        self.voices = {language.lower(): PollyVoice(*voice) for language, voice in voices.items()}
        self.engine = engine
        self.max_chunk_chars = max_chunk_chars

    @classmethod
    def from_settings(
        cls, settings: PollySettings, region: str, session: boto3.Session | None = None
    ) -> PollySpeaker:
        return cls(
            make_boto3_client("polly", region, settings.client, session),
            settings.voices,
            engine=settings.engine,
            max_chunk_chars=settings.max_chunk_chars,
        )

    def synthesize(self, text: str, language: str) -> SpeechClip:
        voice = self.voices.get(language.strip().lower())
        if voice is None:
            raise SpeechUnavailable(
                f"no Polly voice configured for language {language!r} (have {', '.join(sorted(self.voices))})"
            )
        chunks = split_text(text, self.max_chunk_chars)
        if not chunks:
            raise SpeechUnavailable("there is no text to speak")
        # MP3 is a stream of self-contained frames, so the parts concatenate into one playable file.
        audio = b"".join(self._synthesize_chunk(chunk, voice) for chunk in chunks)
        return SpeechClip(audio=audio, content_type="audio/mpeg", extension="mp3")

    def _synthesize_chunk(self, chunk: str, voice: PollyVoice) -> bytes:
        try:
            # botocore's retry config has already retried throttling and 5xx when this raises.
            response = self.client.synthesize_speech(
                Engine=self.engine,
                LanguageCode=voice.language_code,
                OutputFormat="mp3",
                Text=to_ssml(chunk),
                TextType="ssml",
                VoiceId=voice.voice_id,
            )
        except (ClientError, BotoCoreError) as exc:
            raise SpeechUnavailable(f"Polly failed: {one_line_reason(exc)}") from exc
        with response["AudioStream"] as stream:
            return stream.read()
