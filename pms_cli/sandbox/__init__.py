"""Local emulators of the provider APIs (ASGI apps used by tests, benchmarks and ``pms demo``)."""
