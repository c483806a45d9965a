"""The embedded MQTT broker of the all-in-one server (MQTT 5 and 3.1.1, TCP and WebSocket)."""
