"""Reading an inventory: dialect (encoding, delimiter), profiles (headers to properties), the
source (records in chunks), the schema (pandera checks) and the mapping (rows to Graph bodies).

Pure of the network and of the journal: nothing here sends or stores anything.
"""
