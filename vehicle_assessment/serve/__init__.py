"""`vehicle-assessment serve`: the Lambda API's routes over the local adapters, on one machine."""
