"""The Lambda Runtime API (2018-06-01) that function runtimes talk to; the hot path.

Imports only `lamina.model`: a reusable kernel (ARCHITECTURE 3.5).
"""
