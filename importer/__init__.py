"""certimport: bulk-import certificate inventories into Intune through Microsoft Graph."""

import os

# numpy's OpenBLAS starts a spinning worker thread per core, and certimport does no linear
# algebra: on a small machine those threads took CPU from the sender and the journal writer.
# Set before numpy is first imported; an operator's own setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
