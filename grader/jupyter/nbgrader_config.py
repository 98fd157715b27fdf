"""Where the lab's nbgrader extensions (Validate, formgrader) find the course's one nbgrader configuration."""

load_subconfig("../nbgrader_config.py")  # noqa: F821 - provided by traitlets when it loads this file
