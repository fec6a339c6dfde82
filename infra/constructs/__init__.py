"""One construct per capability; the stack in ``infra/stack.py`` wires them together.

Always import these as ``infra.constructs.<module>``: a bare ``constructs`` is the CDK library.
"""
