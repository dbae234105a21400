"""The HTTP API: `serving.app.create_app(settings)`, run by `aduan serve`.

Modules: settings (ADUAN_* environment), schemas (request/response bodies),
app (routes), service (loading, readiness, reloads), engine (one micro-batch
through model.predict and the duplicate finder), batcher (micro-batching on
one worker thread), reindex (re-embedding the index after a model swap),
security (API keys), middleware (request ids, body limits, access log),
errors, feedback, metrics, logs.
"""
