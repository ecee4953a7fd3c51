"""End-to-end tests: ``aftercare serve`` against a real Prefect server, answered in the browser or the API."""
