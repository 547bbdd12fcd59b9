"""The command line: one command per module, grouped in `main.py`."""
