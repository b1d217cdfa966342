"""Not a leak: allocates and frees plenty every call, keeps nothing."""


def step():
    rows = [{"id": i, "name": "n%d" % i} for i in range(2000)]
    text = ",".join(r["name"] for r in rows)
    return len(text)
