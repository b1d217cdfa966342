"""Parses an XML payload per request with lxml and keeps the parsed trees in
a cache keyed by request id: libxml2's memory, outside Python's heap."""
from lxml import etree

_PAYLOAD = b"<order>" + b"".join(b"<item id='%d'>thing %d</item>" % (i, i) for i in range(300)) + b"</order>"
_parsed = {}
_n = [0]


def step():
    _n[0] += 1
    _parsed[_n[0]] = etree.fromstring(_PAYLOAD)
