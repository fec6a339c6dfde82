"""Offline speech with espeak-ng (the local stand-in for Amazon Polly)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from vehicle_assessment.ports import SpeechClip, SpeechUnavailable
from vehicle_assessment.settings import SpeechSettings

# espeak-ng voice per language; any other language is reported as unsupported, not mangled.
VOICES = {"en": "en-us", "es": "es", "fr": "fr-fr", "de": "de", "it": "it", "pt": "pt"}


class EspeakSpeaker:
    def __init__(self, settings: SpeechSettings) -> None:
        self.settings = settings
        self.executable = shutil.which(settings.executable) if settings.enabled else None

    def synthesize(self, text: str, language: str) -> SpeechClip:
        if not self.settings.enabled:
            raise SpeechUnavailable("speech is disabled in the settings")
        if self.executable is None:
            raise SpeechUnavailable(
                f"{self.settings.executable} is not installed (apt-get install espeak-ng to get audio)"
            )
        voice = VOICES.get(language.lower())
        if voice is None:
            raise SpeechUnavailable(f"no espeak-ng voice configured for language {language!r}")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "speech.wav"
            # Text goes on stdin, never through a shell, so user-supplied words cannot run anything.
            result = subprocess.run(
                [self.executable, "-v", voice, "-w", str(out), "--stdin"],
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=self.settings.timeout_s,
                check=False,
            )
            if result.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
                detail = result.stderr.decode("utf-8", "replace").strip() or f"exit {result.returncode}"
                raise SpeechUnavailable(f"espeak-ng failed: {detail}")
            return SpeechClip(audio=out.read_bytes(), content_type="audio/wav", extension="wav")
