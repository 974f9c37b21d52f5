"""certimport: bulk-import certificate inventories into Intune through Microsoft Graph."""

import logging
import os

# numpy's OpenBLAS starts a spinning worker thread per core, and certimport does no linear
# algebra: on a small machine those threads took CPU from the sender and the journal writer.
# Set before numpy is first imported; an operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

# A library's logger has a handler of its own, so that a command that sets up no logging (the
# journal commands) does not get Python's last-resort handler printing each message again.
logging.getLogger("importer").addHandler(logging.NullHandler())
