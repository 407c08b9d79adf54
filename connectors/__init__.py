"""Connectors: provider bytes in, canonical events (or rejections) out."""
