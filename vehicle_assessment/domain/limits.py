"""Every limit and default that more than one place relies on, named once.

The CLI, the API models, the upload trigger, the DynamoDB adapter and the CDK app import these;
none of them may copy a number from here.
"""

from __future__ import annotations

# Photos per assessment: the yard app's default is three (front, side, damage close-up).
DEFAULT_EXPECTED_PHOTOS = 3
MAX_EXPECTED_PHOTOS = 20

# One photo upload. The POST policy, the trigger's size check and photo intake share it.
MAX_PHOTO_BYTES = 15 * 1024 * 1024
# Decoded size above which a photo is refused before its pixels are read (decompression bombs).
MAX_PHOTO_PIXELS = 50_000_000

# What a person may type about a vehicle. Every entry path (CLI, API, S3 upload metadata) builds
# an `AssessmentInputs`, which enforces these, so the bounds cannot drift apart.
MAX_MILEAGE_MILES = 2_000_000
# A vehicle's estimate in US dollars: below 1 is a typo, above 50 M is no road vehicle at a yard.
MIN_ESTIMATE_USD = 1.0
MAX_ESTIMATE_USD = 50_000_000.0
# A paint colour name ("Oxford White", "Rapid Red Metallic Tinted Clearcoat"); it is spoken aloud.
MAX_COLOR_CHARS = 40
# Besides letters, digits and spaces, the only characters a colour may hold: nothing a speech
# engine would read out as markup, symbols or emoji names.
COLOR_PUNCTUATION = "-/'.&(),"
