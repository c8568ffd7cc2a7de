"""scorekit serve: the HTTP API (FastAPI). `build_app(llm, ...)` is in scorekit.server.app."""
