"""The SQLite store: one file holds the inbox, the correspondence tables and the receiver's own state."""
