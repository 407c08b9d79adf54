"""Bank statement parsers: camt.053/054, MT940/942, BAI2, CSV profiles."""
