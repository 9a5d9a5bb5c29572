"""``agentic_email -T suite=dct``: the study's own agentic scaffold and draft control, exactly.

The study ("DCT", :data:`~charbench.agentic_email.dct.source.DCT_REPO` at
:data:`~charbench.agentic_email.dct.source.DCT_COMMIT`) is read at run time, never shipped:

- :mod:`~charbench.agentic_email.dct.source`: the commit archive, downloaded once into the
  user cache and verified, or a local checkout (``-T dct_path=DIR``);
- :mod:`~charbench.agentic_email.dct.harness`: the study's harness constants, read from its
  source with :mod:`ast`, and the pure steps of its rollout (parsing, stub matching, the
  draft control's stripping);
- :mod:`~charbench.agentic_email.dct.formats`: its scenario files as typed records;
- :mod:`~charbench.agentic_email.dct.rollout`: the rollout as an Inspect solver;
- :mod:`~charbench.agentic_email.dct.suite`: samples, solver and classified text for the task.
"""

from charbench.agentic_email.dct.source import DCT_COMMIT, DCT_REPO, DctSourceError
from charbench.agentic_email.dct.suite import DctSuite, load_suite

__all__ = ["DCT_COMMIT", "DCT_REPO", "DctSourceError", "DctSuite", "load_suite"]
