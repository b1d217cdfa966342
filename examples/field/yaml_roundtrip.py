"""Parses and dumps a YAML document per call; keeps nothing."""
import yaml

_DOC = "\n".join("key%d: [%d, %d, {name: n%d}]" % (i, i, i + 1, i) for i in range(200))


def step():
    data = yaml.safe_load(_DOC)
    yaml.safe_dump(data)
