"""Pure domain code: no I/O, no AWS, no HTTP, no PyAV."""
