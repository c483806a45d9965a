"""Local adapters: files on disk, SQLite in WAL mode, an MQTT client."""
