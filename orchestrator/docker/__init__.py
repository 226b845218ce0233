"""Docker endpoints (unix, tcp, ssh), the local daemon's environment, and Docker errors as one-line failures."""
