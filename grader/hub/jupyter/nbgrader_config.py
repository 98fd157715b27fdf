"""nbgrader on the workshop hub, for every user: the course id and the exchange they all share, and, in the
instructor's server only, the course directory (`leaklab course` writes its nbgrader_config.py there).

The hub's spawner sets LEAKLAB_EXCHANGE for everyone and LEAKLAB_COURSE for the instructor
(grader/hub/jupyterhub_config.py); this folder is on every user's JUPYTER_CONFIG_PATH.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "leaklab"
c.Exchange.root = os.environ.get("LEAKLAB_EXCHANGE") or "/srv/nbgrader/exchange"

course = os.environ.get("LEAKLAB_COURSE")
if course:
    # Set even before `leaklab course` has made the folder: the formgrader reads where the course and its
    # gradebook are once, when the server starts, and would otherwise keep looking in the home folder.
    c.CourseDirectory.root = course
    if (Path(course) / "nbgrader_config.py").is_file():
        load_subconfig(str(Path(course) / "nbgrader_config.py"))  # noqa: F821 - the course's own settings
