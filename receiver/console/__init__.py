"""The operator console (docs/console.md): server-rendered pages on a listener of their own, never the webhook's.

`app.py` assembles the Starlette app from the page modules in `pages/` (each exposes `routes`), `auth.py` signs
operators in (the console token as a bearer header or a session cookie) and guards changes (CSRF, read_only),
`render.py` renders the Jinja2 templates in `templates/` with what every page shows, `state.py` is what the pages
share (the runtime, the sessions), `server.py` runs the console's own uvicorn listener beside the webhook's.
"""
