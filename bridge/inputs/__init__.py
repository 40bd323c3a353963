"""Inputs: what the bridge listens to (UDP ports), the formats each accepts and their parsers,
and the tools on the senders' side (log4net appender files, test datagrams)."""
