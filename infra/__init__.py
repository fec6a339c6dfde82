"""CDK app of the AWS runtime: one stack composed of one construct per capability (see app.py)."""
