"""Every limit and default that more than one place relies on, named once.

The CLI, the API models, the upload trigger, the DynamoDB adapter and the CDK app import these;
none of them may copy a number from here.
"""

from __future__ import annotations

from decimal import Decimal

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

# The encoder that production assessments use: local mode, the endpoint container and the CDK app
# default to it, and a reference index built by any other encoder is refused.
DEFAULT_ENCODER_MODEL = "ViT-L-14"
DEFAULT_ENCODER_PRETRAINED = "laion2b_s32b_b82k"
DEFAULT_ENCODER_DIMENSION = 768  # ViT-L-14's image embedding width

# An assessment id: the API's path parameter and the upload keys' second segment (a UUID fits).
MAX_ASSESSMENT_ID_CHARS = 80
# A direct drop's `incoming/{vin}/{batch}/{name}` segments (the VIN segment is judged by the VIN check).
MAX_VIN_SEGMENT_CHARS = 40
MAX_BATCH_CHARS = 100
MAX_PHOTO_NAME_CHARS = 200

# Rejected uploads kept on their assessment's item. Past this, each further rejection is its own
# orphan-upload item (naming the assessment), so an upload flood cannot push the assessment item
# past DynamoDB's 400 KB item limit and break every later write to it.
MAX_REJECTED_UPLOADS_PER_ASSESSMENT = 50

# Numbers the assessment store can hold. DynamoDB numbers carry at most 38 significant digits, and
# a non-zero magnitude from 1E-130 to 9.9999999999999999999999999999999999999E+125; anything else is
# refused with a ValidationException
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html).
# Every number a caller gives is checked against these before it is accepted.
MAX_STORED_SIGNIFICANT_DIGITS = 38
MIN_STORED_MAGNITUDE = Decimal("1E-130")
MAX_STORED_MAGNITUDE = Decimal("9.9999999999999999999999999999999999999E+125")

# Attempts, in all, at a whole-document save that keeps losing an optimistic-locking race (another
# writer saved first): each re-reads the assessment and re-applies the change. Past them the API
# answers 409, and a workflow step fails (its Catch marks the assessment FAILED with the reason).
MAX_DOCUMENT_SAVE_ATTEMPTS = 4

# The assessment workflow's whole-execution limit (the state machine's TimeoutSeconds): an execution
# past it ends TIMED_OUT, and the assessment's recorded reason names it.
WORKFLOW_TIMEOUT_HOURS = 1

# Besides letters, digits and spaces, the only characters a colour may hold: nothing a speech
# engine would read out as markup, symbols or emoji names.
COLOR_PUNCTUATION = "-/'.&(),"

# API Gateway's REST integration timeout: the API function's timeout, and the budget its route works in
# (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html: 50 ms to 29 s by default).
API_GATEWAY_TIMEOUT_S = 29
# The most the regenerate route waits on Bedrock (connect + read, one attempt) before it falls back to
# the template, leaving the rest of API Gateway's 29 s to Polly, S3 and DynamoDB.
API_DESCRIBER_DEADLINE_S = 18
# The share of a Lambda function's timeout its AWS clients' worst case may take (every attempt timing
# out, after the longest backoffs); the rest is left for the work. The CDK app sizes the describe and
# speak steps with it, and tests/infra/test_client_budgets.py holds every function to it.
CLIENT_SHARE_OF_TIMEOUT = 0.8
# Lambda's longest timeout (15 minutes).
LAMBDA_MAX_TIMEOUT_S = 900
# Target P4: each Lambda function's deployment package (the deflated zip CDK uploads, layers apart), in
# MiB as Lambda states its limits. scripts/benchmark.py reports it; tests/infra/test_bundle.py holds
# the real packages to it.
LAMBDA_PACKAGE_ZIPPED_TARGET_MIB = 25.0

# The local reference index answers exactly (numpy) below this many references and from a faiss
# IVF-Flat index at or above it. Exact top-10 over 100k x 768-d reads 307 MB per query (~12 ms on
# this project's 2-core machines, memory-bound); IVF-Flat answers a million in under a millisecond.
# Local settings (VDA_INDEX__ANN_MIN_VECTORS) and scripts/benchmark.py use it.
DEFAULT_ANN_MIN_VECTORS = 50_000
# IVF cells scored per query: benchmark P5 reached recall@10 1.0 at nprobe 4 on a million clustered
# vectors; 16 leaves margin for embeddings whose clusters are less clean, at well under 1 ms.
DEFAULT_ANN_NPROBE = 16


# --- the review loop ------------------------------------------------------------------------
# A reviewer's note: a sentence or two, stored in the assessment document.
MAX_REVIEW_NOTE_CHARS = 1000
# Who reviewed: a Cognito username / e-mail or a local name.
MAX_REVIEWER_CHARS = 128
# A hand-edited description: about three times the longest generated one.
MAX_DESCRIPTION_CHARS = 4000
# The document lives in one DynamoDB item (400 KB): the audit trail and the superseded descriptions
# are capped; past the cap the oldest entries are dropped with a count kept (never silently).
MAX_HISTORY_ENTRIES = 200
MAX_SUPERSEDED_DESCRIPTIONS = 20
# Review queue pages.
DEFAULT_REVIEW_QUEUE_LIMIT = 50
MAX_REVIEW_QUEUE_LIMIT = 200
# The review page's copy of a reference photo: longest side in pixels.
REFERENCE_IMAGE_MAX_SIDE = 512

# The distributed reference-index build on AWS (aws_runtime/index_build.py, infra/constructs/index_build.py).
# Manifest rows per batch Lambda invocation: one endpoint request holds 16 images.
DEFAULT_INDEX_BUILD_BATCH_SIZE = 16
# Photos a batch downloads and checks at once.
INDEX_BUILD_DOWNLOAD_WORKERS = 8
# Key Queries of one reused-photo search (adapters/aws/photo_registry.py) in flight at once: the ~69
# keys take ceil(69 / 8) = 9 round trips instead of 69. At most botocore's connection pool (10 by
# default, max_pool_connections), or the surplus threads wait for a connection.
PHOTO_REGISTRY_QUERY_WORKERS = 8
# The longest one reused-photo registry call (remember, find_reuse) may take on AWS before it gives up
# with PhotoRegistryUnavailable: the check is advisory, so a slow DynamoDB leaves the photo
# `reuse_unchecked` instead of timing out the analyse step (and failing the photo). DynamoDB answers
# in single-digit milliseconds (https://aws.amazon.com/dynamodb/, "single-digit millisecond
# performance at any scale"): remember is a GetItem and one BatchWriteItem, a search 9 waves of
# Queries, ~0.1 s in all; 5 s leaves room for a throttled request's retry and backoff (the
# registry's client, adapters/aws/settings.py photo_registry_client) and costs the analyse step's
# budget (tests/infra/test_client_budgets.py) 2 × 5 s where the generic client's worst case cost it
# one ~31 s wait per call, up to 10 in a row.
PHOTO_REGISTRY_DEADLINE_S = 5.0
# Concurrent batches per endpoint instance (MaxConcurrency = this × encoder_max_instances): each batch
# sends one request at a time, and a GPU instance embeds a few 16-image requests at once.
INDEX_BUILD_BATCHES_PER_ENDPOINT_INSTANCE = 4
# How long a media link (GET /assessments/{id}/media: a presigned S3 GET, or a signed local /media URL)
# stays usable: long enough to look at a page, short enough that a copied link soon goes dead.
MEDIA_LINK_EXPIRES_S = 900
