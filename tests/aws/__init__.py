"""Tests of the AWS deployment: template, handlers and layers, against moto's HTTP server."""
