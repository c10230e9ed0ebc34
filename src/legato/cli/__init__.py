"""The ``legato`` command line: one module per noun, all over ``legato.Client``."""
