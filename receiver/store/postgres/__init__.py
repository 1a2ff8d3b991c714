"""The PostgreSQL backend (`[store] url`, the `altinn-receiver[postgres]` extra): connection.py (psycopg, the URL,
`PostgresDatabase`), migrate.py (the schema's version and migrations), writer.py (the inbox's group commits),
backend.py (`PostgresBackend`: all of it behind receiver/store/interface.py), copy.py (`store copy`)."""
