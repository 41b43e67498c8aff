"""The report notebook's front page: ``from stability_lib._frontpage import show_front_page``.

The shipped report notebook (and any copy of it in a params' ``runner.notebooks_dir``) imports this name;
the implementation lives in report/frontpage.py.
"""

from .report.frontpage import show_front_page

__all__ = ["show_front_page"]
