"""Lambda handlers that belong to the infrastructure (custom resources), not to the application."""
