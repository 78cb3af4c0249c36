"""The arnn-gen version, recorded in every emitted module's header."""

__version__ = "0.1.0"
