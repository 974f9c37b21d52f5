"""One run, composed: the session (settings, journal, tokens, client, signals), the pipeline
(validate, decide, send, report), the send pool, and the live monitor."""
