"""pocwatch: IMAP polling, parsing, threading, storage and the daemon."""
