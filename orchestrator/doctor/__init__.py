"""`deploy doctor`: checks on each node, in the container the engine will get.

The probe (`probe.py`) runs inside that container and reports facts; the checks
(`checks_*.py`) judge them against the plan, one `pass | warn | fail | skip` line each with
the fix in the user's words. Nothing is fixed silently.
"""
