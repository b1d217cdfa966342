"""Prints what `python3` would need to import the same packages."""
import json
import sys

print(json.dumps({"path": sys.path[1:], "executable": sys.executable,
                  "prefix": sys.prefix, "name": __name__}))
