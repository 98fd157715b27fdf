"""JupyterLab settings for the course (this folder is JUPYTER_CONFIG_DIR when the Makefile starts the lab)."""

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

c.ServerApp.ip = "127.0.0.1"  # the lab is for this machine only
c.LabApp.news_url = None  # no news pop-up over the first lesson
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.ServerApp.allow_root = True  # containers and classroom VMs often run as root; the lab stays on loopback
# The lab's kernels talk to the server over loopback TCP: encrypted with CurveZMQ keys the server makes
# per kernel (ipykernel's kernelspec declares support), so no plain-text warning at each kernel start.
c.KernelManager.transport_encryption = "auto"
