"""`videochat-online serve`: the model behind an HTTP API (docs/serving.md). `app.create_app` builds it;
`command` holds the command's options and its start."""
