"""Pure typed values: no I/O, no asyncio, stdlib only."""
