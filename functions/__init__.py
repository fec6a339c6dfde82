"""Lambda handlers: thin (Powertools decorators, parse, one call into ``vehicle_assessment.aws_runtime``).

Handler strings are ``functions.<module>.handler``; the package needs ``vehicle_assessment`` beside it.
"""

# Every handler imports this package first: the SnapStart runtime hooks register here, where Lambda
# sees them (it runs only hooks of modules the handler file imports).
from functions import snapstart as _snapstart  # noqa: F401
