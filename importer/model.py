"""Facts about ``microsoft.graph.managedAllDeviceCertificateState`` that the importer relies on."""

from __future__ import annotations

ODATA_TYPE = "#microsoft.graph.managedAllDeviceCertificateState"
COLLECTION_PATH = "/deviceManagement/deviceConfigurationsAllManagedDeviceCertificateStates"

THUMBPRINT = "certificateThumbprint"
SERIAL = "certificateSerialNumber"
DEVICE = "managedDeviceDisplayName"
UPN = "userPrincipalName"
ISSUER = "certificateIssuerName"
SUBJECT = "certificateSubjectName"
REVOKE_STATUS = "certificateRevokeStatus"
REVOKE_CHANGED = "certificateRevokeStatusLastChangeDateTime"
ISSUED = "certificateIssuanceDateTime"
EXPIRES = "certificateExpirationDateTime"
KEY_USAGES = "certificateKeyUsages"
EXTENDED_KEY_USAGES = "certificateExtendedKeyUsages"

# Writable properties, in the order they appear in reports and bodies.
PROPERTIES: tuple[str, ...] = (
    THUMBPRINT,
    SERIAL,
    DEVICE,
    UPN,
    ISSUER,
    SUBJECT,
    REVOKE_STATUS,
    REVOKE_CHANGED,
    ISSUED,
    EXPIRES,
    KEY_USAGES,
    EXTENDED_KEY_USAGES,
)
# Columns an inventory must have (the create page's table); the last-change date may be absent.
REQUIRED_COLUMNS: tuple[str, ...] = tuple(p for p in PROPERTIES if p != REVOKE_CHANGED)
# Cells that must not be empty.
REQUIRED_CELLS: tuple[str, ...] = (
    THUMBPRINT,
    SERIAL,
    ISSUER,
    SUBJECT,
    ISSUED,
    EXPIRES,
    REVOKE_STATUS,
)
DATE_PROPERTIES: tuple[str, ...] = (ISSUED, EXPIRES, REVOKE_CHANGED)
STRING_PROPERTIES: tuple[str, ...] = (DEVICE, UPN, ISSUER, SUBJECT, EXTENDED_KEY_USAGES)
# Cells that are lists (EKUs, key-usage names): line breaks and semicolons separate their items,
# so these alone may hold a line break.
LIST_PROPERTIES: tuple[str, ...] = (KEY_USAGES, EXTENDED_KEY_USAGES)
REVOKE_STATUSES: tuple[str, ...] = ("none", "pending", "issued", "failed", "revoked")
# The row key: one certificate on one device.
KEY_PROPERTIES: tuple[str, ...] = (THUMBPRINT, DEVICE)
# Columns read but never sent: Graph's own id, and the error column of our failed.csv.
IGNORED_COLUMNS: tuple[str, ...] = ("id", "import_error")

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
