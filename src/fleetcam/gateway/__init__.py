"""The MDVR gateway: the only package that touches device sockets."""
