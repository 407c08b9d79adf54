"""The ops dashboard: a JSON API over the sinks' views and a live page for AR teams.

`queries` reads ClickHouse (views plus paged lists), `web` serves the API, the
OpenAPI description and the static page behind a token.
"""
