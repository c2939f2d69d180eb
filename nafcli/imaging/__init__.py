"""Files <-> arrays: read and write images (atomically), their metadata, the formats nafcli knows, and the
adapters for numpy and PIL objects handed over by Python callers. Knows nothing of models or torch.

The modules are imported one by one (``nafcli.imaging.read``, ``.write``, ...): the command line reads
``formats`` at start-up without paying for numpy.
"""
