"""Clients of a deployed stack: `submit` (one assessment as a yard app runs it) and `smoke` (post-deploy
checks of every service). Entry points reach them through ``vehicle_assessment.cli``."""
