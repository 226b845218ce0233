"""Planning: the layout search (`resolver`) and the performance model (`performance`)."""
