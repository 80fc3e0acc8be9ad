"""Lamina: a self-hosted serverless function platform compatible with AWS Lambda."""

__version__ = "0.1.0"
