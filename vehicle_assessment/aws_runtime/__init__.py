"""The AWS runtime's application services: what the Lambda handlers in ``functions/`` call.

Handlers stay thin (decorators, parse, one call here); the logic lives in these modules and takes
its ports and clients as arguments, so tests drive it with moto or in-memory fakes. Nothing here
reads the environment or builds a client at import time, and nothing imports torch or open_clip.
"""
