"""certimport: bulk-import certificate inventories into Intune through Microsoft Graph."""

__version__ = "0.1.0"
