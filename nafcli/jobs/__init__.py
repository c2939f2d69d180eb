"""Jobs: inputs and output names, stereo pairing, plans, the runner and the workflows that the CLI and
the Python API call (discover -> plan -> load -> run -> results)."""
