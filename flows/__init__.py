"""Flows: the Bytewax dataflow and the command line; they only wire parts."""
