"""Every user's JupyterLab on the workshop hub (this folder is on their JUPYTER_CONFIG_PATH)."""

import os

c = get_config()  # noqa: F821 - provided by traitlets when the server loads this file

# A terminal's shell is a login shell by default when the server has no terminal of its own (as under a
# hub), and Debian's /etc/profile then resets PATH: the course's venv would vanish from the terminal.
c.ServerApp.terminado_settings = {"shell_command": [os.environ.get("SHELL") or "/bin/sh"]}
