"""Lambda handlers: thin (Powertools decorators, parse, one call into ``vehicle_assessment.aws_runtime``).

Handler strings are ``functions.<module>.handler``; the package needs ``vehicle_assessment`` beside it.
"""
