"""The project's one terminal width: every table, list and message a command prints is laid out to be read at
:data:`WIDTH` columns (``sfli list``, the speed-up table, the driver's wrapped lines)."""

WIDTH = 120
