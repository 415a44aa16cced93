"""Importing a library that configures logging on import (``comet``, ``mweralign``) without
keeping its root-logger set-up.

Authors
-------
speechmapper developers, 2026
"""

import logging


def import_keeping_logging(name):
    """Imports module ``name`` without keeping the ``logging.basicConfig`` some libraries run
    on import (``comet``, ``mweralign``): the root logger's handlers and level are restored.

    Example
    -------
    >>> import_keeping_logging("json").__name__
    'json'
    """
    import importlib

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    module = importlib.import_module(name)
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    return module
